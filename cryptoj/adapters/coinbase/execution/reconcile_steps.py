"""The venue's reconciliation passes, whole or one REST call at a time.

Reconciling (:meth:`reconcile`: on start, after every user-channel (re)connect or sequence
gap, and every ``reconcile_interval_s``)
    :mod:`.reconcile`: open orders, fills since the last seen one, every tracked order that is
    not terminal; differences are applied (the venue wins) and returned for the journal. With
    ``max_calls`` a pass goes on one REST call at a time (the ExecutionActor's steps), the
    operation lock held per call, so submits and cancels go out between two calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from cryptoj.adapters.coinbase.execution.errors import AuthenticationFailed, CoinbaseError
from cryptoj.adapters.coinbase.execution.reconcile import Call
from cryptoj.adapters.coinbase.execution.venue_core import VenueCore, run_call
from cryptoj.models.orders import VenueCallDone
from cryptoj.venues.base import ReconcileDiff, ReconcileReport


class ReconcileSteps(VenueCore):
    """Reconciling (see the module docstring)."""

    def reconcile(
        self,
        ts: int,
        since_ns: int | None = None,
        settled: Callable[[str], bool] | None = None,
        *,
        max_calls: int | None = None,
        new_pass: bool = True,
    ) -> ReconcileReport:
        """Run :class:`~.reconcile.Reconciler` (see *Reconciling*).

        Without ``max_calls``: a whole pass, here. With it, one step of a pass (a new one when
        ``new_pass`` or none is under way): what the last call brought is applied; then, with
        a background runner, the next call is handed to it and the report says ``waiting``
        (a :class:`~cryptoj.models.VenueCallDone` follows when it is back); without one, up to
        ``max_calls`` calls are made here. ``done`` says whether the pass ended."""
        if max_calls is None:
            diffs: list[ReconcileDiff] = []
            self._counts["reconciles"] += 1
            with self._op_lock:
                try:
                    self.reconciler.run(diffs, since_ns, settled)
                except AuthenticationFailed as e:
                    self._auth_failed(e)
                    raise
                except CoinbaseError as e:
                    self._counts["reconcile_errors"] += 1
                    return self._reconcile_report(diffs, error=str(e))
                finally:
                    self.trackers.deliver()
            return self._reconcile_report(diffs)
        if new_pass or self._pass is None:
            self._counts["reconciles"] += 1
            self._pass_diffs = []
            self._pass = self.reconciler.steps(self._pass_diffs, since_ns, settled)
            with self._calls_lock:
                self._pass_id += 1
                self._inflight, self._outcome = False, None
        return self._pass_step(max_calls)

    def _pass_step(self, max_calls: int) -> ReconcileReport:
        assert self._pass is not None
        steps, diffs, reported = self._pass, self._pass_diffs, len(self._pass_diffs)
        try:
            for _ in range(max_calls):
                with self._calls_lock:
                    if self._inflight:
                        break
                    outcome, self._outcome = self._outcome, None
                result, error = outcome if outcome is not None else (None, None)
                if error is not None:
                    raise error
                with self._op_lock:
                    call = steps.send(result)
                if self.run_calls is None:
                    self._outcome = run_call(call)
                    continue
                with self._calls_lock:
                    self._inflight = True
                self.run_calls(functools.partial(self._background_call, self._pass_id, call))
                break
        except StopIteration:
            self._pass = None
        except AuthenticationFailed as e:
            self._pass = None
            self._auth_failed(e)
            raise
        except CoinbaseError as e:
            self._pass = None
            self._counts["reconcile_errors"] += 1
            return self._reconcile_report(diffs[reported:], error=str(e))
        finally:
            self.trackers.deliver()
        with self._calls_lock:
            waiting = self._pass is not None and self._inflight
        return self._reconcile_report(diffs[reported:], done=self._pass is None, waiting=waiting)

    def _background_call(self, pass_id: int, call: Call) -> None:
        """On the runner's thread: make one call, keep its outcome, wake the actor."""
        outcome = run_call(call)
        with self._calls_lock:
            if pass_id != self._pass_id:
                return  # a pass that was dropped for a new one
            self._outcome, self._inflight = outcome, False
        self.trackers.emit([VenueCallDone(ts=self.clock())])
        self.trackers.deliver()

    def _reconcile_report(
        self,
        diffs: list[ReconcileDiff],
        *,
        error: str = "",
        done: bool = True,
        waiting: bool = False,
    ) -> ReconcileReport:
        self._counts["reconcile_diffs"] += len(diffs)
        return ReconcileReport(diffs=tuple(diffs), error=error, done=done, waiting=waiting)
