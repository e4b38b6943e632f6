"""The deterministic runtime's scheduler: which ready mailbox is served next.

Its draw is written out with ``getrandbits`` (cheaper per step than ``randrange``); it must pick
exactly what ``random.Random(f"sched:{seed}").randrange(len(ready))`` picks, so the traces and
summaries of a seed stay those of the runtime before that change.
"""

from __future__ import annotations

import random

import pytest

from cryptoj.contract import Actor, Context
from cryptoj.models.system import Tick
from cryptoj.runtime.common import Registered
from cryptoj.runtime.deterministic import DeterministicRuntime

#: Messages queued up front per actor: the ready list shrinks from 6 cells to 1 as they drain.
QUEUED = {"a": 9, "b": 1, "c": 5, "d": 13, "e": 2, "f": 7}


class _Recorder(Actor):
    kind = "recorder"

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log

    def _handle_tick(self, msg: Tick, ctx: Context) -> None:
        self.log.append((ctx.name, msg.kind))


def _reference(seed: int) -> list[tuple[str, str]]:
    """The serving order with ``randrange`` and the runtime's ready-list rule (a drained
    mailbox's slot takes the last ready cell)."""
    rng = random.Random(f"sched:{seed}")
    inboxes = {n: [str(i) for i in range(k)] for n, k in QUEUED.items()}
    ready = list(QUEUED)
    out = []
    while ready:
        i = rng.randrange(len(ready)) if len(ready) > 1 else 0
        name = ready[i]
        out.append((name, inboxes[name].pop(0)))
        if not inboxes[name]:
            ready[i] = ready[-1]
            ready.pop()
    return out


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_the_scheduler_serves_mailboxes_in_randranges_order(seed: int) -> None:
    log: list[tuple[str, str]] = []
    registry = {n: Registered(n, "root", lambda: _Recorder(log)) for n in QUEUED}
    rt = DeterministicRuntime(seed=seed, start_ns=0, registry=registry, batch_journal=False)
    for name in QUEUED:
        rt.start(name)
    for name, count in QUEUED.items():
        for i in range(count):
            rt.tell(name, Tick(kind=str(i)))
    rt.run()
    assert log == _reference(seed)
    assert len(log) == sum(QUEUED.values())
