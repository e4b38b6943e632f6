"""The sweep's files: ``trials.csv`` (one row per trial), ``best.yaml`` (a ready config) and,
through :mod:`cryptoj.research.report`, ``index.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import yaml

from cryptoj.config import parse_config
from cryptoj.research.space import trial_raw
from cryptoj.research.sweep import FoldOutcome, SweepOutcome


def write_trials(outcome: SweepOutcome, out: Path) -> Path:
    """``out/trials.csv``: every trial of every fold (train rows), and each fold's chosen
    parameters on its test window (test rows), failed ones with their error."""
    path = out / "trials.csv"
    frame = pd.DataFrame(outcome.rows)
    frame.to_csv(path, index=False, float_format="%.10g")
    return path


def chosen_fold(outcome: SweepOutcome) -> FoldOutcome | None:
    """The fold whose choice the best config takes: the most recent train window with a
    feasible trial."""
    for fold in reversed(outcome.folds):
        if fold.best_number is not None:
            return fold
    return None


def best_config(outcome: SweepOutcome) -> dict[str, Any] | None:
    """The full config (every field) with the chosen parameters, or None without a choice."""
    fold = chosen_fold(outcome)
    if fold is None:
        return None
    cfg = parse_config(trial_raw(outcome.base, fold.params), "best config")
    data: dict[str, Any] = msgspec.to_builtins(cfg)
    data.setdefault("feed", {})["data"] = outcome.data
    data["seed"] = outcome.seed  # the trials' replays ran with the sweep's seed
    return data


def write_best(outcome: SweepOutcome, out: Path) -> Path | None:
    """``out/best.yaml``: the config to run with, commented with where its parameters came
    from (None when no trial was feasible)."""
    data = best_config(outcome)
    fold = chosen_fold(outcome)
    if data is None or fold is None:
        return None
    lines = [
        "# cryptoj config chosen by `python -m cryptoj sweep` "
        f"(objective {outcome.spec.objective.metric}).",
        f"# Parameters of trial {fold.best_number} on {fold.fold.label()}:",
    ]
    lines += [f"#   {k}: {v}" for k, v in fold.params.items()]
    if fold.test:
        lines.append(
            f"# in-sample {outcome.spec.objective.metric} {fold.train['objective']:.4g}, "
            f"out-of-sample {fold.test['objective']:.4g}"
        )
    lines.append("# Check it with: python -m cryptoj check-config best.yaml")
    path = out / "best.yaml"
    text = "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["best_config", "chosen_fold", "write_best", "write_trials"]
