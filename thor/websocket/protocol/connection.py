"""One side of an open WebSocket connection: bytes in, events out; calls in, bytes out.

Theory of operation. ``receive_data`` appends to what is left of the last call and reads
frames in a loop. A frame header is checked as soon as its first two bytes are there, so a
bad opcode, RSV bit or masking bit fails at once (§5.1-§5.2). Control frames (at most 125
bytes, §5.5) are handled whole. A data frame's payload is consumed as it arrives: each piece
is unmasked, inflated if the message is compressed, and UTF-8-checked by one incremental
decoder per text message, so an invalid byte fails the connection in the call that brought it,
not when the message ends (§8.1). The usual case, a whole unfragmented message in one read,
takes a fast path without the incremental machinery.

Failing (§7.1.7) is a ``ProtocolError`` event carrying the close code: the connection ignores
further input, and the application, once it has dealt with the events before it, calls
``fail(event.code, event.reason)`` for the close frame to send before closing the transport.
``receive_eof`` reports a transport that ended early.

Masking (§5.1, §5.3): a client masks every frame with a fresh key from ``random``
(``secrets.token_bytes``, the system CSPRNG, unless the caller gives another source, as tests
do); a server never masks. Each side fails a
frame masked the wrong way with 1002.
"""

from __future__ import annotations

import codecs
import enum
import zlib
from collections.abc import Callable
from secrets import token_bytes

from thor.websocket.protocol import frames as _frames
from thor.websocket.protocol import state as _state
from thor.websocket.protocol.deflate import Deflate, InflateTooBig
from thor.websocket.protocol.errors import WebSocketStateError
from thor.websocket.protocol.events import (
    BytesFragment,
    BytesMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    Ping,
    Pong,
    ProtocolError,
    TextFragment,
    TextMessage,
)
from thor.websocket.protocol.frames import (
    FIN,
    LENGTH_16,
    LENGTH_64,
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    RSV2_RSV3,
    close_payload,
    frame_header,
)
from thor.websocket.protocol.state import CAN_SEND, CLOSED, transition

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Connection", "Role"]

