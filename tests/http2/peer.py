"""A raw HTTP/2 client for tests: builds frames by hand so every rule can be broken."""

from __future__ import annotations

from thor.http2.protocol import H2Config, H2Connection
from thor.http2.protocol.connection import PREFACE
from thor.http2.protocol.events import Event
from thor.http2.protocol.frames import (
    END_HEADERS,
    END_STREAM,
    Frame,
    FrameReader,
    headers_frames,
    settings_frame,
)
from thor.http2.protocol.hpack import Decoder, Encoder

REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")]


def raw(type_: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((type_, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


class Peer:
    """A server connection and a hand-driven client in front of it."""

    def __init__(
        self, config: H2Config | None = None, settings: dict[int, int] | None = None
    ) -> None:
        self.server = H2Connection(config)
        self.server.initiate_connection()
        self.encoder = Encoder()
        self.decoder = Decoder(max_header_list_size=1 << 20)
        self.reader = FrameReader((1 << 24) - 1)
        self.events = self.send(PREFACE + settings_frame(settings or {}))
        self.received = self.frames()

    def send(self, data: bytes) -> list[Event]:
        return self.server.receive_data(data)

    def frames(self) -> list[Frame]:
        self.reader.feed(self.server.data_to_send())
        out = []
        while (frame := self.reader.next_frame()) is not None:
            out.append(frame)
        return out

    def block(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(fields)

    def request(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]] | None = None,
        end_stream: bool = True,
    ) -> list[Event]:
        block = self.block(REQUEST if fields is None else fields)
        return self.send(headers_frames(stream_id, block, end_stream, 16384))

    def headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], flags: int) -> bytes:
        return raw(1, flags, stream_id, self.block(fields))


__all__ = ["END_HEADERS", "END_STREAM", "REQUEST", "Peer", "raw"]
