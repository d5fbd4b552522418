"""permessage-deflate (RFC 7692): negotiation rules both sides, the codec, the bomb."""

from __future__ import annotations

import zlib

import pytest

from thor.websocket.protocol import (
    BytesMessage,
    Connection,
    Deflate,
    DeflateConfig,
    HandshakeResponseError,
    ProtocolError,
    TextFragment,
    TextMessage,
    client_request,
)
from thor.websocket.protocol.deflate import Deflater, Inflater, InflateTooBig, accept_offer
from thor.websocket.protocol.handshake import parse_extensions

from .helpers import client_frame, counter_random, feed, splits


def negotiate(offer: bytes, config: DeflateConfig | None = None) -> tuple[Deflate, bytes] | None:
    return accept_offer(parse_extensions([offer]), config or DeflateConfig())


# --- server side: accepting offers (§7.1) --------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "config", "answer"),
    [
        (b"permessage-deflate", DeflateConfig(), b"permessage-deflate"),
        (
            b"permessage-deflate; server_no_context_takeover",
            DeflateConfig(),
            b"permessage-deflate; server_no_context_takeover",  # §7.1.1.1: MUST echo
        ),
        (
            b"permessage-deflate; client_no_context_takeover",
            DeflateConfig(),
            b"permessage-deflate; client_no_context_takeover",
        ),
        (
            b"permessage-deflate",
            DeflateConfig(server_no_context_takeover=True, client_no_context_takeover=True),
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            b"permessage-deflate; server_max_window_bits=10",
            DeflateConfig(),
            b"permessage-deflate; server_max_window_bits=10",
        ),
        (
            b"permessage-deflate; server_max_window_bits=12",
            DeflateConfig(server_max_window_bits=9),
            b"permessage-deflate; server_max_window_bits=9",  # smaller is allowed
        ),
        (
            b"permessage-deflate",
            DeflateConfig(server_max_window_bits=11),
            b"permessage-deflate; server_max_window_bits=11",  # unasked is allowed
        ),
        (
            b"permessage-deflate; client_max_window_bits",
            DeflateConfig(client_max_window_bits=10),
            b"permessage-deflate; client_max_window_bits=10",
        ),
        (
            b"permessage-deflate; client_max_window_bits=9",
            DeflateConfig(client_max_window_bits=12),
            b"permessage-deflate; client_max_window_bits=9",
        ),
        (
            b"permessage-deflate; client_max_window_bits",
            DeflateConfig(),
            b"permessage-deflate",
        ),
        (
            b"permessage-deflate",
            DeflateConfig(client_max_window_bits=10),
            b"permessage-deflate",  # §7.1.2.2: not offered, MUST NOT be sent
        ),
        (
            b"permessage-deflate; server_max_window_bits=15",
            DeflateConfig(),
            b"permessage-deflate; server_max_window_bits=15",  # accepting it means naming it
        ),
        (
            b'permessage-deflate; server_max_window_bits="8"',
            DeflateConfig(),
            b"permessage-deflate; server_max_window_bits=8",
        ),
    ],
)
def test_accepting_an_offer(offer: bytes, config: DeflateConfig, answer: bytes) -> None:
    found = negotiate(offer, config)
    assert found is not None
    assert found[1] == answer


@pytest.mark.parametrize(
    "offer",
    [
        b"permessage-deflate; server_max_window_bits",  # needs a value
        b"permessage-deflate; server_max_window_bits=7",
        b"permessage-deflate; server_max_window_bits=16",
        b"permessage-deflate; server_max_window_bits=010",  # no leading zero
        b"permessage-deflate; client_max_window_bits=abc",
        b"permessage-deflate; server_no_context_takeover=1",
        b"permessage-deflate; client_no_context_takeover=x",
        b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        b"permessage-deflate; unknown_param",
        b"x-webkit-deflate-frame",
    ],
)
def test_declining_an_offer(offer: bytes) -> None:
    assert negotiate(offer) is None


def test_the_first_acceptable_offer_wins() -> None:
    found = negotiate(
        b"permessage-deflate; bogus, permessage-deflate; client_max_window_bits=10, "
        b"permessage-deflate"
    )
    assert found is not None
    assert found[0].client_max_window_bits == 10


# --- client side: checking the answer --------------------------------------------------------


def check(config: DeflateConfig, answer: bytes) -> Deflate | None:
    hello = client_request(b"h", deflate=config, random=counter_random)
    from thor.websocket.protocol import accept_value

    headers = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"upgrade"),
        (b"Sec-WebSocket-Accept", accept_value(hello.key)),
        (b"Sec-WebSocket-Extensions", answer),
    ]
    return hello.check(101, headers).deflate


def test_the_client_offer_spells_its_config() -> None:
    config = DeflateConfig(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=9,
    )
    hello = client_request(b"h", deflate=config, random=counter_random)
    assert hello.headers[-1] == (
        b"Sec-WebSocket-Extensions",
        b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        b"server_max_window_bits=10; client_max_window_bits=9",
    )


