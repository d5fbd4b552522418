"""The Autobahn cases (kosoku's fuzzingserver mode) against ``thor.WebSocketClient``.

TEST-ONLY. kosoku listens; a Thor loop asks it for the case count, runs each case as an
echo client (every message sent back as it came), then asks for the reports.

    python tests/websocket/autobahn_client.py                  # sections 1-7, 10, 12.1, 13.1
    python tests/websocket/autobahn_client.py -i '*'           # every case

It prints the count of each behaviour and the cases that were not OK/INFORMATIONAL; the exit
status is 1 if any was.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import thor.loop
from tests.websocket.autobahn import DEFAULT_CASES, summarize
from thor.websocket import WebSocket, WebSocketClient
from thor.websocket.protocol import DeflateConfig

AGENT = "thor"


class Runner:
    """Runs the cases one after the other on one loop."""

    def __init__(self, loop: thor.loop.Loop, port: int, offer: DeflateConfig) -> None:
        self.loop = loop
        self.offer = offer
        self.base = f"ws://127.0.0.1:{port}"
        self.client = WebSocketClient(loop, connect_timeout=5, open_timeout=30)
        self.client.on("error", self.failed)
        self.count = 0
        self.case = 0
        self.next_step = self.got_count

    def start(self) -> None:
        self.client.once("open", self.count_open)
        self.client.connect(f"{self.base}/getCaseCount", deflate=False, ping_interval=None)

    def failed(self, error: Exception) -> None:
        print(f"case {self.case}: {error}", file=sys.stderr)
        self.run_next()

    def count_open(self, websocket: WebSocket) -> None:
        websocket.on("message", lambda data: setattr(self, "count", int(data)))
        websocket.on("close", lambda code, reason: self.run_next())

    def got_count(self) -> None:
        pass

    def run_next(self) -> None:
        self.case += 1
        if self.case > self.count:
            self.client.once("open", lambda ws: ws.on("close", lambda c, r: self.loop.stop()))
            self.client.connect(f"{self.base}/updateReports?agent={AGENT}", deflate=False)
            return
        self.client.once("open", self.echo)
        self.client.connect(
            f"{self.base}/runCase?case={self.case}&agent={AGENT}",
            deflate=self.offer,
            ping_interval=None,
            close_timeout=2,
        )

    def echo(self, websocket: WebSocket) -> None:
        def message(data: str | bytes) -> None:
            if type(data) is str:
                websocket.send_text(data)
            else:
                websocket.send_bytes(data)

        websocket.on("message", message)
        websocket.on("close", lambda code, reason: self.loop.call_soon(self.run_next))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-i", "--include", action="append", help="case globs (kosoku -i)")
    parser.add_argument("-x", "--exclude", action="append", default=[])
    parser.add_argument("-o", "--outdir", help="keep the reports here")
    args = parser.parse_args()
    kosoku = shutil.which("kosoku")
    if kosoku is None:
        print("kosoku is not installed: pip install kosoku", file=sys.stderr)
        return 2
    root = Path(args.outdir or tempfile.mkdtemp(prefix="autobahn-client-"))
    includes = args.include or DEFAULT_CASES
    total: collections.Counter[str] = collections.Counter()
    bad: list[str] = []
    # 13.2, 13.5 and 13.6 need the client to offer client_no_context_takeover: a client is
    # configured per case in Autobahn, so those run apart with that offer.
    for name, offer, cases in groups(includes, args.exclude):
        outdir = root / name
        run_kosoku(kosoku, outdir, cases, offer)
        counts, failed = summarize(outdir)
        total.update(counts)
        bad += failed
    print(" ".join(f"{name}={n}" for name, n in sorted(total.items())), f"reports: {root}")
    for line in bad:
        print(line)
    return 1 if bad else 0


# In these, kosoku's server answers client_no_context_takeover, which it grants only to a
# client that offered it (as Autobahn's own clients are configured for these cases).
APART = ("13.2", "13.5", "13.6")
APART_OFFER = DeflateConfig(client_no_context_takeover=True)


def groups(includes: list[str], excludes: list[str]) -> list[tuple[str, DeflateConfig, list[str]]]:
    """(name, the client's offer, kosoku -i/-x arguments) per run."""
    main = [arg for c in includes for arg in ("-i", c)]
    main += [arg for c in [*excludes, *(f"{s}.*" for s in APART)] for arg in ("-x", c)]
    out = [("main", DeflateConfig(), main)]
    ids = [f"{section}.{n}" for section in APART for n in range(1, 19)]
    chosen = [
        i
        for i in ids
        if any(fnmatch.fnmatchcase(i, c) for c in includes)
        and not any(fnmatch.fnmatchcase(i, c) for c in excludes)
    ]
    if chosen:
        out.append(("no-context-takeover", APART_OFFER, [a for c in chosen for a in ("-i", c)]))
    return out


def run_kosoku(kosoku: str, outdir: Path, cases: list[str], offer: DeflateConfig) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [kosoku, "-m", "fuzzingserver", f"127.0.0.1:{port}", "-o", str(outdir), *cases]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        loop = thor.loop.make()
        runner = Runner(loop, port, offer)
        runner.start()
        loop.schedule(3000, loop.stop)
        loop.run()
        print(f"{outdir.name}: ran {runner.case - 1} of {runner.count} cases", file=sys.stderr)
        server.wait(60)  # kosoku writes its reports after updateReports, then exits
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    raise SystemExit(main())
