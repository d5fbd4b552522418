"""Masking (RFC 6455 §5.3) by either implementation: the same bytes, however a payload comes.

Octet i of a payload is XORed with octet ``i % 4`` of its frame's key. A payload that comes in
several reads is unmasked piece by piece, each piece with the key turned by where it starts
(``Connection._payload``): these tests cut payloads at every offset modulo 4, fragment them,
and check both implementations against the obvious loop and against each other.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest

from thor.websocket.protocol import BytesFragment, BytesMessage, TextMessage, frames

from .helpers import client, client_frame, feed, server, xor

KEYS = [b"\x00\x00\x00\x00", b"\x37\xfa\x21\x3d", b"\xff\x01\x80\x7f"]


def accelerator_loads() -> bool:
    """Can this interpreter load the C accelerator? (Asked without changing the choice.)"""
    before = frames.masking
    try:
        return frames.use_accelerator(True) == frames.ACCELERATOR
    finally:
        frames.use_accelerator(before == frames.ACCELERATOR)


NO_ACCELERATOR = "websockets' C speedups cannot be loaded here (pip install thor[speedups])"


def pieces_cut_at(wire: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({min(cut, len(wire)) for cut in cuts}), len(wire)]
    return [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@pytest.mark.parametrize("size", [*range(131), 2047, 2048, 2049, 2050, 2051, 65535, 65536])
def test_every_length_round_trips(size: int, masking: str) -> None:
    data = bytes((i * 13 + 5) & 0xFF for i in range(size))
    for key in KEYS:
        assert frames.mask(data, key) == xor(data, key)
        assert frames.unmask(b"..." + data + b".", 3, 3 + size, key) == xor(data, key)
    [message] = server().receive_data(client_frame(0x2, data))
    assert message == BytesMessage(data)


@pytest.mark.parametrize("size", [9, 130, 2051, 5000, 70_001])
@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_a_payload_in_several_reads_at_every_offset_mod_4(
    size: int, offset: int, masking: str
) -> None:
    # Reads end at payload offsets congruent to 0, 1, 2 and 3 modulo 4, and the next read
    # starts there: each piece needs the key turned by its own start.
    data = bytes((i * 31 + 7) & 0xFF for i in range(size))
    wire = client_frame(0x2, data)
    header = len(wire) - size
    cuts = [header + offset + step for step in (0, 4, 5, 6, 7, size // 2, size // 2 + 3)]
    assert feed(server(), pieces_cut_at(wire, cuts)) == [BytesMessage(data)]
    text = ("é" * size)[:size]
    wire = client_frame(0x1, text.encode())
    header = len(wire) - len(text.encode())
    assert feed(server(), pieces_cut_at(wire, [header + offset + 1, header + 4097])) == [
        TextMessage(text)
    ]


@pytest.mark.parametrize("size", [2000, 2100])
def test_a_large_payload_split_at_every_offset(size: int, masking: str) -> None:
    data = bytes((i * 7) & 0xFF for i in range(size))
    wire = client_frame(0x2, data)
    for cut in range(len(wire)):
        assert feed(server(), [wire[:cut], wire[cut:]]) == [BytesMessage(data)]


def test_a_fragmented_message_each_frame_its_own_key(masking: str) -> None:
    rng = random.Random(6455)
    chunks = [rng.randbytes(n) for n in (1, 3, 4, 5, 2047, 2049, 4096, 7, 70_000, 0, 13)]
    wire = b""
    for i, chunk in enumerate(chunks):
        first = i == 0
        last = i == len(chunks) - 1
        key = KEYS[i % len(KEYS)]
        wire += client_frame(0x2 if first else 0x0, chunk, fin=last, key=key)
    whole = b"".join(chunks)
    assert server().receive_data(wire) == [BytesMessage(whole)]
    cuts = [rng.randrange(len(wire)) for _ in range(40)]
    assert feed(server(), pieces_cut_at(wire, cuts)) == [BytesMessage(whole)]
    fragments = feed(server(fragments=True), pieces_cut_at(wire, cuts))
    assert [f.data for f in fragments if isinstance(f, BytesFragment)] == chunks


@pytest.mark.parametrize("size", [0, 5, 125, 126, 3000, 65536, 70_000])
def test_a_client_masks_what_a_server_unmasks(size: int, masking: str) -> None:
    data = bytes((i * 3) & 0xFF for i in range(size))
    c = client()
    wire = c.send_bytes(data) + b"".join(c.send_parts(data)) + c.send_text("ü" * size)
    assert server().receive_data(wire) == [
        BytesMessage(data),
        BytesMessage(data),
        TextMessage("ü" * size),
    ]


def test_both_implementations_agree_on_random_data() -> None:
    before = frames.masking
    if frames.use_accelerator(True) != frames.ACCELERATOR:
        pytest.skip(NO_ACCELERATOR)
    try:
        rng = random.Random(1305)
        cases = []
        for _ in range(300):
            size = rng.choice([rng.randrange(200), rng.randrange(10_000), rng.randrange(140_000)])
            start = rng.randrange(8)
            buf = rng.randbytes(start + size + rng.randrange(8))
            cases.append((buf, start, start + size, rng.randbytes(4)))
        accelerated = [frames.unmask(*case) for case in cases]
        masks = [frames.mask(case[0], case[3]) for case in cases]
        frames.use_accelerator(False)
        assert frames.masking == frames.STDLIB
        assert [frames.unmask(*case) for case in cases] == accelerated
        assert [frames.mask(case[0], case[3]) for case in cases] == masks
    finally:
        frames.use_accelerator(before == frames.ACCELERATOR)


def run_python(*args: str, **env: str) -> str:
    """What a fresh interpreter prints, run with ``args`` and only ``env`` (plus this
    process's import path, unless ``env`` sets PYTHONPATH)."""
    env.setdefault("PYTHONPATH", ":".join(sys.path))
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, timeout=30, env=env
    )
    return done.stdout


