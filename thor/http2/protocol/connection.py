"""The HTTP/2 connection, sans-IO (RFC 9113): bytes in, events out; calls in, bytes out.

Theory of operation.  ``receive_data(bytes)`` checks the preface (§3.4), splits frames
(``FrameReader``), and handles each in wire order, returning the events (``events.py``).  A
frame that breaks a rule gets the error the RFC names (§5.4): a stream error queues
RST_STREAM and reports ``StreamReset(remote=False)``, and the connection carries on; a
connection error queues GOAWAY with the last stream processed, reports
``ConnectionTerminated(remote=False)``, and the connection ignores everything afterwards.
What to send accumulates until ``data_to_send()`` takes it.

Header blocks are gathered from HEADERS and CONTINUATION frames (nothing may come between
them, §6.10) and always decoded, even for a stream about to be refused, since HPACK's state
is shared by the whole connection (§4.3).  ``headers.py`` turns a decoded block into
stream events; this module owns the connection-wide rules.

Flow control (§5.2, §6.9) in both directions: received DATA counts against this side's
windows, which only reopen as the application calls ``acknowledge_received_data`` (a slow
reader keeps its window closed); ``send_data`` sends what the peer's windows allow and says
how much, the rest waiting for a ``WindowUpdated`` event.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from thor.http2.protocol import defences, headers
from thor.http2.protocol.defences import FloodGuard
from thor.http2.protocol.errors import (
    ErrorCode,
    FlowControlError,
    H2ConnectionError,
    H2StreamError,
    LocalProtocolError,
    StreamClosedError,
    error_code,
)
from thor.http2.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    PingAcknowledged,
    PingReceived,
    SettingsAcknowledged,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from thor.http2.protocol.frames import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    STREAM_ID_MASK,
    WINDOW_UPDATE,
    Frame,
    FrameReader,
    goaway_frame,
    ping_frame,
    rst_stream_frame,
    settings_frame,
    window_update_frame,
)
from thor.http2.protocol.hpack import Decoder, Encoder
from thor.http2.protocol.sending import DRAIN_PING, Sender
from thor.http2.protocol.settings import (
    DEFAULT_SETTINGS,
    MAX_WINDOW,
    H2Config,
    SettingCode,
    parse_settings,
)
from thor.http2.protocol.stream import (
    CLOSED,
    HALF_CLOSED_LOCAL,
    HALF_CLOSED_REMOTE,
    OPEN,
    RECV_END_STREAM,
    Stream,
    StreamInput,
)

__all__ = ["PREFACE", "H2Connection"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # §3.4

Handler = Callable[[Frame, list[Event]], None]


class H2Connection(Sender):
    """One HTTP/2 connection; the server role by default, the client role with
    ``client_side=True``.  Sending methods are in ``sending.Sender``."""

    def __init__(self, config: H2Config | None = None, *, client_side: bool = False) -> None:
        self.config = config = config or H2Config()
        self.client_side = client_side
        self.streams: dict[int, Stream] = {}
        # Closed streams, oldest first: True if this side reset them (late frames ignored).
        self.closed_streams: dict[int, bool] = {}
        self.highest_peer_stream_id = 0  # the last stream the peer opened (§6.8)
        self.next_local_stream_id = 1 if client_side else 2
        self.peer_settings = dict(DEFAULT_SETTINGS)
        self.outbound_window = DEFAULT_SETTINGS[SettingCode.INITIAL_WINDOW_SIZE]
        self.inbound_window = DEFAULT_SETTINGS[SettingCode.INITIAL_WINDOW_SIZE]
        self.unacked = 0  # consumed by the application, not yet returned to the peer
        self.terminated = False
        self.goaway_last_stream_id = -1  # as sent by this side; -1: none sent
        self.decoder = Decoder(config.header_table_size, config.max_header_list_size)
        self.encoder = Encoder()
        self._reader = FrameReader(config.max_frame_size)
        self._guard = FloodGuard(config)
        self._out: list[bytes] = []
        self._control_bytes = 0  # control frames queued since the last data_to_send()
        self._preface_seen = b"" if not client_side else PREFACE
        self._settings_received = False
        self._settings_unacked = 0
        # A header block being gathered: its first frame, fragments, size and frame count.
        self._block_frame: Frame | None = None
        self._block: list[bytes] = []
        self._block_size = 0
        self._block_frames = 0
        self._handlers: dict[int, Handler] = {
            DATA: self._on_data,
            HEADERS: self._on_headers,
            PRIORITY: self._on_priority,
            RST_STREAM: self._on_rst_stream,
            SETTINGS: self._on_settings,
            PUSH_PROMISE: self._on_push_promise,
            PING: self._on_ping,
            GOAWAY: self._on_goaway,
            WINDOW_UPDATE: self._on_window_update,
            CONTINUATION: self._on_continuation,
        }

    # Output -----------------------------------------------------------------------------

    def initiate_connection(self) -> None:
        """Queue this side's preface: (client) the magic, SETTINGS, the connection window."""
        if self.client_side:
            self._out.append(PREFACE)
        self._out.append(settings_frame(self.config.local_settings()))
        self._settings_unacked += 1
        extra = self.config.connection_window_size - self.inbound_window
        if extra > 0:
            self._out.append(window_update_frame(0, extra))
            self.inbound_window += extra

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        """Server role, h2c by ``Upgrade: h2c`` (RFC 7540 §3.2): after answering 101, start
        HTTP/2 with the client's ``HTTP2-Settings`` value (base64url SETTINGS payload, applied
        without ACK: the 101 acknowledges it, §3.2.1).  The HTTP/1.1 request becomes stream 1,
        half-closed (remote): answer it with ``send_headers(1, ...)``.  The client's preface
        is still expected.  A bad header value raises ``H2ConnectionError``: answer the
        HTTP/1.1 request without upgrading.
        """
        if self.client_side:
            raise LocalProtocolError("only a server accepts an upgrade")
        try:
            padded = settings_header + b"=" * (-len(settings_header) % 4)
            payload = base64.b64decode(padded, altchars=b"-_", validate=True)
        except ValueError:
            raise H2ConnectionError("HTTP2-Settings is not base64url (RFC 7540 §3.2.1)") from None
        if len(payload) % 6:
            raise H2ConnectionError("HTTP2-Settings not a SETTINGS payload (RFC 7540 §3.2.1)")
        self._apply_settings(parse_settings(payload))
        stream = Stream(
            1, self.config.initial_window_size, self.peer_settings[SettingCode.INITIAL_WINDOW_SIZE]
        )
        stream.state = HALF_CLOSED_REMOTE
        stream.head_done = True
        self.streams[1] = stream
        self.highest_peer_stream_id = 1
        self.initiate_connection()

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        self._control_bytes = 0
        return out

    def queue_control(self, frame: bytes) -> None:
        """Queue a frame the peer made this side owe; bounded (CVE-2019-9512/9515)."""
        self._control_bytes += len(frame)
        if self._control_bytes > self.config.max_outbound_control_bytes:
            raise H2ConnectionError(
                "control frames pile up unread (§10.5)", ErrorCode.ENHANCE_YOUR_CALM
            )
        self._out.append(frame)

    # Input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.terminated:
            return events
        if len(self._preface_seen) < len(PREFACE):
            data = self._take_preface(data, events)
            if not data:
                return events
        reader = self._reader
        reader.feed(data)
        handlers, tick = self._handlers, self._guard.tick
        while True:
            try:
                frame = reader.next_frame()
                if frame is None:
                    break
                tick()
                if self._block_frame is not None and (
                    frame.type != CONTINUATION or frame.stream_id != self._block_frame.stream_id
                ):
                    raise H2ConnectionError("a header block interrupted (§6.10)")
                if not self._settings_received and frame.type != SETTINGS:
                    raise H2ConnectionError("the preface's first frame is not SETTINGS (§3.4)")
                handler = handlers.get(frame.type)
                if handler is not None:  # unknown types are ignored (§5.5)
                    handler(frame, events)
            except H2StreamError as error:
                try:
                    self._reset_for_error(error, events)
                except H2ConnectionError as unread:  # resets owed pile up unread
                    self._terminate(unread, events)
                    break
            except H2ConnectionError as error:
                self._terminate(error, events)
                break
        return events

    def _take_preface(self, data: bytes, events: list[Event]) -> bytes:
        seen = self._preface_seen + data[: len(PREFACE) - len(self._preface_seen)]
        if not PREFACE.startswith(seen):
            self._terminate(H2ConnectionError("invalid connection preface (§3.4)"), events)
            return b""
        rest = data[len(seen) - len(self._preface_seen) :]
        self._preface_seen = seen
        return rest

    def _terminate(self, error: H2ConnectionError, events: list[Event]) -> None:
        """Connection error (§5.4.1): GOAWAY with the last stream processed, then nothing."""
        last = self.highest_peer_stream_id
        self._out.append(goaway_frame(last, error.code, error.detail.encode()[:256]))
        self.goaway_last_stream_id = last
        self.terminated = True
        events.append(ConnectionTerminated(error.code, last, b"", False, error.detail))

    def _reset_for_error(self, error: H2StreamError, events: list[Event]) -> None:
        """Stream error (§5.4.2): RST_STREAM, and the stream is closed for good.

        Resets this side sends count with the peer's: a stream of refused or malformed
        requests is the rapid-reset attack by other means."""
        self._guard.count(defences.RESET)
        self.queue_control(rst_stream_frame(error.stream_id, error.code))
        stream = self.streams.pop(error.stream_id, None)
        if stream is not None:
            stream.state = CLOSED
        self.remember_closed(error.stream_id, True)
        events.append(StreamReset(error.stream_id, error.code, False))

    def remember_closed(self, stream_id: int, reset_here: bool) -> None:
        closed = self.closed_streams
        closed[stream_id] = reset_here
        if len(closed) > self.config.closed_streams_remembered:
            del closed[next(iter(closed))]

    def _close_stream(self, stream: Stream) -> None:
        del self.streams[stream.id]
        self.remember_closed(stream.id, False)

    def _is_idle(self, stream_id: int) -> bool:
        """A stream id not used yet by whichever side opens it (§5.1.1)."""
        if (stream_id & 1) == (0 if self.client_side else 1):
            return stream_id > self.highest_peer_stream_id
        return stream_id >= self.next_local_stream_id

    def _missing_stream(self, stream_id: int, what: str) -> None:
        """A frame for a stream not in ``streams``: idle is a PROTOCOL_ERROR (§5.1), a stream
        this side reset is ignored (§5.1, closed), any other closed one STREAM_CLOSED."""
        if self._is_idle(stream_id):
            raise H2ConnectionError(f"{what} on idle stream {stream_id} (§5.1)")
        if not self.closed_streams.get(stream_id, False):
            raise StreamClosedError(stream_id, f"{what} on closed stream {stream_id} (§5.1)")

    # Frame handlers ---------------------------------------------------------------------

    def _on_data(self, frame: Frame, events: list[Event]) -> None:
        sid, length = frame.stream_id, frame.flow_length
        if length > self.inbound_window:
            raise FlowControlError("DATA beyond the connection window (§6.9.1)")
        self.inbound_window -= length
        stream = self.streams.get(sid)
        if stream is None or (stream.state is not OPEN and stream.state is not HALF_CLOSED_LOCAL):
            # No application will consume these bytes: return them to the connection now.
            self.acknowledge_received_data(length, 0)
            if stream is None:
                self._missing_stream(sid, "DATA")
                return
            raise StreamClosedError(sid, "DATA after END_STREAM (§5.1, half-closed (remote))")
        if length > stream.inbound_window:
            self.acknowledge_received_data(length, 0)
            raise H2StreamError(
                sid, "DATA beyond the stream window (§6.9.1)", ErrorCode.FLOW_CONTROL_ERROR
            )
        stream.inbound_window -= length
        data = frame.payload
        end = frame.flags & END_STREAM
        if not data and not end:
            self._guard.count(defences.EMPTY)
        stream.received_length += len(data)
        if 0 <= stream.expected_length < stream.received_length:
            self.acknowledge_received_data(length, 0)
            raise H2StreamError(sid, "more DATA than content-length (§8.1.1)")
        events.append(DataReceived(sid, data, length))
        if end:
            self.end_remote(stream, events)

    def end_remote(self, stream: Stream, events: list[Event]) -> None:
        if 0 <= stream.expected_length != stream.received_length:
            raise H2StreamError(stream.id, "less DATA than content-length (§8.1.1)")
        if stream.move(RECV_END_STREAM) is CLOSED:
            self._close_stream(stream)
        events.append(StreamEnded(stream.id))

    def _on_headers(self, frame: Frame, events: list[Event]) -> None:
        if frame.flags & END_HEADERS:
            if not frame.payload and not frame.flags & END_STREAM:
                self._guard.count(defences.EMPTY)
            self._on_header_block(frame, frame.payload, events)
            return
        self._block_frame = frame
        self._block = [frame.payload]
        self._block_size = len(frame.payload)
        self._block_frames = 0

    def _on_continuation(self, frame: Frame, events: list[Event]) -> None:
        first = self._block_frame
        if first is None:
            raise H2ConnectionError("CONTINUATION without a HEADERS before it (§6.10)")
        self._block.append(frame.payload)
        self._block_size += len(frame.payload)
        self._block_frames += 1
        if not frame.payload and not frame.flags & END_HEADERS:
            self._guard.count(defences.EMPTY)
        if (
            self._block_size > self.config.max_header_block_size
            or self._block_frames > self.config.max_continuation_frames
        ):
            raise H2ConnectionError(
                "header block too large (CONTINUATION flood)", ErrorCode.ENHANCE_YOUR_CALM
            )
        if frame.flags & END_HEADERS:
            block = b"".join(self._block)
            self._block_frame, self._block = None, []
            self._on_header_block(first, block, events)

    def _on_header_block(self, frame: Frame, block: bytes, events: list[Event]) -> None:
        fields = headers.decode_block(self.decoder, block)
        sid = frame.stream_id
        stream = self.streams.get(sid)
        if stream is not None:
            headers.on_later_headers(self, stream, fields, frame, events)
            return
        if self.client_side and sid & 1 and sid < self.next_local_stream_id:
            # A response on a stream this side reset (or closed long ago) crossed the
            # RST_STREAM: ignored, its block decoded for HPACK's sake (§5.1, closed).
            if self.closed_streams.get(sid, True):
                return
            raise StreamClosedError(sid, f"HEADERS on closed stream {sid} (§5.1)")
        if self.client_side or not sid & 1:
            raise H2ConnectionError(
                f"HEADERS opening stream {sid}, not the client's to open (§5.1.1)"
            )
        if sid <= self.highest_peer_stream_id:
            reset_here = self.closed_streams.get(sid)
            if reset_here:
                return  # reset here: late frames are ignored (§5.1)
            if reset_here is None:  # never opened (or long forgotten): §5.1.1
                raise H2ConnectionError(f"HEADERS on stream {sid}, lower than one opened (§5.1.1)")
            raise H2ConnectionError(
                f"HEADERS on closed stream {sid} (§5.1)", ErrorCode.STREAM_CLOSED
            )
        if 0 <= self.goaway_last_stream_id < sid:
            return  # after GOAWAY, new streams are ignored (§6.8)
        self.highest_peer_stream_id = sid
        headers.open_stream(self, frame, fields, events)

    def _on_priority(self, frame: Frame, events: list[Event]) -> None:
        # Priority signals are ignored (§5.3.2) but still counted and checked.
        self._guard.count(defences.PRIORITY_KIND)
        if int.from_bytes(frame.payload[:4], "big") & STREAM_ID_MASK == frame.stream_id:
            raise H2StreamError(frame.stream_id, "stream depends on itself (§5.3.1)")

    def _on_rst_stream(self, frame: Frame, events: list[Event]) -> None:
        self._guard.count(defences.RESET)  # rapid reset (CVE-2023-44487)
        sid = frame.stream_id
        stream = self.streams.pop(sid, None)
        if stream is None:
            if self._is_idle(sid):
                raise H2ConnectionError(f"RST_STREAM on idle stream {sid} (§6.4)")
            return
        stream.move(StreamInput.RECV_RST_STREAM)
        self.remember_closed(sid, False)
        events.append(StreamReset(sid, error_code(int.from_bytes(frame.payload, "big"))))

    def _on_settings(self, frame: Frame, events: list[Event]) -> None:
        if frame.flags & ACK:
            if self._settings_unacked:
                self._settings_unacked -= 1
                events.append(SettingsAcknowledged())
            return
        self._settings_received = True
        self._guard.count(defences.SETTINGS_KIND)
        changed = parse_settings(frame.payload)
        self._apply_settings(changed)
        self.queue_control(settings_frame(ack=True))
        events.append(SettingsChanged(changed))

    def _apply_settings(self, changed: dict[int, int]) -> None:
        window = changed.get(SettingCode.INITIAL_WINDOW_SIZE)
        if window is not None:
            # §6.9.2: a new initial window moves every stream's window by the difference.
            delta = window - self.peer_settings[SettingCode.INITIAL_WINDOW_SIZE]
            for stream in self.streams.values():
                stream.outbound_window += delta
                if stream.outbound_window > MAX_WINDOW:
                    raise FlowControlError("a stream window over 2^31-1 (§6.9.2)")
        if SettingCode.HEADER_TABLE_SIZE in changed:
            self.encoder.set_max_table_size(changed[SettingCode.HEADER_TABLE_SIZE])
        self.peer_settings.update(changed)

    def _on_push_promise(self, frame: Frame, events: list[Event]) -> None:
        raise H2ConnectionError("PUSH_PROMISE with push disabled (§6.6, §8.4)")

    def _on_ping(self, frame: Frame, events: list[Event]) -> None:
        if frame.flags & ACK:
            events.append(PingAcknowledged(frame.payload))
            if frame.payload == DRAIN_PING and self.goaway_last_stream_id == MAX_WINDOW:
                self._final_goaway()
            return
        self._guard.count(defences.PING_KIND)
        self.queue_control(ping_frame(frame.payload, ack=True))
        events.append(PingReceived(frame.payload))

    def _on_goaway(self, frame: Frame, events: list[Event]) -> None:
        payload = frame.payload
        last = int.from_bytes(payload[:4], "big") & STREAM_ID_MASK
        code = error_code(int.from_bytes(payload[4:8], "big"))
        events.append(ConnectionTerminated(code, last, payload[8:]))

    def _on_window_update(self, frame: Frame, events: list[Event]) -> None:
        self._guard.count(defences.UPDATE)
        sid = frame.stream_id
        increment = int.from_bytes(frame.payload, "big") & STREAM_ID_MASK
        if not sid:
            if not increment:
                raise H2ConnectionError("WINDOW_UPDATE of 0 on the connection (§6.9)")
            self.outbound_window += increment
            if self.outbound_window > MAX_WINDOW:
                raise FlowControlError("connection window over 2^31-1 (§6.9.1)")
            events.append(WindowUpdated(0, increment))
            return
        stream = self.streams.get(sid)
        if stream is None:
            if self._is_idle(sid):
                raise H2ConnectionError(f"WINDOW_UPDATE on idle stream {sid} (§5.1)")
            return  # closed: WINDOW_UPDATE may still arrive (§5.1)
        if not increment:
            raise H2StreamError(sid, "WINDOW_UPDATE of 0 (§6.9)")
        stream.outbound_window += increment
        if stream.outbound_window > MAX_WINDOW:
            raise H2StreamError(
                sid, "stream window over 2^31-1 (§6.9.1)", ErrorCode.FLOW_CONTROL_ERROR
            )
        events.append(WindowUpdated(sid, increment))
