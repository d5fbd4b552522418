"""Operations: what an operator watches: error log, access log, metrics, status page.

- :mod:`~thor_gateway.operations.logs`: the error-log setup (text or JSON lines), with
  :mod:`~thor_gateway.operations.log_limit` summarising alike lines;
- :mod:`~thor_gateway.operations.access_log`: one line per finished exchange;
- :mod:`~thor_gateway.operations.metrics`: request and upstream series in the
  Prometheus text format (the ``/metrics`` endpoint is wired in
  :mod:`thor_gateway.serving.server`; the health paths are answered by the router);
- :mod:`~thor_gateway.operations.status`: the live status page's numbers (per route and per
  worker, with a 10-minute history), and :mod:`~thor_gateway.operations.status_page` its
  ``/status`` page (``status.html``) and ``/status.json``.

May import: the standard library and Thor's public API only.  It is the bottom
layer: every other part may use it, it uses none of them
(``tests/gateway/test_layers.py`` enforces this).
"""
