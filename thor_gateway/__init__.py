"""thor-gateway: serve WSGI, ASGI and native Thor apps, and proxy, on the Thor loop."""

__version__ = "1.0.0.dev0"
