"""Operations: what an operator watches: the error log, the access log and the metrics.

- :mod:`~thor_gateway.operations.logs`: the error-log setup (text or JSON lines), with
  :mod:`~thor_gateway.operations.log_limit` summarising alike lines;
- :mod:`~thor_gateway.operations.access_log`: one line per finished exchange;
- :mod:`~thor_gateway.operations.metrics`: request and upstream series in the
  Prometheus text format (the ``/metrics`` endpoint is wired in
  :mod:`thor_gateway.serving.server`; the health paths are answered by the router).

May import: the standard library and Thor's public API only.  It is the bottom
layer: every other part may use it, it uses none of them
(``tests/gateway/test_layers.py`` enforces this).
"""