@pytest.mark.parametrize(("value", "expected"), [("1", "stdlib"), ("0", "websockets.speedups")])
def test_thor_ws_pure_picks_the_implementation(value: str, expected: str) -> None:
    if expected == frames.ACCELERATOR and not accelerator_loads():
        pytest.skip(NO_ACCELERATOR)
    probe = "from thor.websocket.protocol import frames; print(frames.masking)"
    assert run_python("-c", probe, THOR_WS_PURE=value).strip() == expected


@pytest.mark.parametrize("first", ["", "import websockets\n"])
def test_loading_the_accelerator_leaves_websockets_importable(first: str) -> None:
    # Only the extension module is loaded (the package would bring socket along), and not
    # left in sys.modules: a later import of the real package, or of its speedups module
    # after the package, works as usual (the package gets its attribute).
    if not accelerator_loads():
        pytest.skip(NO_ACCELERATOR)
    probe = (
        "import sys\n"
        f"{first}"
        "from thor.websocket.protocol import frames\n"
        "assert 'websockets.speedups' not in sys.modules\n"
        "import websockets.speedups, websockets.frames\n"
        "print(frames.masking, websockets.speedups.apply_mask(b'ab', b'\\x01\\x02\\x03\\x04'))\n"
    )
    assert run_python("-c", probe).split() == [frames.ACCELERATOR, "b'``'"]


def test_without_websockets_the_standard_library_masks() -> None:
    # -S: no site-packages, so no websockets: Thor needs only the standard library.
    probe = (
        "import sys\n"
        "from thor.websocket.protocol import Connection, frames\n"
        "assert 'site-packages' not in str(sys.path)\n"
        "client, server = Connection('client'), Connection('server')\n"
        "[message] = server.receive_data(client.send_bytes(bytes(range(256)) * 300))\n"
        "print(frames.masking, message.data == bytes(range(256)) * 300)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = run_python("-S", "-c", probe, PYTHONPATH=str(root))
    assert out.split() == [frames.STDLIB, "True"]
