"""Where a proxied request's CPU goes: Thor's proxy layer by layer, against a floor.

Usage::

    python benchmarks/proxy_layers.py [--seconds 5] [--connections 64]

Runs three reverse proxies, one after the other, each pinned to CPU 0 (``taskset``), with
``wrk`` and the origin on CPU 1, and reports for each: requests per second and the proxy
process's user and system CPU per request (from ``/proc/PID/stat``):

- ``floor``: the least any Python proxy does, a selectors loop that passes the request
  head on and the response back framed only by Content-Length. It is *not* a correct
  HTTP proxy (no header handling, no validation, no errors); it shows what Python and the
  kernel cost before any HTTP work is done.
- ``library``: ``thor.http.HttpServer`` + ``HttpClient`` joined by a dozen lines, with
  no header rewriting: the library's cost for a relay.
- ``gateway``: ``thor-gateway --proxy /=ORIGIN``, the product (routing, RFC 9110 §7.6
  forwarding fields, load balancing, metrics).

The origin is nginx answering 1 KiB from memory when ``nginx`` is installed, else a small
Python server. Needs Linux, ``wrk`` and ``taskset``; loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from support import free_port, wait_for

HERE = Path(__file__).resolve()
BODY = b"x" * 1024

FLOOR = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=1024)
listener.setblocking(False)
origin_port = int(sys.argv[2])
idle = []

class Side:
    __slots__ = ("sock", "buf", "peer")
    def __init__(self, sock):
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf, self.peer = sock, b"", None

def accept(_):
    while True:
        try:
            sock, _addr = listener.accept()
        except BlockingIOError:
            return
        sel.register(sock, selectors.EVENT_READ, (from_client, Side(sock)))

def from_client(client):
    try:
        data = client.sock.recv(65536)
    except OSError:
        data = b""
    if not data:
        sel.unregister(client.sock)
        client.sock.close()
        return
    buf = client.buf + data
    end = buf.find(b"\\r\\n\\r\\n")
    if end < 0:
        client.buf = buf
        return
    client.buf = buf[end + 4:]
    if idle:
        upstream = idle.pop()
    else:
        upstream = Side(socket.create_connection(("127.0.0.1", origin_port)))
        sel.register(upstream.sock, selectors.EVENT_READ, (from_upstream, upstream))
    upstream.peer = client
    upstream.sock.send(buf[:end + 4])

def from_upstream(upstream):
    buf = upstream.buf + upstream.sock.recv(65536)
    end = buf.find(b"\\r\\n\\r\\n")
    at = buf.find(b"Content-Length: ", 0, end)
    if end < 0 or at < 0:
        upstream.buf = buf
        return
    size = end + 4 + int(buf[at + 16:buf.find(b"\\r\\n", at)])
    if len(buf) < size:
        upstream.buf = buf
        return
    upstream.buf = buf[size:]
    try:
        upstream.peer.sock.send(buf[:size])
    except OSError:
        pass  # the client left meanwhile
    upstream.peer = None
    idle.append(upstream)

sel.register(listener, selectors.EVENT_READ, (accept, None))
while True:
    for key, _ in sel.select():
        handler, side = key.data
        handler(side)
"""

LIBRARY = """
import sys
import thor
from thor.http import HttpClient, HttpServer

client = HttpClient()
origin = b"http://127.0.0.1:" + sys.argv[2].encode()

def on_exchange(exchange):
    def request_start(method, uri, headers):
        upstream = client.exchange()
        upstream.on("response_start", exchange.response_start)
        upstream.on("response_body", exchange.response_body)
        upstream.on("response_done", exchange.response_done)
        fields = [h for h in headers if h[0].lower() != b"host"]
        upstream.request_start(method, origin + uri, fields)
        upstream.request_done([])
    exchange.once("request_start", request_start)

server = HttpServer(b"127.0.0.1", int(sys.argv[1]))
server.on("exchange", on_exchange)
thor.run()
"""

ORIGIN = """
import asyncio, sys
HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 1024\\r\\n\\r\\n"
RESPONSE = HEAD + b"x" * 1024

class Origin(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        count = self.buf.count(b"\\r\\n\\r\\n")
        if count:
            self.buf = self.buf[self.buf.rfind(b"\\r\\n\\r\\n") + 4:]
            self.transport.write(RESPONSE * count)

async def main():
    server = await asyncio.get_running_loop().create_server(Origin, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"""

NGINX = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port};
        location = / {{ default_type text/plain; return 200 "{body}"; }}
    }}
}}
"""


def start_origin(scratch: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is not None:
        conf = scratch / "origin.conf"
        conf.write_text(NGINX.format(dir=scratch, port=port, body=BODY.decode()))
        cmd = [nginx, "-e", "stderr", "-c", str(conf)]
    else:
        cmd = [sys.executable, "-c", ORIGIN, str(port)]
    origin = subprocess.Popen(["taskset", "-c", "1", *cmd])
    wait_for(port, 10.0)
    return origin, port


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def wrk(port: int, connections: int, seconds: float) -> int:
    """Requests completed in ``seconds`` of wrk load."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise SystemExit(f"wrk printed no count:\n{out}")


def proxy_command(name: str, port: int, origin_port: int) -> list[str]:
    if name == "gateway":
        origin = f"http://127.0.0.1:{origin_port}"
        return [sys.executable, "-m", "thor_gateway", "--bind", f"127.0.0.1:{port}",
                "--proxy", f"/={origin}"]  # fmt: skip
    code = FLOOR if name == "floor" else LIBRARY
    return [sys.executable, "-c", code, str(port), str(origin_port)]


def measure(name: str, cmd: list[str], port: int, args: argparse.Namespace) -> None:
    proxy = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL)
    try:
        wait_for(port, 10.0)
        wrk(port, args.connections, 2)  # warm-up: connections pooled, code paths hot
        user0, sys0 = cpu_seconds(proxy.pid)
        count = wrk(port, args.connections, args.seconds)
        user1, sys1 = cpu_seconds(proxy.pid)
    finally:
        proxy.terminate()
        proxy.wait(10)
    per = 1e6 / count
    print(
        f"{name:8} {count / args.seconds:9,.0f} req/s   user {(user1 - user0) * per:5.1f} µs/req"
        f"   system {(sys1 - sys0) * per:5.1f} µs/req"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is needed (apt-get install -y {tool.replace('taskset', 'util-linux')})"
            )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (scratch / sub).mkdir()
        origin, origin_port = start_origin(scratch)
        try:
            for name in ("floor", "library", "gateway"):
                port = free_port()
                measure(name, proxy_command(name, port, origin_port), port, args)
        finally:
            origin.terminate()
            origin.wait(10)


if __name__ == "__main__":
    main()
