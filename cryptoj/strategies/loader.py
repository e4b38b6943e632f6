"""Finding and checking the configured strategies: bundled, ``module:Class`` or entry point.

``strategy.kind`` (or each ``strategies[i].kind``) is resolved in this order:

1. ``manual``: no strategy class (the operator's targets);
2. a bundled strategy: ``ema_trend``, ``mean_reversion``, ``vol_target``;
3. ``"package.module:ClassName"``: imported (the working directory is on the import path, so
   a ``mymod.py`` next to the config works; so does any installed package);
4. the name of an entry point in the group ``cryptoj.strategies`` (a packaged strategy).

The parameters (``params``) are validated against the class's ``Params`` schema with the same
one-line-per-problem messages as the rest of the config. :func:`strategy_problems` lists every
problem (``check-config`` prints them; ``run`` and ``replay`` refuse to start with exit 2).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import msgspec

from cryptoj.config import (
    Config,
    ConfigError,
    StrategyConfig,
    configured_strategies,
    strategy_name,
    validate,
)
from cryptoj.strategies.api import Strategy, StrategyContext, params_of
from cryptoj.strategies.host import Slot

#: The entry-point group of packaged strategies.
ENTRY_POINT_GROUP = "cryptoj.strategies"


class StrategyLoadError(Exception):
    """The strategy class could not be found or is not a Strategy (the message says why)."""


@dataclass(frozen=True)
class StrategySpec:
    """A resolved strategy: everything needed to (re)create it in a StrategyActor."""

    name: str
    cls: type[Strategy[Any]]
    params: msgspec.Struct
    share: float
    products: frozenset[str] = frozenset()

    def make(self, seed: int) -> Slot:
        """A fresh instance in its own context (on every start of the StrategyActor)."""
        ctx = StrategyContext(
            self.name, seed=seed, history_bars=self.cls.history_bars, products=self.products
        )
        return Slot(self.name, self.cls(self.params, ctx), ctx, self.share)


def bundled() -> dict[str, type[Strategy[Any]]]:
    """The strategies shipped with cryptoj, by kind."""
    from cryptoj.strategies.ema_trend import EmaTrendStrategy
    from cryptoj.strategies.mean_reversion import MeanReversion
    from cryptoj.strategies.vol_target import VolTarget

    return {"ema_trend": EmaTrendStrategy, "mean_reversion": MeanReversion, "vol_target": VolTarget}


def resolve(kind: str) -> type[Strategy[Any]]:
    """The class ``kind`` names (module docstring); :class:`StrategyLoadError` otherwise."""
    found = bundled().get(kind)
    if found is not None:
        return found
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        if not module_name or not attr:
            raise StrategyLoadError(f"expected 'package.module:ClassName', got {kind!r}")
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(module_name)
        except Exception as e:
            raise StrategyLoadError(
                f"cannot import module {module_name!r}: {type(e).__name__}: {e}"
            ) from None
        found = getattr(module, attr, None)
        if found is None:
            raise StrategyLoadError(f"module {module_name!r} has no {attr!r}")
    else:
        eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
        if not eps:
            known = sorted({*bundled(), "manual"})
            raise StrategyLoadError(
                f"unknown strategy {kind!r}: not bundled ({', '.join(known)}), not "
                f"'package.module:ClassName' and no {ENTRY_POINT_GROUP!r} entry point"
            )
        try:
            found = eps[0].load()
        except Exception as e:
            raise StrategyLoadError(
                f"cannot load entry point {kind!r}: {type(e).__name__}: {e}"
            ) from None
    if not (isinstance(found, type) and issubclass(found, Strategy)):
        raise StrategyLoadError(f"{kind!r} is not a subclass of cryptoj.strategies.api.Strategy")
    return found


def raw_params(cfg: Config, s: StrategyConfig) -> dict[str, Any]:
    """The parameters of one strategy as given (the EMA trend's from its own fields)."""
    if s.kind != "ema_trend":
        return dict(s.params)
    from cryptoj.strategies.ema_trend import round_trip_cost

    band = s.entry_band if s.entry_band is not None else round_trip_cost(cfg)
    return {
        "fast_period": s.fast_period,
        "slow_period": s.slow_period,
        "target_weight": s.target_weight,
        "band": s.band,
        "entry_band": max(s.band, band),
        "min_hold_s": s.min_hold_s,
        **s.params,
    }


def load_strategies(cfg: Config) -> list[StrategySpec]:
    """Every configured strategy, resolved and with validated parameters (``manual`` has
    none); :class:`ConfigError` listing every problem."""
    specs: list[StrategySpec] = []
    problems: list[str] = []
    for where, s in configured_strategies(cfg):
        if s.kind == "manual":
            continue
        try:
            cls = resolve(s.kind)
        except StrategyLoadError as e:
            problems.append(f"{where}.kind: {e}")
            continue
        bad = [k for k in cls.subscribes if k not in {"bars", "quotes", "trades", "fills", "risk"}]
        if bad:
            problems.append(f"{where}.kind: {s.kind!r} subscribes to unknown events {bad}")
            continue
        raw = raw_params(cfg, s)
        found = validate(raw, cls.Params, f"{where}.params")
        if not found:
            try:
                params = params_of(cls, raw)
            except msgspec.ValidationError as e:
                found = [f"{where}.params: {e}"]
        if found:
            problems += found
            continue
        specs.append(StrategySpec(strategy_name(s), cls, params, s.weight, frozenset(s.products)))
    if problems:
        raise ConfigError("strategy", problems)
    return specs


def history_kinds(specs: list[StrategySpec]) -> frozenset[str]:
    """The market events a :class:`~cryptoj.strategies.history.MarketHistory` must keep for
    ``specs``' warm-up: bars always, quotes and trades when a strategy subscribed to them."""
    wants = {kind for spec in specs for kind in spec.cls.subscribes}
    return frozenset({"bars"} | (wants & {"quotes", "trades"}))


def strategy_problems(cfg: Config) -> list[str]:
    """Every problem :func:`load_strategies` finds (empty when they all load)."""
    try:
        load_strategies(cfg)
    except ConfigError as e:
        return e.problems
    return []
