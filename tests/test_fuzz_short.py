"""The short run of the structure-aware parser fuzzer (benchmarks/reliability/fuzz_parsers.py).

The full run is a million inputs per parser, by hand; here a fixed slice of the same seeded
inputs, so CI notices a parser that starts raising, or a grammar that stops getting
through the parsers (most inputs should reach a parsed message, not an early error).
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "reliability" / "fuzz_parsers.py"
# About 15 s of CPU in all on an idle core (1,000-2,000 inputs a second per parser).
INPUTS = {"request": 10_000, "response": 10_000, "h2": 3_000, "ws": 3_000}
# What a parsed (not rejected) input ends as, per parser.
PARSED = {"request": "parsed", "response": "parsed", "h2": "events", "ws": "event(s)"}


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_parsers", HARNESS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_parsers"] = module
    spec.loader.exec_module(module)
    return module


harness = load_harness()


@pytest.mark.parametrize("parser", list(INPUTS))
def test_structure_aware_inputs_end_in_events_or_a_clean_error(parser: str) -> None:
    outcomes, findings = harness.run_inputs(parser, INPUTS[parser], seed=16)
    assert not findings, "\n".join(f"input {i}:\n{text}" for i, text in findings[:3])
    parsed = sum(n for outcome, n in outcomes.items() if PARSED[parser] in outcome)
    assert parsed > INPUTS[parser] * 0.3, outcomes.most_common(10)
    assert len(outcomes) >= 5, outcomes  # the bent inputs reach several different errors


def test_an_exception_out_of_a_parser_is_a_finding() -> None:
    def broken(r: object) -> str:
        raise IndexError("out of range")

    outcomes: Counter[str] = Counter()
    finding = harness.run_one(broken, harness.grammar.Seeded(1), outcomes)
    assert finding is not None
    assert "IndexError: out of range" in finding
    assert outcomes == {"FINDING": 1}


def test_split_feeding_that_changes_the_messages_is_a_finding() -> None:
    class Flaky:
        """A parser that loses the first byte of every piece but the first."""

        def __init__(self) -> None:
            self.inner = harness.RequestParser()
            self.state = self.inner.state
            self.fed = 0

        def feed(self, data: bytes) -> list[object]:
            self.fed += 1
            events = self.inner.feed(data if self.fed == 1 else data[1:])
            self.state = self.inner.state
            return events

        def feed_eof(self) -> list[object]:
            return self.inner.feed_eof()

    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"

    class Cuts:
        """Choices that cut the input once, after the head."""

        def randint(self, a: int, b: int) -> int:
            return min(b, 45)  # never one byte at a time (not 1 of 32); cut at 45

        def choice(self, seq: list[object]) -> object:
            return seq[0]

        def randbytes(self, n: int) -> bytes:
            return b"\0" * n

    with pytest.raises(harness.Finding, match="split feeding differs"):
        harness._http1(Cuts(), Flaky, data, False)
