"""Thor's WebSocket (RFC 6455, with RFC 7692 permessage-deflate).

:mod:`thor.websocket.protocol` is the sans-IO core: the opening handshake for both sides,
a connection object per side that turns bytes into events and calls into bytes, and the
permessage-deflate extension on the stdlib ``zlib``.  It does no IO, reads no clock and
starts no thread; the IO side (a ``WebSocket`` event emitter on top of the HTTP server's
switch point, a client, the ASGI ``websocket`` scope) feeds it.

This package imports nothing itself, so that importing the core loads no IO module.
See docs/websocket.md.
"""
