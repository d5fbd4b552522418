"""Structure-aware fuzzing of Thor's sans-IO parsers: every input ends in events or a clean error.

    python benchmarks/reliability/fuzz_parsers.py [--inputs 1000000] [--seed 1]
                                                  [--parsers request,response,h2,ws]
    python benchmarks/reliability/fuzz_parsers.py --atheris request [ATHERIS ARGS...]

Inputs come from ``fuzz_grammar.py`` (messages built from the grammar, with valid and bent
pieces). Each is fed to a fresh parser whole and again split at random points (one byte at
a time now and then), and must end as the parser's contract says:

- ``request`` / ``response`` (``RequestParser``, ``ResponseParser``): only RequestHead,
  ResponseHead, Body, End and Invalid events; at most one Invalid, and it is last; its error
  an ``HttpError``; the split feeding gives the same messages as the whole one. A parser
  HELD after an Upgrade request is resumed (as the server does when it does not switch).
- ``h2`` (``H2Connection``, server side, after the preface): at most one local
  ``ConnectionTerminated``, last; ``data_to_send`` works afterwards.
- ``ws`` (``websocket.protocol.Connection``, server and client roles, with and without
  permessage-deflate): at most one ``ProtocolError``, last, with a close code in 1000-1011;
  split feeding gives the same event kinds.

Anything else (an exception out of the parser, a broken rule) is a *finding*: printed with
the input, saved under ``--findings DIR``, and the exit status is 1. The default run is a
seeded ``random.Random`` (reproducible); ``--atheris NAME`` runs the same harness for one
parser under atheris (coverage-guided; its own flags such as ``-runs=N`` follow).
Prints, per parser, inputs, inputs per second, and how the inputs ended.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # the sibling grammar; this tree's thor

import fuzz_grammar as grammar  # noqa: E402

from thor.http.error import HttpError  # noqa: E402
from thor.http.protocol import (  # noqa: E402
    Body,
    End,
    Invalid,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
)
from thor.http.protocol.state import PARSER_HELD  # noqa: E402
from thor.http2.protocol import ConnectionTerminated, H2Connection  # noqa: E402
from thor.http2.protocol.connection import PREFACE  # noqa: E402
from thor.http2.protocol.frames import settings_frame  # noqa: E402
from thor.websocket.protocol import Connection, Deflate, ProtocolError  # noqa: E402

Check = Callable[[grammar.Choices], str]


class Finding(Exception):
    """A broken rule (not an exception out of the parser, which is a finding too)."""


def _pieces(r: grammar.Choices, data: bytes) -> list[bytes]:
    if len(data) < 400 and grammar.maybe(r, 32):
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted({r.randint(0, len(data)) for _ in range(r.randint(1, 4))})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# --- HTTP/1.1 ---------------------------------------------------------------------------------


def _http1_run(make: Callable[[], Any], pieces: list[bytes], eof: bool) -> list[Any]:
    parser = make()
    events: list[Any] = []
    for piece in pieces:
        events += parser.feed(piece)
        if parser.state is PARSER_HELD:
            events += parser.resume()
    if eof:
        events += parser.feed_eof()
        if parser.state is PARSER_HELD:
            events += parser.resume()
    return events


def _http1_check(events: list[Any]) -> str:
    for i, event in enumerate(events):
        if isinstance(event, Invalid):
            if i != len(events) - 1:
                raise Finding(f"Invalid is event {i} of {len(events)}")
            if not isinstance(event.error, HttpError):
                raise Finding(f"Invalid carries {event.error!r}")
            return type(event.error).__name__
        if not isinstance(event, RequestHead | ResponseHead | Body | End):
            raise Finding(f"unexpected event {event!r}")
    heads = sum(isinstance(e, RequestHead | ResponseHead) for e in events)
    return f"parsed {min(heads, 3)} head(s)" + (", end" if events else "")


def _normal(events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        if isinstance(event, Body):
            if out and isinstance(out[-1], bytes):
                out[-1] += event.data
            elif event.data:
                out.append(bytes(event.data))
        elif isinstance(event, Invalid):
            out.append(type(event.error))
        else:
            out.append(event)
    return out


def _http1(r: grammar.Choices, make: Callable[[], Any], data: bytes, eof: bool) -> str:
    whole = _http1_run(make, [data], eof)
    outcome = _http1_check(whole)
    split = _http1_run(make, _pieces(r, data), eof)
    _http1_check(split)
    if _normal(split) != _normal(whole):
        raise Finding(f"split feeding differs: {_normal(split)!r} != {_normal(whole)!r}")
    return outcome


def check_request(r: grammar.Choices) -> str:
    data = grammar.requests_input(r)
    return _http1(r, RequestParser, data, grammar.maybe(r, 3))


def check_response(r: grammar.Choices) -> str:
    data, methods = grammar.responses_input(r)
    if grammar.maybe(r, 20):
        methods = methods[:-1]  # a response nobody asked for

    def make() -> ResponseParser:
        parser = ResponseParser()
        for method in methods:
            parser.expect(method)
        return parser

    return _http1(r, make, data, grammar.maybe(r, 2))


# --- HTTP/2 and WebSocket ---------------------------------------------------------------------


def check_h2(r: grammar.Choices) -> str:
    data = PREFACE + settings_frame({}) + grammar.h2_input(r)
    server = H2Connection()
    server.initiate_connection()
    events: list[Any] = []
    for piece in _pieces(r, data):
        events += server.receive_data(piece)
        server.data_to_send()
    ends = [e for e in events if isinstance(e, ConnectionTerminated) and not e.remote]
    if len(ends) > 1 or (ends and events[-1] is not ends[0]):
        raise Finding(f"local ConnectionTerminated not last and alone: {events!r}")
    if ends:
        return f"terminated {getattr(ends[0].error_code, 'name', ends[0].error_code)}"
    kinds = {type(e).__name__ for e in events} & {"RequestReceived", "DataReceived"}
    return "events: " + ",".join(sorted(kinds)) if kinds else "no stream events"


def _ws_run(as_client: bool, deflate: bool, pieces: list[bytes]) -> list[Any]:
    conn = Connection(
        "client" if as_client else "server",
        deflate=Deflate() if deflate else None,
        max_message_size=100_000,
        random=lambda n: b"\x01" * n,
    )
    events: list[Any] = []
    for piece in pieces:
        events += conn.receive_data(piece)
    eof = conn.receive_eof()  # must not raise; after a ProtocolError it reports the loss
    if any(isinstance(e, ProtocolError) for e in eof):
        raise Finding(f"ProtocolError at EOF: {eof!r}")
    return events


def check_ws(r: grammar.Choices) -> str:
    as_client, deflate = grammar.maybe(r, 2), grammar.maybe(r, 3)
    data = grammar.ws_input(r, masked=not as_client)
    whole = _ws_run(as_client, deflate, [data])
    errors = [i for i, e in enumerate(whole) if isinstance(e, ProtocolError)]
    if errors not in ([], [len(whole) - 1]):
        raise Finding(f"ProtocolError not last and alone: {whole!r}")
    if errors and not 1000 <= whole[-1].code <= 1011:
        raise Finding(f"close code {whole[-1].code}")
    split = _ws_run(as_client, deflate, _pieces(r, data))
    if [type(e) for e in split] != [type(e) for e in whole]:
        raise Finding(f"split feeding differs: {split!r} != {whole!r}")
    return f"ProtocolError {whole[-1].code}" if errors else f"{len(whole)} event(s)"


CHECKS: dict[str, Check] = {
    "request": check_request,
    "response": check_response,
    "h2": check_h2,
    "ws": check_ws,
}


# --- running ----------------------------------------------------------------------------------


def run_one(check: Check, r: grammar.Choices, outcomes: Counter[str]) -> str | None:
    """Run one input; return a finding's description, or None."""
    try:
        outcomes[check(r)] += 1
    except Exception as exc:  # every exception is a finding: that is the point
        outcomes["FINDING"] += 1
        return "".join(traceback.format_exception(exc)[-4:])
    return None


