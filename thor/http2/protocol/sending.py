"""The sending half of ``H2Connection``: heads, data within the peer's windows, trailers,
resets, window updates and GOAWAY (RFC 9113 §5.2, §6.8, §6.9, §8.1).

The methods only queue bytes; ``data_to_send()`` hands them over.  ``send_data`` never
buffers beyond what the windows allow: it sends what fits and returns the count, so the
caller keeps the rest and pauses its producer until ``WindowUpdated`` (or a SETTINGS
change) opens the window again, and memory stays bounded by the caller's own buffer.
A mistake of the caller (sending on a stream that cannot send) is ``LocalProtocolError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from thor.http2.protocol.errors import ErrorCode, LocalProtocolError
from thor.http2.protocol.frames import (
    data_frame,
    data_header,
    goaway_frame,
    headers_frames,
    ping_frame,
    rst_stream_frame,
    window_update_frame,
)
from thor.http2.protocol.hpack import Encoder
from thor.http2.protocol.settings import MAX_WINDOW, H2Config, SettingCode
from thor.http2.protocol.stream import (
    CLOSED,
    HALF_CLOSED_LOCAL,
    HALF_CLOSED_REMOTE,
    OPEN,
    SEND_END_STREAM,
    SEND_HEADERS,
    Stream,
)

__all__ = ["Sender"]

Fields = Sequence[tuple[bytes, bytes]]
DRAIN_PING = b"thor-drn"  # the PING that times a graceful GOAWAY (§6.8)


class Sender:
    """Mixed into ``H2Connection``, which provides the state declared here."""

    config: H2Config
    client_side: bool
    streams: dict[int, Stream]
    encoder: Encoder
    peer_settings: dict[int, int]
    outbound_window: int
    inbound_window: int
    unacked: int
    next_local_stream_id: int
    highest_peer_stream_id: int
    goaway_last_stream_id: int
    terminated: bool
    _out: list[bytes]

    remember_closed: Callable[[int, bool], None]
    _close_stream: Callable[[Stream], None]

    # Streams ----------------------------------------------------------------------------

    def get_next_available_stream_id(self) -> int:
        """Client role: the id the next request must use (§5.1.1)."""
        return self.next_local_stream_id

    @property
    def open_streams(self) -> int:
        return len(self.streams)

    def _sending_stream(self, stream_id: int) -> Stream:
        stream = self.streams.get(stream_id)
        if stream is None:
            if self.client_side and stream_id == self.next_local_stream_id:
                stream = Stream(
                    stream_id,
                    self.config.initial_window_size,
                    self.peer_settings[SettingCode.INITIAL_WINDOW_SIZE],
                )
                self.streams[stream_id] = stream
                self.next_local_stream_id += 2
                return stream
            raise LocalProtocolError(f"stream {stream_id} is not open")
        if stream.state is not OPEN and stream.state is not HALF_CLOSED_REMOTE:
            raise LocalProtocolError(f"stream {stream_id} is {stream.state.value}")
        return stream

    def _end_local(self, stream: Stream) -> None:
        if stream.move(SEND_END_STREAM) is CLOSED:
            self._close_stream(stream)

    # Heads, data, trailers --------------------------------------------------------------

    def send_headers(self, stream_id: int, headers: Fields, end_stream: bool = False) -> None:
        """A response head (server: ``:status`` first; 1xx as often as needed before the
        final one), or a request head (client, on ``get_next_available_stream_id()``)."""
        stream = self._sending_stream(stream_id)
        if not self.client_side:
            if not headers or headers[0][0] != b":status":
                raise LocalProtocolError("a response head starts with :status")
            if stream.response_started:
                raise LocalProtocolError("the response head was sent: use send_trailers")
            if headers[0][1][:1] == b"1":
                if end_stream:
                    raise LocalProtocolError("a 1xx response cannot end the stream (§8.1)")
            else:
                stream.response_started = True
        block = self.encoder.encode(headers)
        max_frame = self.peer_settings[SettingCode.MAX_FRAME_SIZE]
        self._out.append(headers_frames(stream_id, block, end_stream, max_frame))
        stream.move(SEND_HEADERS)
        if end_stream:
            self._end_local(stream)

    def send_trailers(self, stream_id: int, headers: Fields) -> None:
        """Trailers end the stream (§8.1); they carry no pseudo-header field."""
        stream = self._sending_stream(stream_id)
        if any(name[:1] == b":" for name, _ in headers):
            raise LocalProtocolError("trailers carry no pseudo-header field (§8.1)")
        if not self.client_side and not stream.response_started:
            raise LocalProtocolError("trailers before the response head")
        block = self.encoder.encode(headers)
        max_frame = self.peer_settings[SettingCode.MAX_FRAME_SIZE]
        self._out.append(headers_frames(stream_id, block, True, max_frame))
        self._end_local(stream)

    def local_flow_control_window(self, stream_id: int) -> int:
        """How many bytes ``send_data`` would send now on this stream."""
        stream = self._sending_stream(stream_id)
        return max(0, min(stream.outbound_window, self.outbound_window))

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> int:
        """Send what the windows allow of ``data`` (§6.9.1); return how much was sent.

        ``end_stream`` takes effect only if all of ``data`` was sent.
        """
        stream = self._sending_stream(stream_id)
        if not self.client_side and not stream.response_started:
            raise LocalProtocolError("data before the response head")
        size = len(data)
        allowed = max(0, min(size, stream.outbound_window, self.outbound_window))
        finish = end_stream and allowed == size
        out = self._out
        if allowed == size and size <= self.peer_settings[SettingCode.MAX_FRAME_SIZE]:
            if size or finish:
                out.append(data_header(stream_id, size, finish))
                out.append(data)
        elif allowed:
            max_frame = self.peer_settings[SettingCode.MAX_FRAME_SIZE]
            for start in range(0, allowed, max_frame):
                stop = min(start + max_frame, allowed)
                out.append(data_header(stream_id, stop - start, finish and stop == allowed))
                out.append(data[start:stop])
        stream.outbound_window -= allowed
        self.outbound_window -= allowed
        if finish:
            self._end_local(stream)
        return allowed

    def end_stream(self, stream_id: int) -> None:
        """End the stream with an empty DATA frame."""
        stream = self._sending_stream(stream_id)
        self._out.append(data_frame(stream_id, b"", True))
        self._end_local(stream)

    def reset_stream(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """RST_STREAM (§6.4): the stream is closed; late frames from the peer are ignored."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        stream.state = CLOSED
        self._out.append(rst_stream_frame(stream_id, error_code))
        self.remember_closed(stream_id, True)

    # Receive windows --------------------------------------------------------------------

    def acknowledge_received_data(self, length: int, stream_id: int) -> None:
        """The application consumed ``length`` flow-controlled bytes of ``stream_id``: give
        them back to the peer, in WINDOW_UPDATEs batched to half a window (§6.9)."""
        if length <= 0:
            return
        self.unacked += length
        if self.unacked >= self.config.connection_window_size // 2:
            self._out.append(window_update_frame(0, self.unacked))
            self.inbound_window += self.unacked
            self.unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None or (stream.state is not OPEN and stream.state is not HALF_CLOSED_LOCAL):
            return  # the peer sends no more on it: no window to reopen
        stream.unacked += length
        if stream.unacked >= self.config.initial_window_size // 2:
            self._out.append(window_update_frame(stream_id, stream.unacked))
            stream.inbound_window += stream.unacked
            stream.unacked = 0

    # GOAWAY -----------------------------------------------------------------------------

    def close_connection(
        self, error_code: int = ErrorCode.NO_ERROR, additional_data: bytes = b""
    ) -> None:
        """GOAWAY with the last stream the peer opened (§6.8): streams up to it finish,
        later ones are ignored.  With an error code, the connection is over."""
        last = self.highest_peer_stream_id
        self._out.append(goaway_frame(last, error_code, additional_data))
        self.goaway_last_stream_id = last
        if error_code:
            self.terminated = True

    def start_drain(self) -> None:
        """Graceful shutdown (§6.8): GOAWAY with 2^31-1 and a PING; when its ACK arrives,
        every stream the peer opened before seeing the GOAWAY has arrived too, and the
        final GOAWAY names the last of them."""
        self._out.append(goaway_frame(MAX_WINDOW, ErrorCode.NO_ERROR))
        self._out.append(ping_frame(DRAIN_PING))
        self.goaway_last_stream_id = MAX_WINDOW

    def _final_goaway(self) -> None:
        self.close_connection(ErrorCode.NO_ERROR)

    @property
    def is_drained(self) -> bool:
        """A final GOAWAY was sent and no stream remains: the connection may close."""
        return self.goaway_last_stream_id not in (-1, MAX_WINDOW) and not self.streams
