"""TEST-ONLY: a minimal Django project served by thor-gateway through Django Channels
(test_channels.py): ``asgi.py`` is the project's ASGI entry point, as ``startproject``
lays it out, with a ``ProtocolTypeRouter`` sending HTTP to Django and WebSockets to the
consumers of ``consumers.py``."""
