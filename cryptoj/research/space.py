"""The sweep file: search space, objective, data, walk-forward windows and budget.

A sweep file is YAML (see ``examples/sweep.yaml``). Every parameter is a config field named by
its dotted path (``strategy.fast_period``) with a range (``low``/``high``, optional ``step`` or
``log``) or ``choices``. :func:`load_spec` reports every problem, one line each, as
:class:`~cryptoj.config.ConfigError` does for the daemon's config.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from cryptoj.config import Config, ConfigError, validate

Scalar = bool | int | float | str | None


class ParamSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One searched config field: a range (``low``..``high``, inclusive) or ``choices``."""

    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None  # grid step of the range (ints: default 1)
    log: bool = False  # sample the range on a log scale
    choices: list[Scalar] | None = None

    @property
    def is_int(self) -> bool:
        """A range of whole numbers (``low``, ``high`` and any ``step`` written as integers)."""
        return all(isinstance(v, int) for v in (self.low, self.high)) and (
            self.step is None or isinstance(self.step, int)
        )


class Objective(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a trial is scored by, on equity sampled once per ``period_h`` hours."""

    metric: Literal["sharpe", "calmar", "final_equity"] = "sharpe"
    max_drawdown: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None  # deeper: infeasible
    period_h: Annotated[float, msgspec.Meta(gt=0)] = 24.0


class WalkForward(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Rolling windows: parameters chosen on each train window are scored on the next test
    window; windows move on by ``step_days`` (default: ``test_days``)."""

    enabled: bool = True
    train_days: Annotated[int, msgspec.Meta(gt=0)] = 365
    test_days: Annotated[int, msgspec.Meta(gt=0)] = 90
    step_days: Annotated[int, msgspec.Meta(gt=0)] | None = None


class ReportSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The HTML report: the two parameters of the heatmap (default: the first two ranges)."""

    heatmap: list[str] | None = None
    top: Annotated[int, msgspec.Meta(gt=0)] = 5  # equity curves of this many top trials


class SweepSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole sweep file."""

    params: dict[str, ParamSpec]
    data: str | None = None  # bundled set or CSV (default: the base config's feed.data)
    start: dt.date | None = msgspec.field(default=None, name="from")
    end: dt.date | None = msgspec.field(default=None, name="to")
    base_config: str | None = None  # config file the trials start from (default: built-in)
    overrides: dict[str, Any] = msgspec.field(default_factory=dict)  # fixed for every trial
    search: Literal["tpe", "grid"] = "tpe"
    trials: Annotated[int, msgspec.Meta(gt=0)] = 20  # per train window
    batch: Annotated[int, msgspec.Meta(gt=0)] = 4  # trials proposed together
    seed: int = 7
    grid_points: Annotated[int, msgspec.Meta(ge=2)] = 5  # per continuous range, grid search
    cscv_blocks: Annotated[int, msgspec.Meta(ge=2)] = 8
    objective: Objective = Objective()
    walk_forward: WalkForward = WalkForward()
    report: ReportSpec = ReportSpec()


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; raise ConfigError listing every problem."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read file: {e.strerror}"]) from e
    except yaml.YAMLError as e:
        raise ConfigError(str(p), [f"not valid YAML: {e}".replace("\n", " ")]) from e
    return parse_spec(raw, str(p))


def parse_spec(raw: Any, source: str = "<sweep>") -> SweepSpec:
    """Validate a decoded sweep mapping."""
    if not isinstance(raw, dict):
        raise ConfigError(source, ["sweep: expected a mapping of fields"])
    raw = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in raw.items()}
    try:
        spec = msgspec.convert(raw, SweepSpec)
    except msgspec.ValidationError as e:
        raise ConfigError(source, [_msgspec_problem(str(e))]) from None
    problems = spec_problems(spec)
    if problems:
        raise ConfigError(source, problems)
    return spec


def _msgspec_problem(text: str) -> str:
    # msgspec: "Expected `int` >= 1, got `0` - at `$.trials`" → "trials: expected ..."
    if " - at `$." in text:
        what, where = text.rsplit(" - at `$.", 1)
        return f"{where.rstrip('`')}: {what[0].lower()}{what[1:]}"
    return text


