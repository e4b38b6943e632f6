"""Shared fixtures: stop every pykka actor after each test and check no thread leaked."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    leaked = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and not t.daemon and t.name.startswith("_Host")
    ]
    for t in leaked:
        t.join(timeout=5)
    assert not [t for t in leaked if t.is_alive()], f"leaked actor threads: {leaked}"
