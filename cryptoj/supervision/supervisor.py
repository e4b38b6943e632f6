"""The supervisor actor: starts its children in order, restarts them by strategy, escalates.

It runs in either runtime like any other actor. Exits of children reach it as
:class:`~cryptoj.models.system.ChildExited` (the runtime reports every exit path exactly once);
reports carrying an old generation are ignored. When more than ``max_restarts`` restarts happen
within ``period_ns`` it stops its children in reverse order and raises
:class:`RestartIntensityExceeded`, which the runtime reports to *its* parent: that is escalation.
The root's parent is the ShutdownActor.
"""

from __future__ import annotations

from typing import cast

from cryptoj.contract import Actor, Context, SupervisorContext
from cryptoj.models.system import ChildExited, RestartChild, StartChild
from cryptoj.supervision.intensity import RestartIntensity
from cryptoj.supervision.spec import ChildSpec, Restart, Strategy, SupervisorSpec


class RestartIntensityExceeded(Exception):
    """A supervisor gave up: too many restarts within its period."""


class Supervisor(Actor):
    """Supervises the children of one :class:`SupervisorSpec`."""

    kind = "supervisor"

    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.generations: dict[str, int] = {}
        self.intensity = RestartIntensity(spec.max_restarts, spec.period_ns)
        self._attempts: dict[str, int] = {}
        self._started_at: dict[str, int] = {}

    def on_start(self, ctx: Context) -> None:
        """Start every child in list order."""
        for child in self.spec.children:
            self._start(child.name, cast(SupervisorContext, ctx))

    def on_stop(self, ctx: Context) -> None:
        """Stop every child in reverse start order."""
        self._stop_all(cast(SupervisorContext, ctx))

    def _stop_all(self, ctx: SupervisorContext) -> None:
        for child in reversed(self.spec.children):
            if child.name in self.generations:
                ctx.stop_child(child.name)
                del self.generations[child.name]

    def _start(self, name: str, ctx: SupervisorContext) -> None:
        self.generations[name] = ctx.start_child(name)
        self._started_at[name] = ctx.now()

    def _handle_start_child(self, msg: StartChild, ctx: Context) -> None:
        if msg.name not in self.generations:
            self._start(msg.name, cast(SupervisorContext, ctx))

    def _handle_restart_child(self, msg: RestartChild, ctx: Context) -> None:
        """An operator restart: stop the running child, then handle it like a failure."""
        generation = self.generations.get(msg.name)
        if generation is None:
            return  # not running (stopped, or waiting for a backoff restart)
        cast(SupervisorContext, ctx).stop_child(msg.name)
        exited = ChildExited(
            ts=ctx.now(),
            name=msg.name,
            generation=generation,
            abnormal=True,
            reason=f"operator restart: {msg.reason}",
        )
        self._handle_child_exited(exited, ctx)

    def _handle_child_exited(self, msg: ChildExited, ctx: Context) -> None:
        sctx = cast(SupervisorContext, ctx)
        if self.generations.get(msg.name) != msg.generation:
            return  # a late report about an instance we already replaced or stopped
        del self.generations[msg.name]
        spec = self.spec.child(msg.name)
        if spec.restart == Restart.TEMPORARY or (
            spec.restart == Restart.TRANSIENT and not msg.abnormal
        ):
            return
        if not self.intensity.add(ctx.now()):
            self._stop_all(sctx)
            raise RestartIntensityExceeded(
                f"{self.spec.name}: more than {self.spec.max_restarts} restarts within "
                f"{self.spec.period_ns / 1e9:g}s (last: {msg.name}: {msg.reason})"
            )
        names = [c.name for c in self.spec.children]
        if self.spec.strategy == Strategy.ONE_FOR_ONE:
            to_restart = [msg.name]
        elif self.spec.strategy == Strategy.ONE_FOR_ALL:
            to_restart = names
        else:
            to_restart = names[names.index(msg.name) :]
        for name in reversed(to_restart):
            if name in self.generations:
                sctx.stop_child(name)
                del self.generations[name]
        for name in to_restart:
            self._restart(name, sctx)

    def _restart(self, name: str, ctx: SupervisorContext) -> None:
        spec = self.spec.child(name)
        backoff = spec.backoff if isinstance(spec, ChildSpec) else None
        if backoff is None:
            self._start(name, ctx)
            return
        ran_ns = ctx.now() - self._started_at.get(name, ctx.now())
        attempt = 0 if ran_ns >= backoff.reset_after_ns else self._attempts.get(name, 0)
        self._attempts[name] = attempt + 1
        ctx.schedule(
            backoff.delay_ns(attempt, ctx.rng.random()), StartChild(ts=ctx.now(), name=name)
        )
