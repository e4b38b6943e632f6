"""Server-to-client websocket frames from a byte stream (RFC 6455, pure).

The connection thread reads the TLS socket in large chunks (one ``recv`` returns up to a TLS
record, about 16 KB: some twenty market-data frames) and :class:`FrameReader` cuts the chunk
into messages. websocket-client's own reader asks the socket for the two header bytes, the
length and the payload of every frame separately; each of those reads releases and retakes the
GIL, which with several busy connection threads costs more than the frame's handling.

What a server may send: unmasked frames; text, binary and continuation frames (a fragmented
message is reassembled); ping, pong and close frames (at most 125 bytes, never fragmented,
returned as they come, also between the fragments of a message). Anything else (a masked frame,
reserved bits, an unknown opcode, a continuation without a start, a control frame declared
longer than 125 bytes, a 64-bit length with its top bit set) raises
:class:`WebSocketProtocolError` as soon as the frame's header is read: the connection is no
longer trusted.

A message larger than the reader's limit (a data frame whose header declares more, or a
fragmented message whose fragments add up to more) is never stored: it is reported once, as
``(OP_OVERSIZE, size)`` when its header is read (``size``: the declared length, or the
fragments' total so far, as decimal ASCII digits), and its bytes are then skipped as they
stream in. What the reader holds stays below the limit plus one chunk, whatever the server
declares.
"""

from __future__ import annotations

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: not a websocket opcode: a message over the limit, skipped (its payload: its size in digits)
OP_OVERSIZE = 0x100
_DATA = frozenset({OP_TEXT, OP_BINARY})
_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_WHOLE_DATA = frozenset({0x80 | OP_TEXT, 0x80 | OP_BINARY})  # first byte: fin, no reserved bits


class WebSocketProtocolError(Exception):
    """The server sent something RFC 6455 does not allow."""


class FrameReader:
    """Incremental parser: :meth:`feed` bytes, get the complete messages ``(opcode, payload)``.

    ``max_message_bytes``: larger messages are skipped and reported as ``OP_OVERSIZE`` (see the
    module docstring). Keeps what is left of an incomplete frame; a frame larger than the
    chunks is collected chunk by chunk and joined once (no quadratic copying for a
    multi-megabyte snapshot).
    """

    __slots__ = (
        "_chunks",
        "_dropping",
        "_have",
        "_limit",
        "_need",
        "_opcode",
        "_parts",
        "_size",
        "_skip",
    )

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 0:
            raise ValueError(f"max_message_bytes must be >= 0, not {max_message_bytes}")
        self._limit = max_message_bytes
        self._chunks: list[bytes] = []  # an incomplete frame's bytes so far
        self._have = 0
        self._need = 0  # bytes the incomplete frame needs in all (0: header not complete)
        self._skip = 0  # bytes of an oversize frame's payload still to skip
        self._parts: list[bytes] = []  # the fragments of a message being reassembled
        self._opcode = 0  # the opcode of a fragmented message under way (0: none)
        self._size = 0  # its bytes so far
        self._dropping = False  # it went over the limit: its fragments are skipped

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return self._have

    @property
    def held(self) -> int:
        """Bytes held in all: an incomplete frame and the fragments of a message so far."""
        return self._have + sum(len(p) for p in self._parts)

    @property
    def skipping(self) -> int:
        """Bytes of an oversize frame still to skip."""
        return self._skip

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add ``data``; return every message completed by it, in order."""
        pos = 0
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            pos, self._skip = self._skip, 0
        elif self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks.clear()
        out: list[tuple[int, bytes]] = []
        limit, end, need = self._limit, len(data), 0
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
                if n >> 63:
                    raise WebSocketProtocolError("a 64-bit frame length with its top bit set")
            if b1 & 0x80:
                raise WebSocketProtocolError("a masked frame from the server")
            stop = pos + head + n
            if b0 in _WHOLE_DATA and n <= limit and not self._opcode:
                if stop > end:
                    need = stop - pos
                    break
                out.append((b0 & 0x0F, data[pos + head : stop]))  # the common case
                pos = stop
                continue
            if self._check(b0, n, out):  # oversize: skip the payload
                if stop > end:
                    self._skip = stop - end
                    pos = end
                    break
                pos = stop
                continue
            if stop > end:
                need = stop - pos
                break
            self._other(b0 & 0x80, b0 & 0x0F, data[pos + head : stop], out)
            pos = stop
        # what is left: an incomplete frame (need: its whole size) or header (need 0: any
        # new byte may complete it)
        self._need = need
        self._have = end - pos
        if pos < end:
            self._chunks.append(data[pos:])
        return out

    def _check(self, b0: int, n: int, out: list[tuple[int, bytes]]) -> bool:
        """Check a frame's header (``n``: its payload length); True when its payload is to be
        skipped (reported as ``OP_OVERSIZE`` here if its message was not yet). Changes no
        state for a frame that is kept: its header is read again once the frame is complete."""
        if b0 & 0x70:
            raise WebSocketProtocolError(f"reserved bits set ({b0 & 0x70:#x})")
        fin, opcode = b0 & 0x80, b0 & 0x0F
        if opcode in _CONTROL:
            if not fin or n > 125:
                raise WebSocketProtocolError(f"a fragmented or long control frame ({opcode})")
            return False
        if opcode in _DATA:
            if self._opcode:
                raise WebSocketProtocolError("a new message inside a fragmented one")
            if n <= self._limit:
                return False
            out.append((OP_OVERSIZE, b"%d" % n))
            if not fin:  # the start of a fragmented message: its other fragments go too
                self._opcode, self._size, self._dropping = opcode, n, True
            return True
        if opcode == OP_CONT:
            if not self._opcode:
                raise WebSocketProtocolError("a continuation frame without a message")
            if self._dropping:
                self._size += n
            elif self._size + n > self._limit:
                self._size += n
                self._dropping = True
                self._parts.clear()
                out.append((OP_OVERSIZE, b"%d" % self._size))
            else:
                return False
            if fin:
                self._opcode, self._size, self._dropping = 0, 0, False
            return True
        raise WebSocketProtocolError(f"unknown opcode {opcode}")

    def _other(self, fin: int, opcode: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        """A complete frame that passed :meth:`_check` and is kept."""
        if opcode in _CONTROL:
            out.append((opcode, payload))
            return
        self._parts.append(payload)
        if opcode != OP_CONT:  # the start of a fragmented message
            self._opcode, self._size = opcode, len(payload)
            return
        self._size += len(payload)
        if fin:
            out.append((self._opcode, b"".join(self._parts)))
            self._parts.clear()
            self._opcode, self._size = 0, 0
