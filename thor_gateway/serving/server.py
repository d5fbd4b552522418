"""One serving process: apps, router and listeners, from start to a drained stop.

Lifecycle of a :class:`Gateway` (one per process; a worker of ``--workers N``
or the only process)::

    start():  build every mounted handler -> run their startup hooks in turn
              (ASGI lifespan) -> one HttpServer per listening socket, plus the
              metrics listener -> "Listening at ..." / ready
    drain():  (SIGTERM, SIGINT, --max-requests) readiness turns 503 -> every
              HttpServer.graceful_shutdown(--graceful-timeout): stop accepting
              after serving what waits in the listen backlog, finish in-flight
              requests with Connection: close, and answer the next request of
              each idle keep-alive connection the same way (an idle one closes
              at its keep-alive deadline)
              -> the handlers' shutdown hooks -> the loop stops, exit status 0

A second SIGTERM/SIGINT while draining aborts what is left (exit status 1).
A startup hook that reports failure stops the process with exit status 3 before
any connection is accepted (the sockets' queues hold the clients meanwhile, so a
supervisor that retries loses nobody).  Any exception before ready -- building
the handlers, a startup hook or a loop callback it scheduled, listening -- ends
the process with one ``thor-gateway: error:`` line and exit status 2
(:func:`startup_failed`): the loop's ``fatal_errors`` is on until ready, so the
exception leaves :meth:`Loop.run` instead of being logged while a half-started
server keeps its sockets open and answers nobody (issue 17).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote_to_bytes

import thor.loop
from thor.http.server import HttpServer
from thor_gateway.operations.access_log import AccessLog, AccessRecord
from thor_gateway.operations.metrics import Metrics, SharedMetrics, connections_by_version
from thor_gateway.operations.status_page import status_routes
from thor_gateway.routing.deadline import Deadline
from thor_gateway.routing.forwarded import ProxyTrust
from thor_gateway.routing.router import Route, Router
from thor_gateway.serving.binds import describe, open_listener, proxy_protocol
from thor_gateway.serving.config import ConfigError, Settings
from thor_gateway.serving.loading import (
    AppLoadError,
    build_handler,
    build_proxy,
    import_app,
    static_handler,
    websocket_options,
)
from thor_gateway.serving.process_setup import drop_privileges
from thor_gateway.serving.route_log import log_routes

__all__ = [
    "EXIT_STARTUP_ERROR",
    "EXIT_STARTUP_FAILED",
    "Gateway",
    "Listeners",
    "log_routes",
    "run_single",
    "startup_failed",
]

log = logging.getLogger("thor_gateway.server")
EXIT_STARTUP_ERROR = 2  # an exception before ready (like bad configuration)
EXIT_STARTUP_FAILED = 3  # a startup hook reported failure
METRICS_DUMP_INTERVAL = 1.0  # seconds between a worker's metrics snapshots


class Listeners:
    """The listening sockets of a process tree: opened once, shared by workers."""

    def __init__(self, settings: Settings) -> None:
        self.app = [open_listener(b, settings.backlog) for b in settings.listen_addresses()]
        self.metrics: socket.socket | None = None
        if settings.metrics_bind is not None:
            self.metrics = open_listener(settings.metrics_bind, settings.backlog)

    def all(self) -> list[socket.socket]:
        return self.app + ([self.metrics] if self.metrics is not None else [])

    def close(self) -> None:
        for sock in self.all():
            if sock.fileno() >= 0:
                sock.close()


def tls_context(settings: Settings) -> Any:
    """The server TLS context of --certfile/--keyfile, or None."""
    if settings.certfile is None or settings.keyfile is None:
        return None
    try:
        from thor.tls import server_context
    except ImportError:
        raise ConfigError("certfile", "TLS support (thor.tls) is not available") from None
    reqs = settings.ssl_cert_reqs
    cafile = settings.ssl_ca_certs if reqs not in ("none", "0") else None
    try:
        return server_context(
            settings.certfile,
            settings.keyfile,
            cafile=cafile,
            require_client_cert=cafile is not None and reqs in ("required", "2"),
            password=settings.ssl_keyfile_password,
        )
    except (OSError, ValueError) as error:
        raise ConfigError("certfile", f"cannot load the certificate or key: {error}") from None


def access_logfile(settings: Settings) -> str | None:
    """Where the access log goes: --access-logfile, unless --no-access-log; '-' for
    --access-log alone."""
    if settings.access_log is False:
        return None
    if settings.access_log and not settings.access_logfile:
        return "-"
    return settings.access_logfile


def server_limits(settings: Settings) -> dict[str, Any]:
    """The HttpServer settings the gateway's flags map to."""
    return {
        "idle_timeout": settings.keep_alive,
        "header_timeout": settings.header_timeout,
        "body_timeout": settings.body_timeout,
        "write_timeout": settings.write_timeout,
        "max_connections": settings.max_connections or None,
        "max_request_line": settings.limit_request_line,
        "max_field_section": settings.limit_request_field_size,
        "max_fields": settings.limit_request_fields,
        "max_body_size": settings.max_body_size or None,
        "server_header": b"thor" if settings.server_header else b"",
        "date_header": settings.date_header,
        "min_body_rate": settings.min_body_rate,
        "min_response_rate": settings.min_response_rate,
        "min_rate_window": settings.min_rate_window,
        "http2": settings.http2,
        "h2c": settings.h2c,
        "h2c_upgrade": settings.h2c,
        "proxy_protocol": proxy_protocol(settings),  # None when off: accepting as without
    }