# uvicorn's --ws-max-size default: 16 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
_UNLIMITED = 1 << 63
_MASK_POOL = 1024  # mask keys are drawn 256 at a time: one call, not one a frame
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class _Fail(Exception):
    """Internal: the peer broke the protocol; becomes a ProtocolError event."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Connection:
    """A WebSocket connection after its opening handshake (RFC 6455 §5-§7).

    ``max_message_size`` bounds a message (after inflating), ``max_frame_size`` a frame's
    payload on the wire (default: the message bound), ``max_decompressed_size`` what one
    compressed message may inflate to (default: the message bound); past any of them the
    connection fails with 1009. ``None`` means no bound. With ``fragments=True`` data comes as
    TextFragment/BytesFragment, one per frame, instead of whole messages.
    """

    __slots__ = (
        "_buf",
        "_decoder",
        "_deflater",
        "_expect_mask",
        "_fast_limit",
        "_fragments",
        "_frame_fin",
        "_frame_left",
        "_frame_mask",
        "_inflater",
        "_is_client",
        "_mask_index",
        "_mask_pool",
        "_mask_pos",
        "_max_frame",
        "_max_inflated",
        "_max_message",
        "_msg_compressed",
        "_msg_opcode",
        "_msg_out",
        "_msg_size",
        "_parts",
        "_random",
        "_reading",
        "_send_compressed",
        "_send_opcode",
        "close_code",
        "close_reason",
        "deflate",
        "role",
        "state",
    )

    def __init__(
        self,
        role: Role | str,
        *,
        deflate: Deflate | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_frame_size: int | None = None,
        max_decompressed_size: int | None = None,
        fragments: bool = False,
        random: Callable[[int], bytes] = token_bytes,
    ) -> None:
        self.role = Role(role)
        self.state = _state.OPEN
        self.deflate = deflate
        # The peer's close code and reason, once its close frame arrived.
        self.close_code: int | None = None
        self.close_reason = ""
        self._is_client = self.role is Role.CLIENT
        # §5.1: a server MUST fail an unmasked frame, a client a masked one.
        self._expect_mask = 0 if self._is_client else 0x80
        self._random = random
        self._mask_pool = b""
        self._mask_index = 0
        self._fragments = fragments
        self._max_message = _UNLIMITED if max_message_size is None else max_message_size
        self._max_frame = self._max_message if max_frame_size is None else max_frame_size
        self._max_inflated = min(
            self._max_message,
            _UNLIMITED if max_decompressed_size is None else max_decompressed_size,
        )
        # Frames up to this length may take the fast path in _read_frames; -1 turns it off.
        self._fast_limit = -1 if fragments else min(125, self._max_frame, self._max_message)
        self._deflater = deflate.deflater(self._is_client) if deflate else None
        self._inflater = deflate.inflater(self._is_client) if deflate else None
        self._buf = b""
        self._reading = True  # False after the peer's close, a failure or the end of input
        self._frame_left = 0
        self._frame_fin = False
        self._frame_mask: bytes | None = None
        self._mask_pos = 0
        self._msg_opcode = 0  # the opcode of the message being received, 0 between messages
        self._msg_compressed = False
        self._msg_size = 0  # its payload bytes on the wire so far
        self._msg_out = 0  # its inflated bytes so far
        self._parts: list[bytes] | list[str] = []
        self._decoder = _Utf8Decoder()
        self._send_opcode = 0  # the opcode of a message we are sending in fragments
        self._send_compressed = False

    def __repr__(self) -> str:
        return f"<Connection {self.role.value} {self.state.name}>"

    # --- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the transport; returns the events they complete."""
        if not self._reading:
            return []  # §5.5.1: nothing follows the peer's close frame; nor a failure
        buf = self._buf + data if self._buf else data
        events: list[Event] = []
        try:
            pos = self._read_frames(buf, events)
        except _Fail as fail:
            # The events before the error stay valid: the application acts on them, then on
            # the ProtocolError by calling fail(). Until then the state does not change.
            events.append(ProtocolError(fail.code, fail.reason))
            self._reading = False
            self._buf = b""
            return events
        self._buf = buf[pos:] if pos < len(buf) else b""
        return events

    def receive_eof(self) -> list[Event]:
        """The transport ended: ConnectionLost (1006) unless the closing handshake is over."""
        if self.state is CLOSED:
            return []
        self._reading = False
        self.state = transition(self.state, "lost")
        return [ConnectionLost()]

    def _read_frames(self, buf: bytes, events: list[Event]) -> int:  # noqa: C901
        """Read frames from ``buf``; returns how much of it was consumed.

        Long on purpose: it is the hot loop, and a Python call per header check would cost
        more than the check (house style: optimise inside a boundary). Payload handling,
        control frames and whole messages are separate methods.
        """
        pos = 0
        end = len(buf)
        fast_limit = self._fast_limit
        key_size = 0 if self._is_client else 4
        expect_mask = self._expect_mask
        while True:
            if self._frame_left:  # in the payload of a data frame
                take = min(self._frame_left, end - pos)
                if not take:
                    return pos
                self._frame_left -= take
                self._payload(buf, pos, pos + take, events)
                pos += take
                continue
            if end - pos < 2:
                return pos
            first = buf[pos]
            second = buf[pos + 1]
            # The usual frame first: FIN, no RSV bit, text (0x81) or binary (0x82), between
            # messages, a 7-bit length within the limits (the XOR leaves >= 128 if the mask bit
            # is wrong), all in buf. One comparison each instead of the checks below.
            length = second ^ expect_mask
            if 0x80 < first < 0x83 and length <= fast_limit and not self._msg_opcode:
                start = pos + 2 + key_size
                stop = start + length
                if stop <= end:
                    payload = buf[start:stop]
                    if key_size:
                        payload = _frames.mask(payload, buf[start - 4 : start])
                    if first == 0x82:
                        events.append(BytesMessage(payload))
                    else:
                        try:
                            events.append(TextMessage(payload.decode("utf-8")))
                        except UnicodeDecodeError:
                            raise _Fail(1007, "text is not UTF-8") from None  # §8.1
                    pos = stop
                    continue
            opcode = first & 0x0F
            length = second & 0x7F
            masked = second & 0x80
            if masked != self._expect_mask:
                raise _Fail(1002, "frame masked the wrong way")  # §5.1
            if first & RSV2_RSV3:
                raise _Fail(1002, "RSV2/RSV3 set without an extension")  # §5.2
            if opcode >= 8:
                if opcode > OP_PONG:
                    raise _Fail(1002, f"unknown opcode {opcode}")  # §5.2
                if not first & FIN or length > MAX_CONTROL_PAYLOAD or first & RSV1:
                    raise _Fail(1002, "fragmented, long or compressed control frame")  # §5.5
                start = pos + (6 if masked else 2)
                if end - start < length:
                    return pos
                pos = start + length
                payload = buf[start:pos]
                if masked:
                    payload = _frames.mask(payload, buf[start - 4 : start])
                if self._control(opcode, payload, events):
                    return end  # the peer's close: the rest is ignored
                continue
            if opcode > OP_BINARY:
                raise _Fail(1002, f"unknown opcode {opcode}")  # §5.2
            if opcode == OP_CONTINUATION:
                if not self._msg_opcode:
                    raise _Fail(1002, "continuation frame without a message")  # §5.4
                if first & RSV1:
                    raise _Fail(1002, "RSV1 on a continuation frame")  # RFC 7692 §6.1
            elif self._msg_opcode:
                raise _Fail(1002, "new message inside a fragmented one")  # §5.4
            elif first & RSV1 and self._inflater is None:
                raise _Fail(1002, "RSV1 set without permessage-deflate")  # §5.2
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    return pos
                length = LENGTH_16.unpack_from(buf, start)[0]
                start += 2
                if length < 126:
                    raise _Fail(1002, "non-minimal length")  # §5.2: "the minimal number"
            elif length == 127:
                if end - pos < 10:
                    return pos
                length = LENGTH_64.unpack_from(buf, start)[0]
                start += 8
                if length >> 63 or length < 0x10000:
                    raise _Fail(1002, "non-minimal length or top bit set")  # §5.2
            if length > self._max_frame:
                raise _Fail(1009, "frame too big")
            if masked:
                if end - start < 4:
                    return pos
                key: bytes | None = buf[start : start + 4]
                start += 4
            else:
                key = None
            if opcode:
                if length > self._max_message:
                    raise _Fail(1009, "message too big")
                if first & FIN and end - start >= length and not self._fragments:
                    pos = start + length
                    self._whole_message(opcode, first & RSV1, buf, start, pos, key, events)
                    continue
                self._msg_opcode = opcode
                self._msg_compressed = bool(first & RSV1)
                self._msg_size = length
                self._msg_out = 0
            else:
                self._msg_size += length
                if self._msg_size > self._max_message:
                    raise _Fail(1009, "message too big")
            pos = start
            self._frame_fin = bool(first & FIN)
            self._frame_mask = key
            self._mask_pos = 0
            self._frame_left = length
            if not length:
                self._payload(buf, pos, pos, events)

    def _whole_message(
        self,
        opcode: int,
        compressed: int,
        buf: bytes,
        start: int,
        stop: int,
        key: bytes | None,
        events: list[Event],
    ) -> None:
        """The fast path: an unfragmented message, all there (``buf[start:stop]``)."""
        # Unmasked straight from buf: no copy of the masked slice first. It comes back as
        # bytes (the C accelerator), or, from 2 KiB on the standard library's path, as a
        # bytearray, which text is decoded from without a copy to bytes.
        payload = buf[start:stop] if key is None else _frames.unmask(buf, start, stop, key)
        if compressed:
            payload = self._inflate(payload, True, self._max_inflated)
        if opcode == OP_TEXT:
            try:
                events.append(TextMessage(payload.decode("utf-8")))
            except UnicodeDecodeError:
                raise _Fail(1007, "text is not UTF-8") from None  # §8.1
        else:
            events.append(BytesMessage(payload if type(payload) is bytes else bytes(payload)))

    def _payload(self, buf: bytes, start: int, stop: int, events: list[Event]) -> None:
        """A piece of a data frame's payload, ``buf[start:stop]`` (all of it if
        ``_frame_left`` is now 0); unmasked straight from ``buf``, without a slice first."""
        key = self._frame_mask
        chunk: bytes | bytearray
        if key is not None:
            offset = self._mask_pos & 3
            if offset:
                key = key[offset:] + key[:offset]
            self._mask_pos += stop - start
            chunk = _frames.unmask(buf, start, stop, key)
        else:
            chunk = buf[start:stop]
        frame_done = not self._frame_left
        message_done = frame_done and self._frame_fin
        if self._msg_compressed:
            chunk = self._inflate(chunk, message_done, self._max_inflated - self._msg_out)
            self._msg_out += len(chunk)
        if self._msg_opcode == OP_TEXT:
            try:
                text = self._decoder.decode(chunk, message_done)
            except UnicodeDecodeError:
                raise _Fail(1007, "text is not UTF-8") from None  # §8.1, checked as it comes
            self._parts.append(text)  # type: ignore[arg-type]
        elif chunk:
            self._parts.append(chunk)  # type: ignore[arg-type]
        if frame_done:
            self._frame_done(message_done, events)

    def _frame_done(self, message_done: bool, events: list[Event]) -> None:
        parts = self._parts
        text = self._msg_opcode == OP_TEXT
        if self._fragments:
            if text:
                events.append(TextFragment("".join(parts), message_done))  # type: ignore[arg-type]
            else:
                events.append(BytesFragment(b"".join(parts), message_done))  # type: ignore[arg-type]
            parts.clear()
        elif message_done:
            if text:
                events.append(TextMessage("".join(parts)))  # type: ignore[arg-type]
            else:
                events.append(BytesMessage(b"".join(parts)))  # type: ignore[arg-type]
            parts.clear()
        if message_done:
            self._msg_opcode = 0
            self._decoder.reset()

    def _inflate(self, data: bytes | bytearray, end: bool, room: int) -> bytes:
        try:
            return self._inflater.inflate(data, end, room)  # type: ignore[union-attr]
        except InflateTooBig:
            raise _Fail(1009, "message too big once inflated") from None
        except zlib.error:
            raise _Fail(1007, "invalid compressed data") from None  # RFC 7692 §8: fail

    def _control(self, opcode: int, payload: bytes, events: list[Event]) -> bool:
        """A whole control frame; True for the peer's close (stop reading)."""
        if opcode == OP_PING:
            events.append(Ping(payload))
            return False
        if opcode == OP_PONG:
            events.append(Pong(payload))
            return False
        # §5.5.1: empty, or a 2-byte code then a UTF-8 reason; §7.4: only sendable codes.
        if not payload:
            code, reason = 1005, ""
        else:
            if len(payload) == 1:
                raise _Fail(1002, "close payload of one byte")
            code = int.from_bytes(payload[:2], "big")
            if not _frames.close_code_is_valid(code):
                raise _Fail(1002, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise _Fail(1007, "close reason is not UTF-8") from None
        self.close_code, self.close_reason = code, reason
        self._reading = False
        self.state = transition(self.state, "receive_close")
        events.append(CloseReceived(code, reason))
        return True

    # --- sending -----------------------------------------------------------------------------

    def send_text(self, text: str, final: bool = True) -> bytes:
        """A text message, or one fragment of it with ``final=False`` (§5.4)."""
        return self._send_data(OP_TEXT, text.encode("utf-8"), final)

    def send_bytes(self, data: bytes | bytearray | memoryview, final: bool = True) -> bytes:
        """A binary message, or one fragment of it with ``final=False``."""
        return self._send_data(OP_BINARY, bytes(data), final)

    def send_parts(self, data: str | bytes, final: bool = True) -> list[bytes]:
        """``send_text`` (``str``) or ``send_bytes`` as the frame's pieces, for a gathering
        write (``sendmsg``): a large payload is not copied behind its header."""
        if isinstance(data, str):
            first = self._data_first(OP_TEXT, final)
            payload = data.encode("utf-8")
        else:
            first = self._data_first(OP_BINARY, final)
            payload = bytes(data)
        if self._send_compressed:
            payload = self._deflater.compress(payload, final)  # type: ignore[union-attr]
        if self._is_client:
            # Masked into a new payload (§5.3), which is not copied again behind its header.
            key = self._next_key()
            return [frame_header(first, len(payload), key), _frames.mask(payload, key)]
        return [frame_header(first, len(payload), None), payload]

    def _send_data(self, opcode: int, data: bytes, final: bool) -> bytes:
        first = self._data_first(opcode, final)
        if self._send_compressed:
            data = self._deflater.compress(data, final)  # type: ignore[union-attr]
        if self._is_client:
            return self._frame(first, data)
        return frame_header(first, len(data), None) + data

    def _data_first(self, opcode: int, final: bool) -> int:
        """The first header byte of a data frame (FIN, RSV1, opcode), after the state checks;
        notes a fragmented message's opcode and whether it is compressed."""
        if self.state not in CAN_SEND:
            raise WebSocketStateError(f"cannot send in state {self.state.name}")
        first = FIN if final else 0
        if self._send_opcode:
            if opcode != self._send_opcode:
                raise WebSocketStateError("another message is being sent in fragments")
        else:
            first |= opcode
            self._send_compressed = self._deflater is not None
            if self._send_compressed:
                first |= RSV1  # RFC 7692 §6: RSV1 on the first frame only
        self._send_opcode = 0 if final else opcode
        return first

    def ping(self, payload: bytes = b"") -> bytes:
        """A ping frame (§5.5.2); at most 125 bytes of payload."""
        return self._send_control(OP_PING, payload)

    def pong(self, payload: bytes = b"") -> bytes:
        """A pong frame (§5.5.3): the answer to a Ping event, with its payload."""
        return self._send_control(OP_PONG, payload)

    def _send_control(self, opcode: int, payload: bytes) -> bytes:
        if self.state not in CAN_SEND:
            raise WebSocketStateError(f"cannot send in state {self.state.name}")
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("a control frame's payload is at most 125 bytes")
        return self._frame(FIN | opcode, bytes(payload))

    def close(self, code: int | None = None, reason: str = "") -> bytes:
        """Our close frame (§5.5.1, §7.1.2). Without ``code``: 1000, or in answer to the peer's
        close its code echoed (an empty close answers an empty one, §5.5.1)."""
        if code is None and self.state is _state.REMOTE_CLOSING:
            code = self.close_code if self.close_code != 1005 else None
        elif code is None:
            code = 1000
        payload = close_payload(code, reason)
        self.state = transition(self.state, "send_close")
        return self._frame(FIN | OP_CLOSE, payload)

    def fail(self, code: int = 1002, reason: str = "") -> bytes:
        """Fail the connection (§7.1.7): the close frame to send before closing the transport
        (``b""`` if we sent our close already); the state becomes CLOSED.

        The answer to a ProtocolError event: ``fail(event.code, event.reason)``.
        """
        frame = b""
        if self.state in CAN_SEND:
            frame = self._frame(FIN | OP_CLOSE, close_payload(code, reason[:100]))
        self._reading = False
        self.state = transition(self.state, "fail")
        return frame

    def _frame(self, first: int, payload: bytes) -> bytes:
        if not self._is_client:
            return frame_header(first, len(payload), None) + payload
        key = self._next_key()
        # unmask, not mask: the standard library's large result is a bytearray, joined here
        # without a copy to bytes first.
        return frame_header(first, len(payload), key) + _frames.unmask(
            payload, 0, len(payload), key
        )

    def _next_key(self) -> bytes:
        """A fresh masking key (§5.3: "unpredictable"), from a pool drawn 1 KiB at a time."""
        index = self._mask_index
        if index >= len(self._mask_pool):
            self._mask_pool = self._random(_MASK_POOL)
            index = 0
        self._mask_index = index + 4
        return self._mask_pool[index : index + 4]