@pytest.mark.parametrize(
    ("config", "answer", "expected"),
    [
        (DeflateConfig(), b"permessage-deflate", Deflate()),
        (
            DeflateConfig(),
            b"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
            Deflate(server_no_context_takeover=True, client_no_context_takeover=True),
        ),
        (
            DeflateConfig(),
            b"permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
            Deflate(server_max_window_bits=9, client_max_window_bits=8),
        ),
        (
            DeflateConfig(server_max_window_bits=10),
            b"permessage-deflate; server_max_window_bits=10",
            Deflate(server_max_window_bits=10),
        ),
        (
            DeflateConfig(server_max_window_bits=15, server_no_context_takeover=True),
            b"permessage-deflate; server_max_window_bits=15; server_no_context_takeover",
            Deflate(server_max_window_bits=15, server_no_context_takeover=True),
        ),
        (
            DeflateConfig(client_max_window_bits=10),
            b"permessage-deflate",
            Deflate(client_max_window_bits=10),  # we said we would stay under 10
        ),
    ],
)
def test_the_client_accepts_a_valid_answer(
    config: DeflateConfig, answer: bytes, expected: Deflate
) -> None:
    assert check(config, answer) == expected


@pytest.mark.parametrize(
    ("config", "answer"),
    [
        (DeflateConfig(server_no_context_takeover=True), b"permessage-deflate"),
        (DeflateConfig(server_max_window_bits=10), b"permessage-deflate"),
        (
            DeflateConfig(server_max_window_bits=10),
            b"permessage-deflate; server_max_window_bits=11",
        ),
        (
            DeflateConfig(client_max_window_bits=10),
            b"permessage-deflate; client_max_window_bits=12",
        ),
        (DeflateConfig(), b"permessage-deflate; client_max_window_bits"),  # value required
        (DeflateConfig(), b"permessage-deflate; server_max_window_bits=20"),
        (DeflateConfig(), b"permessage-deflate; foo"),
        (DeflateConfig(), b"permessage-deflate, permessage-deflate"),
    ],
)
def test_the_client_fails_an_invalid_answer(config: DeflateConfig, answer: bytes) -> None:
    with pytest.raises(HandshakeResponseError):
        check(config, answer)


# --- the codec -------------------------------------------------------------------------------


OPTIONS = [
    Deflate(),
    Deflate(server_no_context_takeover=True),
    Deflate(client_no_context_takeover=True),
    Deflate(server_no_context_takeover=True, client_no_context_takeover=True),
    Deflate(server_max_window_bits=8, client_max_window_bits=8),
    Deflate(server_max_window_bits=9, client_max_window_bits=12),
    Deflate(server_max_window_bits=15, client_max_window_bits=10, level=1),
]
MESSAGES = ["", "a", "hello " * 200, "héllo wörld ∑ 😀" * 50, "x" * 70000]