def spec_problems(spec: SweepSpec) -> list[str]:
    """Every problem of a structurally valid spec (unknown fields, bad ranges), one a line."""
    out: list[str] = []
    if not spec.params:
        out.append("params: expected at least one searched config field")
    for name, p in spec.params.items():
        where = f"params.{name}"
        if not config_path_exists(name):
            out.append(f"{where}: not a config field")
        elif name.startswith("feed.") and name.split(".")[1] in ("data", "products", "source"):
            out.append(f"{where}: the market data is fixed for a sweep (set data: instead)")
        if p.choices is not None:
            if p.low is not None or p.high is not None or p.step is not None or p.log:
                out.append(f"{where}: give either choices or a range (low, high), not both")
            elif not p.choices:
                out.append(f"{where}: choices: expected at least one value")
            continue
        if p.low is None or p.high is None:
            out.append(f"{where}: expected low and high (or choices)")
            continue
        if p.low > p.high:
            out.append(f"{where}: low {p.low} is above high {p.high}")
        if p.log and p.low <= 0:
            out.append(f"{where}: a log range needs low > 0, got {p.low}")
        if p.log and p.step is not None:
            out.append(f"{where}: give either step or log, not both")
        if p.step is not None and p.step <= 0:
            out.append(f"{where}: step: expected > 0, got {p.step}")
    for name in spec.overrides:
        if not config_path_exists(name):
            out.append(f"overrides.{name}: not a config field")
    if spec.report.heatmap is not None:
        if len(spec.report.heatmap) != 2:
            out.append("report.heatmap: expected two parameter names")
        for name in spec.report.heatmap:
            if name not in spec.params:
                out.append(f"report.heatmap: {name} is not one of params")
    if spec.cscv_blocks % 2:
        out.append(f"cscv_blocks: expected an even number, got {spec.cscv_blocks}")
    if spec.start and spec.end and spec.start > spec.end:
        out.append(f"from: {spec.start} is after to: {spec.end}")
    return out


def config_path_exists(path: str) -> bool:
    """Whether a dotted path names a field of :class:`~cryptoj.config.Config` (dict-typed
    fields such as ``flags`` accept any key below them)."""
    t: Any = msgspec.inspect.type_info(Config)
    for part in path.split("."):
        if isinstance(t, msgspec.inspect.DictType):
            t = t.value_type
            continue
        if not isinstance(t, msgspec.inspect.StructType):
            return False
        fields = {f.encode_name: f.type for f in t.fields}
        if part not in fields:
            return False
        t = fields[part]
    return True


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping, creating the mappings on the way."""
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def base_raw(spec: SweepSpec) -> dict[str, Any]:
    """The base config's mapping with the sweep's fixed overrides applied (not validated)."""
    raw: dict[str, Any] = {}
    if spec.base_config:
        try:
            loaded = yaml.safe_load(Path(spec.base_config).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(spec.base_config, [f"cannot read the base config: {e}"]) from e
        raw = loaded if isinstance(loaded, dict) else {}
    for path, value in spec.overrides.items():
        set_path(raw, path, value)
    return raw


def trial_raw(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with a trial's parameters set."""
    raw = copy.deepcopy(base)
    for path, value in params.items():
        set_path(raw, path, value)
    return raw


def check_base(spec: SweepSpec) -> list[str]:
    """Problems of the base config with the overrides (validated before any trial runs)."""
    raw = base_raw(spec)
    return validate(raw, Config, "")


def grid_values(p: ParamSpec, points: int) -> list[Any]:
    """The values a grid search tries for one parameter."""
    if p.choices is not None:
        return list(p.choices)
    assert p.low is not None and p.high is not None
    lo, hi = p.low, p.high
    if p.step is not None:
        n = math.floor((hi - lo) / p.step + 1e-9) + 1
        vals: list[Any] = [lo + i * p.step for i in range(n)]
    elif p.log:
        vals = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]
    else:
        vals = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    if p.is_int:
        return sorted({round(v) for v in vals})
    return [round(float(v), 12) for v in vals]


def grid_size(spec: SweepSpec) -> int:
    """How many points the full grid has."""
    n = 1
    for p in spec.params.values():
        n *= len(grid_values(p, spec.grid_points))
    return n


def fingerprint(spec: SweepSpec) -> str:
    """A digest of everything that decides the trials' results except the budget: a stored
    study is only continued by the same sweep."""
    data = msgspec.to_builtins(spec)
    data.pop("trials", None)
    data.pop("report", None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = [
    "Objective",
    "ParamSpec",
    "ReportSpec",
    "SweepSpec",
    "WalkForward",
    "base_raw",
    "check_base",
    "config_path_exists",
    "fingerprint",
    "grid_size",
    "grid_values",
    "load_spec",
    "parse_spec",
    "set_path",
    "trial_raw",
]
