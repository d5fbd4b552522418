"""The peers the reliability scripts run Thor's gateway against, on the same routes (issue 16).

Each peer serves the apps of ``gateway_under_test.APPS`` (the same bodies: a small answer, the
one 1 MiB object at ``.../big``, request bodies read whole) with its own defaults (timeouts,
threads, buffers), one worker, on the route its interface has:

- ``uvicorn``: the ASGI app (``/asgi``; the app answers any path);
- ``gunicorn``: the WSGI app on the sync worker (``/wsgi``);
- ``waitress``: the WSGI app (``/wsgi``);
- ``nginx``: a reverse proxy (``/proxy``) in front of the same Thor origin as Thor's proxy
  route, with nginx's defaults (HTTP/1.0 upstream, buffering on, temp files); only its
  ``worker_connections`` is raised (from 512), or it could not hold the attacks at all.

``server(name, workdir)`` starts one (``thor``: ``gateway_under_test.Gateway``) and gives an
object with ``port``, ``proc`` (the master: measure its process tree), ``url()`` and
``stop()``. Benchmark-only tools, not dependencies of Thor:
``pip install uvicorn gunicorn waitress`` and ``apt-get install nginx``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway_under_test import ROUTES, Gateway, apps_env, start_origin
from support import free_port, wait_for  # on the path once gateway_under_test is imported

SERVERS: dict[str, tuple[str, ...]] = {
    "thor": ROUTES,
    "uvicorn": ("asgi",),
    "gunicorn": ("wsgi",),
    "waitress": ("wsgi",),
    "nginx": ("proxy",),
}

NGINX = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    {keep_alive}
    server {{
        listen 127.0.0.1:{port}{backlog};
        location /proxy/ {{ proxy_pass http://127.0.0.1:{origin}; }}
    }}
}}
"""


def peer_command(name: str, port: int, keep_alive: int | None, backlog: int | None) -> list[str]:
    """The command line of a peer (not nginx) serving the apps on ``port``: its defaults but
    for the keep-alive timeout and the listen backlog when given (idle connections)."""
    python = [sys.executable, "-m"]
    if name == "uvicorn":
        command = [*python, "uvicorn", "reliability_apps:asgi", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        if keep_alive is not None:
            command += ["--timeout-keep-alive", str(keep_alive)]
        if backlog is not None:
            command += ["--backlog", str(backlog)]
    elif name == "gunicorn":
        command = [*python, "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}"]
        if keep_alive is not None:  # the sync worker closes after each response anyway
            command += ["--keep-alive", str(keep_alive)]
        if backlog is not None:
            command += ["--backlog", str(backlog)]
        command += ["reliability_apps:wsgi"]
    elif name == "waitress":
        command = [*python, "waitress", f"--listen=127.0.0.1:{port}"]
        if keep_alive is not None:
            command += [f"--channel-timeout={keep_alive}"]
        if backlog is not None:
            command += [f"--backlog={backlog}"]
        command += ["reliability_apps:wsgi"]
    else:
        raise ValueError(f"unknown server {name!r}")
    return command


class Peer:
    """A peer serving the apps (nginx: proxying to a Thor origin that serves them)."""

    def __init__(
        self, name: str, workdir: Path, keep_alive: int | None = None, backlog: int | None = None
    ) -> None:
        env = apps_env(workdir)
        self.name, self.port = name, free_port()
        self.log = workdir / f"{name}.log"
        self.origin: subprocess.Popen[bytes] | None = None
        with self.log.open("wb") as log:
            if name == "nginx":
                self.origin, origin = start_origin(env, log)
                workdir.chmod(0o755)  # nginx's worker (nobody) writes its temp files here
                config = workdir / "nginx.conf"
                config.write_text(
                    NGINX.format(
                        dir=workdir, port=self.port, origin=origin,
                        keep_alive="" if keep_alive is None else f"keepalive_timeout {keep_alive};",
                        backlog="" if backlog is None else f" backlog={backlog}",
                    )
                )  # fmt: skip
                command = ["nginx", "-p", str(workdir), "-c", str(config), "-e", "stderr"]
            else:
                command = peer_command(name, self.port, keep_alive, backlog)
            self.proc = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self.port, 90)

    def url(self, route: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}/{route}{path}"

    def stop(self) -> None:
        procs = [self.proc] if self.origin is None else [self.proc, self.origin]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(40)  # gunicorn's graceful timeout is 30 s
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_installed(name: str) -> None:
    """Exit with the install line if the peer ``name`` is missing."""
    if name == "nginx":
        if shutil.which("nginx") is None:
            raise SystemExit("nginx is not installed (apt-get install nginx)")
        return
    if name != "thor":
        try:
            __import__(name)
        except ImportError:
            raise SystemExit(f"{name} is not installed (pip install {name})") from None


@contextmanager
def server(
    name: str, workdir: Path, keep_alive: int | None = None, backlog: int | None = None
) -> Iterator[Gateway | Peer]:
    """Thor's gateway (all three routes) or a peer (its route), stopped at the end."""
    if name == "thor":
        extra = "" if keep_alive is None else f"keep_alive = {keep_alive}\n"
        extra += "" if backlog is None else f"backlog = {backlog}\n"
        started: Gateway | Peer = Gateway(workdir, extra)
    else:
        started = Peer(name, workdir, keep_alive, backlog)
    try:
        yield started
    finally:
        started.stop()