def pair(deflate: Deflate, **kw: object) -> tuple[Connection, Connection]:
    return (
        Connection("client", deflate=deflate, random=counter_random, **kw),  # type: ignore[arg-type]
        Connection("server", deflate=deflate, **kw),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("deflate", OPTIONS, ids=repr)
def test_round_trips_each_way(deflate: Deflate) -> None:
    client, server = pair(deflate)
    for _ in range(2):  # twice: the second round uses (or not) the context of the first
        for text in MESSAGES:
            frame = client.send_text(text)
            assert frame[0] & 0x40, "RSV1 marks a compressed message"
            assert server.receive_data(frame) == [TextMessage(text)]
            assert client.receive_data(server.send_bytes(text.encode())) == [
                BytesMessage(text.encode())
            ]


def test_context_takeover_makes_a_repeat_smaller_and_no_takeover_does_not() -> None:
    text = "a fairly unique sentence that compresses against itself only once. " * 3
    with_context, _ = pair(Deflate())
    without_context, _ = pair(Deflate(client_no_context_takeover=True))
    first = len(with_context.send_text(text))
    assert len(with_context.send_text(text)) < first / 3
    first = len(without_context.send_text(text))
    assert len(without_context.send_text(text)) == first


@pytest.mark.parametrize("deflate", OPTIONS[:4], ids=repr)
def test_fragmented_compressed_message_byte_by_byte(deflate: Deflate) -> None:
    client, _ = pair(deflate, fragments=True)
    wire = client.send_text("héllo ", final=False) + client.send_text("wörld", final=True)
    assert wire[0] & 0x40
    second = wire.index(bytes([0x80]), 2)  # FIN + continuation opcode, RSV1 clear
    assert not wire[second] & 0x40, "RSV1 only on the first frame (RFC 7692 §6.1)"
    for pieces in [[wire], [wire[i : i + 1] for i in range(len(wire))]]:
        server = Connection("server", deflate=deflate, fragments=True)
        events = feed(server, pieces)
        assert "".join(e.data for e in events if isinstance(e, TextFragment)) == "héllo wörld"
        assert [e.final for e in events if isinstance(e, TextFragment)][-1] is True


def test_control_frames_are_never_compressed() -> None:
    client, _ = pair(Deflate())
    frame = client.ping(b"abc")
    assert not frame[0] & 0x40
    frame = client.close()
    assert not frame[0] & 0x40


def test_a_compressed_control_frame_fails() -> None:
    _, server = pair(Deflate())
    [event] = server.receive_data(client_frame(0x9, b"x", rsv=4))
    assert isinstance(event, ProtocolError)
    assert event.code == 1002


def test_a_peer_ending_its_stream_with_bfinal_is_followed() -> None:
    """RFC 7692 §7.2.3.3: a sender may end a message's stream with BFINAL; we start over."""
    _, server = pair(Deflate())
    for text in (b"first", b"second"):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = c.compress(text) + c.flush(zlib.Z_FINISH)
        assert server.receive_data(client_frame(0x2, payload, rsv=4)) == [BytesMessage(text)]


def test_corrupt_compressed_data_fails_with_1007() -> None:
    _, server = pair(Deflate())
    [event] = server.receive_data(client_frame(0x2, b"\xff\xff\xff\xff", rsv=4))
    assert isinstance(event, ProtocolError)
    assert event.code == 1007


# --- limits: the compression bomb ------------------------------------------------------------


def bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (c.compress(b"\0" * size) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize("split", [False, True])
def test_a_compression_bomb_is_a_1009(split: bool) -> None:
    payload = bomb(16 * 1024 * 1024)  # 16 MiB of zeros in ~16 KiB
    assert len(payload) < 20_000
    _, server = pair(Deflate(), max_message_size=1024 * 1024)
    frame = client_frame(0x2, payload, rsv=4)
    pieces = [frame[:5000], frame[5000:]] if split else [frame]
    events = feed(server, pieces)
    assert isinstance(events[-1], ProtocolError)
    assert events[-1].code == 1009


def test_max_decompressed_size_is_its_own_limit() -> None:
    _, server = pair(Deflate(), max_decompressed_size=1000)
    [ok] = server.receive_data(client_frame(0x2, bomb(1000), rsv=4))
    assert ok == BytesMessage(b"\0" * 1000)
    [event] = server.receive_data(client_frame(0x2, bomb(1001), rsv=4))
    assert isinstance(event, ProtocolError)
    assert event.code == 1009


def test_inflater_steps_over_large_output() -> None:
    """More than one INFLATE_STEP of output, within the room, comes out whole."""
    inflater = Inflater(15)
    assert inflater.inflate(bomb(1_000_000), True, 1_000_000) == b"\0" * 1_000_000
    with pytest.raises(InflateTooBig):
        Inflater(15).inflate(bomb(1_000_000), True, 999_999)


def test_window_bits_8_compresses_with_9() -> None:
    """zlib refuses raw deflate with 8 bits; 9 stays within a 256-byte window (deflate.py)."""
    with pytest.raises(ValueError, match="Invalid initialization"):
        zlib.compressobj(6, zlib.DEFLATED, -8)
    deflater = Deflater(8, False, 6)
    data = bytes(range(256)) * 40
    payload = deflater.compress(data)
    assert zlib.decompressobj(-8).decompress(payload + b"\x00\x00\xff\xff") == data


@pytest.mark.parametrize("text", ["", "x", "hello hello hello"])
def test_compressed_messages_split_at_every_offset(text: str) -> None:
    client, _ = pair(Deflate())
    wire = client.send_text(text)
    for pieces in splits(wire):
        _, server = pair(Deflate())
        assert feed(server, pieces) == [TextMessage(text)]


def test_config_checks_its_values() -> None:
    with pytest.raises(ValueError, match="window bits"):
        DeflateConfig(server_max_window_bits=7)
    with pytest.raises(ValueError, match="level"):
        DeflateConfig(level=10)


def configs() -> list[DeflateConfig]:
    return [
        DeflateConfig(snct, cnct, sbits, cbits)
        for snct in (False, True)
        for cnct in (False, True)
        for sbits in (None, 8, 12, 15)
        for cbits in (None, 9, 15)
    ]


def test_every_offer_our_server_accepts_our_client_accepts_alike() -> None:
    """Any client config against any server config: both ends agree on the parameters."""
    from thor.websocket.protocol import accept, read_request

    for mine in configs():
        hello = client_request(b"h", deflate=mine, random=counter_random)
        request = read_request(b"GET", b"1.1", hello.headers)
        for theirs in configs()[::5]:
            answer = accept(request, deflate=theirs)
            assert answer.deflate is not None
            checked = hello.check(101, answer.headers).deflate
            assert checked is not None
            assert checked.server_max_window_bits == answer.deflate.server_max_window_bits
            assert checked.client_max_window_bits <= answer.deflate.client_max_window_bits
            assert checked.server_no_context_takeover == answer.deflate.server_no_context_takeover
            # And they talk.
            client = Connection("client", deflate=checked, random=counter_random)
            server = Connection("server", deflate=answer.deflate)
            assert server.receive_data(client.send_text("abc abc abc")) == [
                TextMessage("abc abc abc")
            ]
            assert client.receive_data(server.send_text("xyz xyz")) == [TextMessage("xyz xyz")]
