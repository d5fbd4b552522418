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

    def __init__(self, loop: thor.loop.Loop, port: int) -> None:
        self.loop = loop
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
            deflate=DeflateConfig(),
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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="autobahn-client-"))
    command = [kosoku, "-m", "fuzzingserver", f"127.0.0.1:{port}", "-o", str(outdir)]
    for case in args.include or DEFAULT_CASES:
        command += ["-i", case]
    for case in args.exclude:
        command += ["-x", case]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        loop = thor.loop.make()
        runner = Runner(loop, port)
        runner.start()
        loop.schedule(3000, loop.stop)
        loop.run()
        print(f"ran {runner.case - 1} of {runner.count} cases", file=sys.stderr)
        server.wait(60)  # kosoku writes its reports after updateReports, then exits
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)
    counts, bad = summarize(outdir)
    print(" ".join(f"{name}={n}" for name, n in sorted(counts.items())), f"reports: {outdir}")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
