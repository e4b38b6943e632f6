"""The feed's websocket frame reader: whole, split and fragmented server frames; protocol errors."""

from __future__ import annotations

import struct

import pytest

from cryptoj.adapters.coinbase.fake.wire import encode_frame
from cryptoj.adapters.coinbase.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_OVERSIZE,
    OP_PING,
    OP_TEXT,
    FrameReader,
    WebSocketProtocolError,
)

LIMIT = 8 << 20  # the feed's default max_frame_bytes


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One server frame; ``fin=False``: the start or middle of a fragmented message."""
    whole = encode_frame(opcode, payload)
    return whole if fin else bytes([whole[0] & 0x7F]) + whole[1:]


def test_whole_frames_of_every_length_form_come_out_in_order() -> None:
    payloads = [b"", b"x" * 125, b"y" * 126, b"z" * 70_000, b'{"channel":"l2_data"}']
    stream = b"".join(encode_frame(OP_TEXT, p) for p in payloads)
    assert FrameReader(LIMIT).feed(stream) == [(OP_TEXT, p) for p in payloads]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000, 16_384])
def test_frames_split_anywhere_are_reassembled(step: int) -> None:
    payloads = [b"a" * 10, b"b" * 300, b"c" * 70_000, b"d"]
    stream = b"".join(encode_frame(OP_TEXT, p) for p in payloads)
    reader = FrameReader(LIMIT)
    out = []
    for i in range(0, len(stream), step):
        out += reader.feed(stream[i : i + step])
    assert out == [(OP_TEXT, p) for p in payloads]
    assert reader.pending == 0


def test_a_large_frame_over_many_chunks_is_held_until_complete() -> None:
    big = b"q" * 3_000_000
    stream = encode_frame(OP_TEXT, big) + encode_frame(OP_TEXT, b"next")
    reader = FrameReader(LIMIT)
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
    assert FrameReader(LIMIT).feed(stream) == [
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
        # header only: a control frame declared long fails before its payload is awaited
        (bytes([0x89, 0x7F]) + (1 << 40).to_bytes(8, "big"), "long control"),
        (bytes([0x81, 0x7F]) + (1 << 63).to_bytes(8, "big"), "top bit"),
    ],
)
def test_what_a_server_must_not_send_is_a_protocol_error(data: bytes, problem: str) -> None:
    with pytest.raises(WebSocketProtocolError, match=problem):
        FrameReader(LIMIT).feed(data)


def test_a_declared_huge_frame_is_skipped_as_it_streams_and_never_held() -> None:
    reader = FrameReader(LIMIT)
    header = bytes([0x81, 0x7F]) + (1 << 40).to_bytes(8, "big")
    assert reader.feed(header[:5]) == []  # a header split in two
    assert reader.feed(header[5:] + b"x" * 100) == [(OP_OVERSIZE, b"1099511627776")]
    chunk = b"x" * 262_144
    for _ in range(200):  # 50 MiB of it: nothing more comes out, nothing is kept
        assert reader.feed(chunk) == []
        assert reader.held == 0
    assert reader.skipping == (1 << 40) - 100 - 200 * len(chunk)


@pytest.mark.parametrize("step", [1, 7, 1000, 16_384, 100_000])
def test_the_frame_after_a_skipped_one_is_read_whole(step: int) -> None:
    limit = 10_000
    stream = (
        encode_frame(OP_TEXT, b"a" * limit)  # at the limit: kept
        + encode_frame(OP_TEXT, b"b" * (limit + 1))
        + encode_frame(OP_PING, b"p")
        + encode_frame(OP_BINARY, b"c" * 300)
    )
    reader = FrameReader(limit)
    out = []
    for i in range(0, len(stream), step):
        out += reader.feed(stream[i : i + step])
        assert reader.held <= limit + 14 + step  # never the oversize frame's bytes
    assert out == [
        (OP_TEXT, b"a" * limit),
        (OP_OVERSIZE, b"10001"),
        (OP_PING, b"p"),
        (OP_BINARY, b"c" * 300),
    ]
    assert reader.pending == reader.skipping == 0


@pytest.mark.parametrize("step", [1, 1000, 1 << 20])
def test_a_fragmented_message_over_the_limit_is_reported_once_and_skipped(step: int) -> None:
    limit = 10_000
    stream = (
        frame(OP_TEXT, b"a" * 6000, fin=False)
        + frame(0, b"b" * 3000, fin=False)
        + frame(OP_PING, b"p1")
        + frame(0, b"c" * 3000, fin=False)  # 12,000 in all: over
        + frame(OP_PING, b"p2")
        + frame(0, b"d" * 50_000, fin=False)
        + frame(0, b"e")
        + frame(OP_TEXT, b"next")
        + frame(OP_TEXT, b"f" * 20_000, fin=False)  # its first fragment is over already
        + frame(0, b"g")
        + frame(OP_TEXT, b"h", fin=False)
        + frame(0, b"i")
    )
    reader = FrameReader(limit)
    out = []
    for i in range(0, len(stream), step):
        out += reader.feed(stream[i : i + step])
        assert reader.held <= limit + 14 + step
    assert out == [
        (OP_PING, b"p1"),
        (OP_OVERSIZE, b"12000"),
        (OP_PING, b"p2"),
        (OP_TEXT, b"next"),
        (OP_OVERSIZE, b"20000"),
        (OP_TEXT, b"hi"),
    ]
    assert reader.held == reader.skipping == 0
    with pytest.raises(WebSocketProtocolError, match="without a message"):
        reader.feed(frame(0, b"j"))  # the skipped message ended: nothing to continue


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


def test_a_clean_close_reads_through_the_reader_and_is_bounded_in_time() -> None:
    """After a skipped huge frame, the closing handshake must neither collect the frame nor
    wait on the server: websocket-client's ``close`` would parse the rest of the skipped
    payload as frames and read a declared 2^40-byte one for as long as bytes keep coming."""
    import socket
    import threading
    import time

    import websocket

    from cryptoj.adapters.coinbase.connection import CLOSE_WAIT_S, close_socket
    from cryptoj.adapters.coinbase.fake.wire import FrameReader as ClientFrames

    a, b = socket.socketpair()
    ws = websocket.WebSocket()
    ws.sock, ws.connected = b, True
    reader = FrameReader(LIMIT)
    assert reader.feed(bytes([0x81, 0x7F]) + (1 << 40).to_bytes(8, "big")) == [
        (OP_OVERSIZE, b"1099511627776")
    ]
    got: list[tuple[int, bytes]] = []
    # the skipped payload: bytes that read as headers of more huge frames, sent until the
    # client closes its socket (at most 5 s), whatever the client sends
    junk = (bytes([0x81, 0x7F]) + (1 << 40).to_bytes(8, "big")) * 1000

    def server() -> None:
        client = ClientFrames()
        a.settimeout(0.01)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            try:
                a.sendall(junk)
                got.extend(client.feed(a.recv(65_536)))
            except TimeoutError:
                continue
            except OSError:
                break

    peer = threading.Thread(target=server, daemon=True)
    peer.start()
    t0 = time.monotonic()
    close_socket(ws, reader, clean=True)
    took = time.monotonic() - t0
    peer.join(10)
    a.close()
    assert took < CLOSE_WAIT_S + 1.0, took  # bounded by the close wait, not by the server
    assert got[:1] == [(OP_CLOSE, b"\x03\xe8cryptoj reconnect")]
    assert reader.held == 0 and ws.sock is None
