"""Server-to-client websocket frames from a byte stream (RFC 6455, pure).

The connection thread reads the TLS socket in large chunks (one ``recv`` returns up to a TLS
record, about 16 KB: some twenty market-data frames) and :class:`FrameReader` cuts the chunk
into messages. websocket-client's own reader asks the socket for the two header bytes, the
length and the payload of every frame separately; each of those reads releases and retakes the
GIL, which with several busy connection threads costs more than the frame's handling.

What a server may send: unmasked frames; text, binary and continuation frames (a fragmented
message is reassembled); ping, pong and close frames (at most 125 bytes, never fragmented,
returned as they come, also between the fragments of a message). Anything else (a masked frame,
reserved bits, an unknown opcode, a continuation without a start) raises
:class:`WebSocketProtocolError`: the connection is no longer trusted.
"""

from __future__ import annotations

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_DATA = frozenset({OP_TEXT, OP_BINARY})
_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})


class WebSocketProtocolError(Exception):
    """The server sent something RFC 6455 does not allow."""


class FrameReader:
    """Incremental parser: :meth:`feed` bytes, get the complete messages ``(opcode, payload)``.

    Keeps what is left of an incomplete frame; a frame larger than the chunks is collected
    chunk by chunk and joined once (no quadratic copying for a multi-megabyte snapshot).
    """

    __slots__ = ("_chunks", "_have", "_need", "_opcode", "_parts")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []  # an incomplete frame's bytes so far
        self._have = 0
        self._need = 0  # bytes the incomplete frame needs in all (0: header not complete)
        self._parts: list[bytes] = []  # the fragments of a message being reassembled
        self._opcode = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return self._have

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data``; return every message completed by it, in order."""
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks.clear()
        out: list[tuple[int, bytes]] = []
        pos, end, need = 0, len(data), 0
        while end - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:
                raise WebSocketProtocolError("a masked frame from the server")
            stop = pos + head + n
            if stop > end:
                need = stop - pos
                break
            if b0 & 0x70:
                raise WebSocketProtocolError(f"reserved bits set ({b0 & 0x70:#x})")
            opcode = b0 & 0x0F
            payload = data[pos + head : stop]
            pos = stop
            if b0 & 0x80 and opcode in _DATA and not self._parts:
                out.append((opcode, payload))  # the common case: a whole text frame
            else:
                self._other(b0 & 0x80, opcode, payload, out)
        # what is left: an incomplete frame (need: its whole size) or header (need 0: any
        # new byte may complete it)
        self._need = need
        self._have = end - pos
        if pos < end:
            self._chunks.append(data[pos:])
        return out

    def _other(self, fin: int, opcode: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        if opcode in _CONTROL:
            if not fin or len(payload) > 125:
                raise WebSocketProtocolError(f"a fragmented or long control frame ({opcode})")
            out.append((opcode, payload))
        elif opcode in _DATA:
            if self._parts:
                raise WebSocketProtocolError("a new message inside a fragmented one")
            self._opcode = opcode
            self._parts.append(payload)
        elif opcode == OP_CONT:
            if not self._parts:
                raise WebSocketProtocolError("a continuation frame without a message")
            self._parts.append(payload)
            if fin:
                out.append((self._opcode, b"".join(self._parts)))
                self._parts.clear()
        else:
            raise WebSocketProtocolError(f"unknown opcode {opcode}")
