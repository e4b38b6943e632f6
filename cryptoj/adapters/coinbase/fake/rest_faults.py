"""Fault switches of the fake exchange's private REST calls (armed, or drawn at random).

============================================  ==================================================
``rest_429`` body=html|json retry_after=S      answer 429 (HTML page or Coinbase-App JSON) with
                                               ``x-ratelimit-limit/remaining/reset`` and
                                               ``Retry-After``; the call is not processed
``rest_5xx`` status=503|500|502|504 commit=B   answer that status; with ``commit=true`` only after
                                               processing the call (the order exists)
``rest_delay`` seconds=S commit=before|after   answer after S seconds; the call is processed
                                               before the wait (default) or after it
``order_reject`` reason=R message=M            a create answers ``success:false`` (default
                                               ``INSUFFICIENT_FUND``) and creates nothing
``null_config``                                a create succeeds but answers
                                               ``"order_configuration": null`` (the SDK raises)
``drop_after_commit``                          process the call, then reset the TCP connection
                                               without answering
============================================  ==================================================

Armed faults (``inject(kind, count=N, endpoint=E)``) hit the next N authenticated calls whose
endpoint matches: ``any`` (every private call; the default of the first three) or one of
``create cancel get list fills accounts products`` (``create`` is the default, and for
``order_reject``/``null_config`` the only choice, of the last three). The random mode
(``order_fault_rate`` rate=P seed=N kinds=[...] endpoints=[...] delay_s=S) draws, for each call
to an order endpoint (default ``create cancel get list``), a fault with probability P among the
kinds that fit that endpoint, from its own seeded generator.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENDPOINTS = frozenset({"create", "cancel", "get", "list", "fills", "accounts", "products", "fees"})
REQUEST_KINDS = (
    "rest_429",
    "rest_5xx",
    "rest_delay",
    "order_reject",
    "null_config",
    "drop_after_commit",
)
CREATE_ONLY = frozenset({"order_reject", "null_config"})
ORDER_ENDPOINTS = frozenset({"create", "cancel", "get", "list"})


@dataclass
class Fault:
    """One fault to apply to one call."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any) -> Any:
        """A parameter, or ``default``."""
        return self.params.get(name, default)


@dataclass
class _Armed:
    fault: Fault
    left: int
    endpoints: frozenset[str]  # empty: any


def _endpoints(kind: str, endpoint: Any) -> frozenset[str]:
    if kind in CREATE_ONLY:
        if endpoint not in (None, "create"):
            raise ValueError(f"{kind} applies to create only, not {endpoint!r}")
        return frozenset({"create"})
    if endpoint in (None, ""):
        endpoint = "create" if kind == "drop_after_commit" else "any"
    if endpoint == "any":
        return frozenset()
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint {endpoint!r} is not any or one of {sorted(ENDPOINTS)}")
    return frozenset({str(endpoint)})


def check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The fault's parameters, checked (ValueError naming the bad one)."""
    out = dict(params)
    if kind == "rest_429" and out.get("body", "html") not in ("html", "json"):
        raise ValueError(f"rest_429 body must be html or json, not {out['body']!r}")
    if kind == "rest_5xx" and int(out.get("status", 503)) not in (500, 502, 503, 504):
        raise ValueError(f"rest_5xx status must be 500, 502, 503 or 504, not {out['status']!r}")
    if kind == "rest_delay":
        if float(out.get("seconds", 2.0)) < 0:
            raise ValueError("rest_delay seconds must be >= 0")
        if out.get("commit", "before") not in ("before", "after"):
            raise ValueError(f"rest_delay commit must be before or after, not {out['commit']!r}")
    return out


class RestFaults:
    """Armed and random faults; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed: list[_Armed] = []
        self.rate = 0.0
        self.rng = random.Random(0)
        self.kinds: tuple[str, ...] = REQUEST_KINDS
        self.random_endpoints = ORDER_ENDPOINTS
        self.delay_s = 1.5

    def arm(self, kind: str, count: int, params: Mapping[str, Any]) -> None:
        """Apply ``kind`` to the next ``count`` matching calls."""
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown REST fault {kind!r}")
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        endpoints = _endpoints(kind, params.get("endpoint"))
        checked = check_params(kind, {k: v for k, v in params.items() if k != "endpoint"})
        with self.lock:
            self.armed.append(_Armed(Fault(kind, checked), count, endpoints))

    def set_random(
        self,
        rate: float,
        seed: int | None,
        kinds: Iterable[str] | None = None,
        endpoints: Iterable[str] | None = None,
        delay_s: float | None = None,
    ) -> None:
        """Draw a fault for each order call with probability ``rate`` (0 turns it off)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"order_fault_rate must be in [0, 1], not {rate}")
        chosen = tuple(kinds) if kinds else REQUEST_KINDS
        if bad := [k for k in chosen if k not in REQUEST_KINDS]:
            raise ValueError(f"unknown fault kinds {bad}: choose from {list(REQUEST_KINDS)}")
        where = frozenset(endpoints) if endpoints else ORDER_ENDPOINTS
        if bad_e := sorted(where - ENDPOINTS):
            raise ValueError(f"unknown endpoints {bad_e}: choose from {sorted(ENDPOINTS)}")
        with self.lock:
            self.rate = rate
            self.rng = random.Random(seed)
            self.kinds = chosen
            self.random_endpoints = where
            if delay_s is not None:
                self.delay_s = float(delay_s)

    def take(self, endpoint: str) -> tuple[Fault | None, bool]:
        """The fault for this call, if any, and whether it was drawn at random."""
        with self.lock:
            for a in self.armed:
                if not a.endpoints or endpoint in a.endpoints:
                    a.left -= 1
                    if a.left <= 0:
                        self.armed.remove(a)
                    return a.fault, False
            if self.rate <= 0 or endpoint not in self.random_endpoints:
                return None, False
            if self.rng.random() >= self.rate:
                return None, False
            fits = [k for k in self.kinds if k not in CREATE_ONLY or endpoint == "create"]
            if not fits:
                return None, False
            kind = self.rng.choice(fits)
            params: dict[str, Any] = {}
            if kind == "rest_429":
                params["body"] = self.rng.choice(("html", "json"))
            elif kind == "rest_5xx":
                params["status"] = self.rng.choice((500, 503))
            elif kind == "rest_delay":
                params["seconds"] = self.delay_s
            return Fault(kind, params), True

    def state(self) -> dict[str, Any]:
        """Pending armed faults and the random mode's settings."""
        with self.lock:
            return {
                "armed": [
                    {"kind": a.fault.kind, "left": a.left, "endpoints": sorted(a.endpoints)}
                    for a in self.armed
                ],
                "order_fault_rate": self.rate,
                "random_kinds": list(self.kinds),
                "random_endpoints": sorted(self.random_endpoints),
            }