def run_inputs(
    name: str, inputs: int, seed: int, first: int = 0
) -> tuple[Counter[str], list[tuple[int, str]]]:
    """Inputs ``first`` .. ``first + inputs - 1`` of ``seed``: how they ended, and findings."""
    check = CHECKS[name]
    outcomes: Counter[str] = Counter()
    findings: list[tuple[int, str]] = []
    for i in range(first, first + inputs):
        r = grammar.Seeded(seed * 1_000_003 + i)  # each input reproducible on its own
        finding = run_one(check, r, outcomes)
        if finding is not None:
            findings.append((i, finding))
    return outcomes, findings


def fuzz(name: str, inputs: int, seed: int, findings_dir: Path | None) -> int:
    """Fuzz one parser with ``inputs`` inputs; print its figures; return the findings count."""
    outcomes: Counter[str] = Counter()
    found = 0
    start = time.perf_counter()
    for first in range(0, inputs, 100_000):
        more, findings = run_inputs(name, min(100_000, inputs - first), seed, first)
        outcomes += more
        for i, finding in findings:
            found += 1
            if found <= 5:
                print(f"FINDING {name} input {i} (seed {seed}):\n{finding}", flush=True)
            if findings_dir is not None:
                findings_dir.mkdir(parents=True, exist_ok=True)
                (findings_dir / f"{name}-{seed}-{i}.txt").write_text(finding)
        done = first + min(100_000, inputs - first)
        if done < inputs:
            rate = done / (time.perf_counter() - start)
            print(f"{name}: {done} inputs, {found} findings, {rate:,.0f}/s", flush=True)
    elapsed = time.perf_counter() - start
    top = ", ".join(f"{k}: {v}" for k, v in outcomes.most_common(8))
    print(
        f"{name}: {inputs} inputs in {elapsed:.1f} s ({inputs / elapsed:,.0f}/s), "
        f"{found} findings, {len(outcomes)} distinct outcomes; top: {top}",
        flush=True,
    )
    return found