class MetricsEndpoint:
    """``GET /metrics`` on the metrics listener (a handler like any other)."""

    def __init__(self, source: Callable[[], Metrics]) -> None:
        self.source = source

    def handle(self, exchange: Any, request: Any) -> None:
        body = self.source().render()
        exchange.response_start(
            200,
            "OK",
            [
                (b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8"),
                (b"Content-Length", str(len(body)).encode()),
            ],
        )
        exchange.response_body(body)
        exchange.response_done([])

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)


class Gateway:
    """The serving side of one process."""

    def __init__(
        self,
        settings: Settings,
        listeners: Listeners,
        *,
        loop: thor.loop.Loop | None = None,
        multiprocess: bool = False,
        max_requests: int = 0,
        metrics_dir: str | None = None,
    ) -> None:
        self.settings = settings
        self.listeners = listeners
        self.loop = loop or thor.loop.default()
        self.multiprocess = multiprocess
        self.exit_status = 0
        self.servers: list[HttpServer] = []
        self.handlers: list[Any] = []
        self.draining = False
        self.abort_on_second_signal = True
        self.on_ready: Callable[[], None] = lambda: None
        self.metrics = Metrics()
        self.metrics.connections = lambda: sum(len(s.connections) for s in self.servers)
        self.metrics.connections_by_protocol = lambda: connections_by_version(self.servers)
        self.shared = SharedMetrics(metrics_dir, self.metrics) if metrics_dir else None
        self.access_log: AccessLog | None = None
        self.router = self._router(max_requests)
        self.metrics.websockets = lambda: sum(
            len(getattr(h, "websockets", ())) for h in self.handlers
        )
        self._metrics_server: HttpServer | None = None
        self._metrics_router: Router | None = None
        self._tls = tls_context(settings)
        self._fatal_errors = False  # the loop's setting, put back once ready

    def _router(self, max_requests: int) -> Router:
        s = self.settings
        log_file = access_logfile(s)
        if log_file:
            try:
                self.access_log = AccessLog(
                    log_file, s.access_logformat, json_lines=s.log_format == "json"
                )
            except (OSError, ValueError, TypeError) as error:
                raise ConfigError("access_logfile / access_logformat", str(error)) from None
        try:
            # --no-proxy-headers: nobody's Forwarded / X-Forwarded-* is believed.
            trust = ProxyTrust(s.forwarded_allow_ips if s.proxy_headers else [])
        except ValueError as error:
            raise ConfigError("forwarded_allow_ips", str(error)) from None
        routes = [Route(_prefix(m.prefix), self._handler(m)) for m in s.all_mounts()]
        from thor_gateway.proxy.handler import settings_from_flags

        defaults = settings_from_flags(s.upstream_connect_timeout, s.upstream_timeout)
        from thor_gateway.cache.disk import route_dir
        from thor_gateway.cache.handler import CacheHandler, cache_settings

        caches: list[tuple[str, CacheHandler]] = []
        for proxy in s.proxy:
            options = {**defaults, **proxy.options}
            cache = options.pop("cache", None)
            handler = build_proxy(proxy.upstreams, options, loop=self.loop)
            try:
                folder = s.cache_dir and route_dir(s.cache_dir, proxy.prefix)
                cached = cache_settings(
                    s.cache if cache is None else cache, {"max_size": s.cache_size, "dir": folder}
                )
            except TypeError as error:
                raise ConfigError(f"proxy {proxy.prefix}", str(error)) from None
            if cached is not None:
                handler = CacheHandler(handler, loop=self.loop, **asdict(cached))
                caches.append((proxy.prefix or "/", handler))
            routes.append(Route(_prefix(proxy.prefix), handler))
        self.caches = [handler for _, handler in caches]
        if caches:
            self.metrics.caches = lambda: {prefix: handler.samples() for prefix, handler in caches}
        if s.static:
            routes += [Route(_prefix(r.prefix), static_handler(r)) for r in s.static]
        self.handlers = [r.handler for r in routes]
        # Proxies, whether from --proxy or mounted as apps, report their members in /metrics.
        proxies = [
            (r.prefix.decode("utf-8", "replace") or "/", r.handler)
            for r in routes
            if hasattr(r.handler, "upstream_samples")  # a proxy, or a wrapper around one
        ]
        if proxies:
            self.metrics.upstreams = lambda: {
                key: values
                for prefix, handler in proxies
                for key, values in handler.upstream_samples(prefix).items()
            }
        return Router(
            routes,
            root_path=_prefix(s.root_path) if s.root_path else b"",
            trust=trust,
            health_path=s.health_path.encode("utf-8"),
            ready_path=s.ready_path.encode("utf-8"),
            metrics=self.metrics,
            access_log=self.access_log,
            limit_concurrency=s.limit_concurrency,
            max_requests=max_requests,
            on_max_requests=self._recycle,
        )

    def _handler(self, mount: Any) -> Any:
        s = self.settings
        app = import_app(mount.app, mount.factory)
        handler = build_handler(
            app,
            mount.interface,
            loop=self.loop,
            threads=s.threads,
            max_queue=s.max_queue,
            buffer_input=s.wsgi_input == "buffered",
            input_memory=s.wsgi_input_memory,
            lifespan=s.lifespan,
            multiprocess=self.multiprocess,
            where=f"{mount.prefix}={mount.app}",
        )
        if hasattr(handler, "websocket_options"):  # ASGI: --ws-* settings
            handler.websocket_options = websocket_options(s)
        if self.access_log is not None and hasattr(handler, "websocket_closed"):  # ASGI, native
            handler.websocket_closed = self._log_websocket
        if s.request_timeout and handler is not app:  # apps, not ready-made handlers (proxies)
            return Deadline(handler, s.request_timeout, self.loop)
        return handler

    def _log_websocket(self, exchange: Any, request: Any, websocket: Any) -> None:
        """The access log's line at a WebSocket's close (the 101 had its own line): status
        101, ``b`` the bytes sent, the socket's lifetime, and as response fields the close
        code and the bytes received (``%({x-websocket-close}o)s``,
        ``%({x-websocket-received}o)s``)."""
        assert self.access_log is not None
        client = request.client
        record = AccessRecord(
            remote=client[0] if client else "unix",
            method=exchange.method,
            target=exchange.uri,
            version=exchange.req_version,
            status=101,
            body_bytes=websocket.bytes_sent,
            duration=max(0.0, self.loop.time() - websocket.started),
            when=time.time(),
            request_headers=exchange.req_hdrs,
            response_headers=[
                (b"X-WebSocket-Close", b"%d" % (websocket.close_code or 1006)),
                (b"X-WebSocket-Received", b"%d" % websocket.bytes_received),
            ],
        )
        try:
            self.access_log.write(record)
        except (OSError, ValueError) as error:  # a full disk must not stop the serving
            log.error("access log write failed: %s", error)

    # ----------------------------------------------------------- starting

    def start(self) -> None:
        """Run the startup hooks, then listen (see the module docstring)."""
        # Until ready, an exception in any loop callback ends the process (see serve()).
        self._fatal_errors = self.loop.fatal_errors
        self.loop.fatal_errors = True
        self._start_next(0)

    def _start_next(self, index: int) -> None:
        if self.draining:  # stopped while starting: stop the ``index`` started so far
            self._stop_handlers(index)
            return
        if index == len(self.handlers):
            self._listen()
            return

        def done(error: BaseException | None) -> None:
            if error is not None:
                # One line, then the app's own traceback when it gave one (not escaped).
                details = getattr(error, "details", "")
                log.error("application startup failed: %s", error, extra={"details": details})
                self.exit_status = EXIT_STARTUP_FAILED
                self._stop_handlers(index)
                return
            self.loop.call_soon(self._start_next, index + 1)

        self.handlers[index].startup(done)

    def _listen(self) -> None:
        if not self.multiprocess:
            log_routes(self.settings)
        limits = server_limits(self.settings)
        for sock in self.listeners.app:
            server = HttpServer(
                sock=sock,
                loop=self.loop,
                tls_context=self._tls if sock.family != socket.AF_UNIX else None,
                **limits,
            )
            server.on("exchange", self.router.on_exchange)
            self.servers.append(server)
            if not self.multiprocess:
                log.info(
                    "Listening at %s (pid %d)", describe(sock, self._tls is not None), os.getpid()
                )
        if self.listeners.metrics is not None:
            shared = self.shared
            source = shared.collect if shared is not None else (lambda: self.metrics)
            operations = [Route(b"/metrics", MetricsEndpoint(source))]
            live = shared.live if shared is not None else None
            status = status_routes(self.router.routes, self.metrics, self.loop, live)
            operations += [Route(path, handler) for path, handler in status]
            if self.caches:
                from thor_gateway.cache.purge import PurgeEndpoint

                operations.append(Route(b"/cache/purge", PurgeEndpoint(self.caches)))
            endpoint = Router(
                operations,
                health_path=self.router.health_path,
                ready_path=self.router.ready_path,
            )
            self._metrics_router = endpoint
            self._metrics_server = HttpServer(sock=self.listeners.metrics, loop=self.loop)
            self._metrics_server.on("exchange", endpoint.on_exchange)
            if not self.multiprocess:
                log.info("Metrics at %s/metrics", describe(self.listeners.metrics, False))
        if self.shared is not None:
            self._dump_metrics()
        settle_gc(self.settings.gc_threshold)
        self.on_ready()
        self.loop.fatal_errors = self._fatal_errors

    def _dump_metrics(self) -> None:
        assert self.shared is not None
        self.shared.dump()
        if not self.draining:
            self.loop.schedule(METRICS_DUMP_INTERVAL, self._dump_metrics)

    # ----------------------------------------------------------- stopping

    def drain(self) -> None:
        """Finish in-flight requests and stop (SIGTERM, SIGINT)."""
        if self.draining:
            if not self.abort_on_second_signal:
                return
            # The process exits right after: the kernel resets what is left.
            log.warning("second stop signal: stopping now, cutting the requests left")
            self.exit_status = 1
            self.loop.stop()
            return
        self.draining = True
        self.router.draining = True
        self.metrics.draining = True
        if self._metrics_router is not None:
            self._metrics_router.draining = True
        log.info(
            "draining: finishing requests in flight (at most %ss)", self.settings.graceful_timeout
        )
        pending = list(self.servers)
        if not pending:
            return  # still starting: _start_next stops what has started
        deadline = self.loop.time() + self.settings.graceful_timeout

        def stopped(server: HttpServer) -> None:
            if server in pending:
                pending.remove(server)
                if not pending:
                    self.loop.call_soon(self._wait_for_websockets, deadline, False)

        for server in list(pending):
            server.on("stop", lambda server=server: stopped(server))
            server.graceful_shutdown(self.settings.graceful_timeout)

    def reopen_logs(self) -> None:
        """SIGUSR1: reopen the access log file (log rotation)."""
        if self.access_log is not None:
            try:
                self.access_log.reopen()
            except OSError as error:
                log.error("cannot reopen the access log: %s", error)
                return
            log.info("access log reopened")

    def _recycle(self) -> None:
        log.info("served %d requests: recycling this worker", self.router.served)
        self.drain()

    def _wait_for_websockets(self, deadline: float, told: bool) -> None:
        """Let open WebSockets (and the proxy's tunnels) end by themselves until ``deadline``,
        then close them: WebSockets with 1001 "going away" (RFC 6455 §7.4.1), allowed their
        closing handshakes ``--ws-close-timeout``; tunnels (bytes, not frames) by closing
        TCP. Then the shutdown hooks run (what is left is cut)."""
        busy = [h for h in self.handlers if _open_sockets(h)]
        if not busy:
            self._stop_handlers(len(self.handlers))
            return
        now = self.loop.time()
        if now >= deadline:
            if told:
                log.warning("cutting %d WebSockets left open", sum(map(_open_sockets, busy)))
                self._stop_handlers(len(self.handlers))
                return
            log.info("closing %d open WebSockets (1001) and tunnels", sum(map(_open_sockets, busy)))
            for handler in busy:
                if getattr(handler, "websockets", None):
                    handler.close_websockets(1001)
                for tunnel in list(getattr(handler, "tunnels", ())):
                    tunnel.close("shutting down")
            told, deadline = True, now + self.settings.ws_close_timeout
        # Polled: WebSockets come and go on several handlers; 50 ms is nothing at shutdown.
        self.loop.schedule(0.05, self._wait_for_websockets, deadline, told)

    def _stop_handlers(self, count: int) -> None:
        """Run the shutdown hooks of the first ``count`` handlers, last started first."""
        if count == 0:
            self._finish()
            return

        def done(error: BaseException | None) -> None:
            if error is not None:
                log.error("application shutdown failed: %s", error)
            self.loop.call_soon(self._stop_handlers, count - 1)

        try:
            self.handlers[count - 1].shutdown(done)
        except Exception:
            log.exception("application shutdown failed")
            self.loop.call_soon(self._stop_handlers, count - 1)

    def _finish(self) -> None:
        if self.shared is not None:
            self.shared.dump()  # the final counts stay in the sum
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self.access_log is not None:
            self.access_log.close()
        log.info("stopped (pid %d)", os.getpid())
        self.loop.stop()


