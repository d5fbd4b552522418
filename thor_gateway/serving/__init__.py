"""Serving: the command line, the settings and the processes that serve.

- :mod:`~thor_gateway.serving.cli`: ``thor-gateway [OPTIONS] [MODULE:APP]`` (argparse only);
- :mod:`~thor_gateway.serving.config` and :mod:`~thor_gateway.serving.config_values`: one
  settings dataclass (flags, TOML, environment) and how values are written;
- :mod:`~thor_gateway.serving.loading`: import an app, tell its interface, wrap it;
- :mod:`~thor_gateway.serving.binds`: the listening sockets;
- :mod:`~thor_gateway.serving.server`: one serving process, from start to a drained stop;
- :mod:`~thor_gateway.serving.workers` and :mod:`~thor_gateway.serving.reload`: the master
  and its forked workers, and ``--reload``.

May import: Thor's public API and every other part of the gateway (it wires them
together); no other part imports it, except the package's own ``native_app`` and
``__main__``.
"""
