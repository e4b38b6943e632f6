"""Shared fixtures: stop every pykka actor after each test and check no thread leaked.

Property tests (hypothesis) run the same examples on every run, so the suite's verdict does
not depend on the draw: ``CRYPTOJ_HYPOTHESIS=explore python -m pytest`` looks for new ones.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pykka
import pytest
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("CRYPTOJ_HYPOTHESIS", "deterministic"))


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    leaked = [
        t
        for t in threading.enumerate()
        if t.ident not in before
        and t.is_alive()
        and not t.daemon
        and t.name.startswith("ActorHost")
    ]
    for t in leaked:
        t.join(timeout=5)
    assert not [t for t in leaked if t.is_alive()], f"leaked actor threads: {leaked}"
