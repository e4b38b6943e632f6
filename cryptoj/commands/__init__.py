"""The subcommands behind :mod:`cryptoj.cli` (which parses the arguments and dispatches):

* :mod:`.config`: loading the config for a command, ``check-config``, ``new-strategy``;
* :mod:`.replay`: ``replay``, ``sweep`` and ``report``;
* :mod:`.control`: ``status`` and the emergency commands (``shutdown``, ``flatten``, ``hold``,
  ``resume``) sent to the running daemon.

``run`` is :func:`cryptoj.daemon.run_daemon`, ``data`` :mod:`cryptoj.marketdata.data_cli` and
``trace`` :mod:`cryptoj.trace.cli`.
"""
