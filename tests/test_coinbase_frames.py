"""The feed's websocket frame reader: whole, split and fragmented server frames; protocol errors."""

from __future__ import annotations

import struct

import pytest

from cryptoj.adapters.coinbase.fake.wire import encode_frame
from cryptoj.adapters.coinbase.frames import (
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameReader,
    WebSocketProtocolError,
)


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One server frame; ``fin=False``: the start or middle of a fragmented message."""
    whole = encode_frame(opcode, payload)
    return whole if fin else bytes([whole[0] & 0x7F]) + whole[1:]


def test_whole_frames_of_every_length_form_come_out_in_order() -> None:
    payloads = [b"", b"x" * 125, b"y" * 126, b"z" * 70_000, b'{"channel":"l2_data"}']
    stream = b"".join(encode_frame(OP_TEXT, p) for p in payloads)
    assert FrameReader().feed(stream) == [(OP_TEXT, p) for p in payloads]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000, 16_384])
def test_frames_split_anywhere_are_reassembled(step: int) -> None:
    payloads = [b"a" * 10, b"b" * 300, b"c" * 70_000, b"d"]
    stream = b"".join(encode_frame(OP_TEXT, p) for p in payloads)
    reader = FrameReader()
    out = []
    for i in range(0, len(stream), step):
        out += reader.feed(stream[i : i + step])
    assert out == [(OP_TEXT, p) for p in payloads]
    assert reader.pending == 0


def test_a_large_frame_over_many_chunks_is_held_until_complete() -> None:
    big = b"q" * 3_000_000
    stream = encode_frame(OP_TEXT, big) + encode_frame(OP_TEXT, b"next")
    reader = FrameReader()
    assert reader.feed(stream[:100_000]) == []
    assert reader.pending == 100_000
    assert reader.feed(stream[100_000:2_000_000]) == []
    assert reader.feed(stream[2_000_000:]) == [(OP_TEXT, big), (OP_TEXT, b"next")]


def test_a_fragmented_message_is_joined_and_control_frames_pass_in_between() -> None:
    stream = (
        frame(OP_TEXT, b"he", fin=False)
        + frame(OP_PING, b"p1")
        + frame(0, b"ll", fin=False)
        + frame(0, b"o")
        + frame(OP_CLOSE, struct.pack("!H", 1000))
    )
    assert FrameReader().feed(stream) == [
        (OP_PING, b"p1"),
        (OP_TEXT, b"hello"),
        (OP_CLOSE, b"\x03\xe8"),
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (bytes([0x81, 0x82]) + b"mask" + b"ab", "masked"),
        (bytes([0xC1, 0x01]) + b"a", "reserved"),
        (bytes([0x83, 0x01]) + b"a", "unknown opcode"),
        (frame(0, b"a"), "continuation"),
        (frame(OP_PING, b"p", fin=False), "control"),
        (frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), "inside a fragmented"),
    ],
)
def test_what_a_server_must_not_send_is_a_protocol_error(data: bytes, problem: str) -> None:
    with pytest.raises(WebSocketProtocolError, match=problem):
        FrameReader().feed(data)


def test_what_is_waiting_in_the_socket_is_read_as_one_batch() -> None:
    import select
    import socket

    from cryptoj.adapters.coinbase.connection import _read_waiting, _waiting

    a, b = socket.socketpair()
    with a, b:
        b.settimeout(0.05)
        poller = select.poll()
        poller.register(b, select.POLLIN)
        assert not _waiting(b, poller)
        stream = b"".join(encode_frame(OP_TEXT, b"%d" % i * 500) for i in range(40))
        a.sendall(stream)
        first = b.recv(1000)
        assert _waiting(b, poller)
        batch = _read_waiting(b, poller, first)
        assert batch == stream  # everything that had arrived, in one batch
        assert not _waiting(b, poller)
        assert _read_waiting(b, poller, b"x") == b"x"  # a read that times out loses nothing
