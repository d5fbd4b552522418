"""Hosting: run Python web apps on the Thor loop, behind the router.

- WSGI (PEP 3333): :mod:`~thor_gateway.hosting.wsgi` (the handler and
  ``start_response``), :mod:`~thor_gateway.hosting.wsgi_output` (the checks of what the app
  gives ``start_response``), :mod:`~thor_gateway.hosting.wsgi_environ`,
  :mod:`~thor_gateway.hosting.wsgi_spool` (the request body, received whole on the loop:
  the default), :mod:`~thor_gateway.hosting.wsgi_input` (the request body, streamed to a
  thread) and :mod:`~thor_gateway.hosting.threadpool` (the bounded pool the apps run in);
- ASGI 3: :mod:`~thor_gateway.hosting.asgi` (the app on an asyncio loop in its own thread)
  and :mod:`~thor_gateway.hosting.lifespan`;
- native Thor apps (``app(exchange)``): :mod:`~thor_gateway.hosting.native`.

May import: Thor's public API, :mod:`thor_gateway.routing` (the request and handler
interface) and :mod:`thor_gateway.operations`; never the proxy, aggregation or serving.
"""