class ProviderChoices:
    """``Choices`` over atheris's FuzzedDataProvider, so coverage guides every choice."""

    def __init__(self, provider: Any) -> None:
        self.p = provider

    def randint(self, a: int, b: int) -> int:
        return int(self.p.ConsumeIntInRange(a, b))

    def choice(self, seq: Any) -> Any:
        return seq[self.p.ConsumeIntInRange(0, len(seq) - 1)]

    def randbytes(self, n: int) -> bytes:
        return bytes(self.p.ConsumeBytes(n)).ljust(n, b"\x00")


PARSER_PACKAGES = ("thor.http.protocol", "thor.http2.protocol", "thor.websocket.protocol")


def _parser_functions() -> list[Any]:
    """The functions and methods defined in the sans-IO parser packages (already imported)."""
    found: list[Any] = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(PARSER_PACKAGES):
            continue
        for value in vars(module).values():
            members = vars(value).values() if isinstance(value, type) else [value]
            for member in members:
                function = getattr(member, "__func__", member)
                if inspect.isfunction(function) and function.__module__ == name:
                    found.append(function)
    return found


def run_atheris(name: str, argv: list[str]) -> None:
    import atheris  # type: ignore[import-not-found]

    for function in _parser_functions():  # coverage of the parsers only: quick to set up
        atheris.instrument_func(function)
    check = CHECKS[name]

    def one_input(data: bytes) -> None:
        check(ProviderChoices(atheris.FuzzedDataProvider(data)))  # a finding raises

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="per parser")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parsers", default=",".join(CHECKS))
    parser.add_argument("--findings", type=Path, default=None, help="save findings here")
    parser.add_argument("--atheris", choices=list(CHECKS), default=None)
    args, rest = parser.parse_known_args()
    if args.atheris:
        run_atheris(args.atheris, rest)
        return
    total = sum(
        fuzz(name, args.inputs, args.seed, args.findings) for name in args.parsers.split(",")
    )
    print(f"total findings: {total}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
