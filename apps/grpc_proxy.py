"""gRPC through thor-gateway: HTTP/2 end to end, trailers both ways.

Start a gRPC service (here the demo below, on 127.0.0.1:50051), then the gateway in front
of it, and call through the gateway::

    python apps/grpc_proxy.py serve 50051 &
    thor-gateway --bind 127.0.0.1:8080 --proxy /=h2c://127.0.0.1:50051
    python apps/grpc_proxy.py call 127.0.0.1:8080

The gateway serves the gRPC client over h2c (cleartext HTTP/2 with prior knowledge, on by
default: ``--h2c``) and forwards each call as a stream of its own HTTP/2 connection to the
upstream (``h2c://``: prior knowledge again; an ``https://`` upstream speaks HTTP/2 when
the route sets ``http2 = true`` and the server agrees by ALPN).  What gRPC needs of a proxy,
it does: ``te: trailers`` goes upstream, and the response's trailers (``grpc-status``,
``grpc-message``) come back, for streamed replies and errors alike.  The same route in a
config file::

    [[proxy]]
    prefix = "/"
    upstreams = ["h2c://127.0.0.1:50051"]

The demo service is built with grpcio's generic handlers and bytes in, bytes out, so no
protobuf code is generated: ``/demo.Echo/Say`` answers one reply, ``/demo.Echo/Count``
streams ``n`` replies, ``/demo.Echo/Fail`` ends with status INVALID_ARGUMENT.  grpcio is
needed only to run this demo (``pip install grpcio``), not by the gateway.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

SERVICE = "demo.Echo"


def say(request: bytes, context: Any) -> bytes:
    return b"hello, " + request


def count(request: bytes, context: Any) -> Iterator[bytes]:
    for n in range(int(request or b"3")):
        yield b"%d" % n


def fail(request: bytes, context: Any) -> bytes:
    import grpc

    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no such thing: " + request.decode())
    raise AssertionError("abort() raises")  # pragma: no cover


def make_server(address: str) -> tuple[Any, int]:
    """A grpcio server of the demo service on ``address`` (``host:0`` picks a port)."""
    import grpc

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(address)
    return server, port


def call(target: str, timeout: float = 10.0) -> list[str]:
    """Call each method through ``target`` (the gateway); what came back, as lines."""
    import grpc

    lines = []
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary(f"/{SERVICE}/Say")
        lines.append(unary(b"world", timeout=timeout).decode())
        stream = channel.unary_stream(f"/{SERVICE}/Count")
        lines.append(" ".join(r.decode() for r in stream(b"5", timeout=timeout)))
        try:
            channel.unary_unary(f"/{SERVICE}/Fail")(b"x", timeout=timeout)
        except grpc.RpcError as err:
            lines.append(f"{err.code().name}: {err.details()}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "serve":
        server, port = make_server(f"127.0.0.1:{argv[2]}")
        server.start()
        print(f"gRPC demo on 127.0.0.1:{port}", flush=True)
        server.wait_for_termination()
        return 0
    if len(argv) == 3 and argv[1] == "call":
        print("\n".join(call(argv[2])))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