def _open_sockets(handler: Any) -> int:  # WebSockets (ASGI, native apps), tunnels (proxy)
    return len(getattr(handler, "websockets", ())) + len(getattr(handler, "tunnels", ()))


def startup_failed(error: BaseException) -> int:
    """Report an exception that stopped a start; returns the exit status (2)."""
    log.error("startup failed", exc_info=error)
    sys.stderr.write(f"thor-gateway: error: startup failed: {type(error).__name__}: {error}\n")
    sys.stderr.flush()
    return EXIT_STARTUP_ERROR


def settle_gc(threshold: int) -> None:
    """Set the garbage collector up for serving, once startup is over (0: leave it alone).

    What startup built (modules, apps, their caches) lives as long as the process; frozen,
    the collector never scans it again.  A request allocates a hundred or so containers,
    almost all freed by reference counting; with Python's first threshold (700) the
    collector would still run every few requests, scanning every exchange in flight.
    Measured: +5 % requests per second on WSGI hello, +7 % on aggregation
    (docs/gateway.md, "Performance").
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)


def _prefix(text: str) -> bytes:
    """A mount prefix as the router compares it: percent-decoded UTF-8 bytes."""
    return b"" if text == "/" else unquote_to_bytes(text.encode("utf-8"))


def serve(gateway: Gateway) -> int:
    """Run ``gateway`` on its loop until it has drained; returns the exit status."""
    loop = gateway.loop
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, gateway.drain)
    loop.add_signal_handler(signal.SIGUSR1, gateway.reopen_logs)
    if gateway.multiprocess:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the master's business
    else:
        loop.add_signal_handler(signal.SIGHUP, log.warning, "SIGHUP needs --workers: ignored")
    loop.call_soon(gateway.start)
    try:
        loop.run()
    except Exception as error:  # raised only before ready: Gateway.start sets fatal_errors
        return startup_failed(error)
    return gateway.exit_status


def run_single(
    settings: Settings,
    on_load_error: Callable[[Settings, Listeners, AppLoadError], int] | None = None,
) -> int:
    """Serve in this process (no master, no workers).

    ``on_load_error``: what to do, on the same sockets and settings, when an app cannot be
    loaded (the reloader's child answers 500 with the error); by default it is raised.
    """
    listeners = Listeners(settings)
    try:
        drop_privileges(settings, listeners.all())
        try:
            gateway = Gateway(settings, listeners)
        except AppLoadError as error:
            if on_load_error is None:
                raise
            sys.stderr.write(f"thor-gateway: error: {error}\n")
            return on_load_error(settings, listeners, error)
        return serve(gateway)
    finally:
        listeners.close()
