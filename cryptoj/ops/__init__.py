"""Operations: health, readiness, metrics, status, feature flags, control and a dashboard.

The daemon (:mod:`cryptoj.daemon`) wires these together; ``docs/operations.md`` is the
operator's guide.

=====================  ===========================================================================
module                 what it holds
=====================  ===========================================================================
``config``             :class:`OpsConfig` (the ``ops:`` section), flag names/values, the token
``runtime``            :class:`OpsRuntime`: the threaded runtime plus a tap, probes and history
``probe``              ``StatusRequest`` and the immutable snapshots actors answer it with
``flags``              :class:`FlagStore` and the ``FlagsChanged`` message
``journal_view``       read-only journal queries and the journal-writable check
``state``              /health, /ready and /status from all of the above
``metrics``            the Prometheus collector (one registry per daemon)
``server``             the HTTP endpoint (token, Host and control checks)
``dashboard``          the live dashboard at ``/`` (files in ``static/``) and its helpers
``curve``              the dashboard's equity curve: journal marks in, bounded points out
``status_cli``         ``cryptoj status``
=====================  ===========================================================================

Importing this package imports nothing else, so :mod:`cryptoj.config` can use
:mod:`cryptoj.config.ops` without pulling in the HTTP server or prometheus.
"""
