"""The sweep driver: one optuna study per walk-forward fold, stored in SQLite, run in batches.

Determinism. Trials are proposed in batches of ``batch`` (a sweep setting, not the number of
workers): a batch is proposed, all its trials run, and their results are told to the study in
trial order before the next batch is proposed. Each proposal is drawn by a sampler seeded by
the sweep's seed and the trial's number from the finished trials only (grid search: the grid,
shuffled by the seed, point by point). So the proposals depend only on the seed and the results
before them, never on how many workers there are, which backend ran them or which finished
first; and a replay is deterministic, so a rerun with the same seed gives the same table.

Resuming. The study is in ``OUT/study.sqlite``. A proposal is stored whole, in one write
(an enqueued trial with fixed parameters), then taken. Rerunning the same sweep continues it:
trials already told are kept (never run again), trials proposed but never finished (the sweep
was killed) are run with their stored parameters, and the batch they were part of is completed
first, so a killed and resumed sweep ends with the same trials as one that was not interrupted.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryptoj.config import ConfigError, parse_config
from cryptoj.research.backends import Backend, make_backend
from cryptoj.research.metrics import deflated_sharpe, pbo_cscv, sharpe, simple_returns
from cryptoj.research.space import (
    SweepSpec,
    base_raw,
    check_base,
    fingerprint,
    grid_size,
    grid_values,
)
from cryptoj.research.trial import Payload, Result, Task, load_payload_data, open_offset
from cryptoj.research.windows import Fold, make_folds


class SweepError(Exception):
    """The sweep cannot run (bad data range, a stored study of another sweep, ...)."""


@dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep (the command line's options)."""

    out: Path
    trials: int | None = None  # per fold; default: the spec's
    jobs: int | None = None  # default: all cores
    seed: int | None = None  # default: the spec's
    ray: str | None = None  # None: the local process pool
    progress: bool = False
    stop_after: int | None = None  # stop after running this many trials (an interruption)


@dataclass
class FoldOutcome:
    """One fold's selection and its in-sample against out-of-sample figures."""

    fold: Fold
    complete: int = 0
    failed: int = 0
    best_number: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # figures + objective of the best
    test: dict[str, Any] = field(default_factory=dict)  # figures + objective on the test window
    test_error: str = ""
    pbo: float | None = None
    dsr: float | None = None


@dataclass
class SweepOutcome:
    """Everything the outputs are written from."""

    spec: SweepSpec
    data: str
    folds: list[FoldOutcome]
    rows: list[dict[str, Any]]  # one per trial (train and test), for trials.csv
    equity: dict[tuple[int, str, int], list[float]]  # (fold, phase, trial) → sampled equity
    finished: bool
    base: dict[str, Any]
    seed: int  # of the replays (and the sampler)
    ran: int = 0  # replays run by this call (a resumed sweep runs only what is missing)


def objective_value(spec: SweepSpec, figures: dict[str, Any]) -> float:
    """The figure the sweep maximises."""
    return float(figures[spec.objective.metric])


def feasible(spec: SweepSpec, figures: dict[str, Any]) -> bool:
    """Whether a trial meets the max-drawdown constraint (always, without one)."""
    limit = spec.objective.max_drawdown
    return limit is None or float(figures["max_drawdown"]) <= limit


def run_sweep(
    spec: SweepSpec, opts: SweepOptions, log: Callable[[str], None] | None = None
) -> SweepOutcome:
    """Run (or continue) the sweep and collect its results."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = spec.seed if opts.seed is None else opts.seed
    budget = opts.trials or spec.trials
    if spec.search == "grid":
        budget = min(budget, grid_size(spec))
    problems = check_base(spec)
    if problems:
        raise ConfigError("sweep base config", problems)
    base = base_raw(spec)
    cfg = parse_config(base, "sweep base config")
    data = spec.data or cfg.feed.data
    products = list(cfg.feed.products) or None
    before, batches = load_payload_data(data, products, spec.start, spec.end)
    offset = open_offset(batches)
    first = spec.start or _utc_date(batches[0][0].ts - offset)
    last = spec.end or _utc_date(batches[-1][-1].ts - offset)
    try:
        folds = make_folds(first, last, spec.walk_forward)
    except ValueError as e:
        raise SweepError(str(e)) from None
    opts.out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(opts.out / 'study.sqlite').resolve()}"
    payload = Payload(data, batches, before, base, seed, spec.objective.period_h * 3600)
    runner = _Runner(spec, opts, payload, seed, log)
    try:
        studies = []
        for fold in folds:
            study = optuna.create_study(
                study_name=f"fold-{fold.index}",
                storage=storage,
                direction="maximize",
                load_if_exists=True,
            )
            _check_fingerprint(study, spec, seed)
            studies.append(study)
        finished = True
        for fold, study in zip(folds, studies, strict=True):
            if not runner.run_fold(study, fold, budget):
                finished = False
                break
        if finished and spec.walk_forward.enabled:
            finished = runner.run_tests(studies, folds)
    finally:
        runner.close()
    outcome = _collect(spec, data, folds, studies, finished, base, seed)
    outcome.ran = runner.ran
    return outcome


def _utc_date(ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts / 1e9, tz=dt.UTC).date()


def _check_fingerprint(study: Any, spec: SweepSpec, seed: int) -> None:
    mark = f"{fingerprint(spec)}-s{seed}"
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
        study.set_user_attr("fingerprint", mark)
    elif stored != mark:
        raise SweepError(
            f"the stored study {study.study_name} was made by a different sweep (other "
            "parameters, data, windows or seed); use another --out or --fresh"
        )


class _Runner:
    """Asks, runs and tells trials, one batch at a time."""

    def __init__(
        self,
        spec: SweepSpec,
        opts: SweepOptions,
        payload: Payload,
        seed: int,
        log: Callable[[str], None] | None,
    ) -> None:
        self.spec, self.opts, self.payload, self.seed = spec, opts, payload, seed
        self.log = log
        self.backend: Backend | None = None
        self.ran = 0
        self._grid_points: list[dict[str, Any]] | None = None

    def _backend(self) -> Backend:
        if self.backend is None:
            work = self.opts.out / "work"  # the pool workers' journals (a kill leaves them)
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            self.backend = make_backend(self.payload, self.opts.jobs, self.opts.ray, work)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def _propose(self, study: Any, number: int) -> dict[str, Any]:
        """Trial ``number``'s parameters. Grid: the ``number``-th point of the grid shuffled
        by the seed. TPE: drawn by a sampler seeded by the seed and ``number``, from the
        finished trials only, on an in-memory copy of the study (so the draw can be stored in
        one write, and a killed sweep cannot leave a trial with half its parameters)."""
        import optuna

        if self.spec.search == "grid":
            return self._grid()[number]
        seed = (self.seed * 1_000_003 + number) % 2**32
        copy = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        copy.add_trials([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
        return self._suggest(copy.ask())

    def _grid(self) -> list[dict[str, Any]]:
        if self._grid_points is None:
            names = sorted(self.spec.params)
            values = [grid_values(self.spec.params[n], self.spec.grid_points) for n in names]
            points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
            random.Random(self.seed).shuffle(points)
            self._grid_points = points
        return self._grid_points

    def _suggest(self, trial: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # in name order: the draws do not depend on the order the file lists them in
        for name, p in sorted(self.spec.params.items()):
            if p.choices is not None:
                out[name] = trial.suggest_categorical(name, p.choices)
            elif p.is_int:
                out[name] = trial.suggest_int(
                    name, int(p.low or 0), int(p.high or 0), step=int(p.step or 1), log=p.log
                )
            else:
                out[name] = trial.suggest_float(
                    name, float(p.low or 0), float(p.high or 0), step=p.step, log=p.log
                )
        return out

    def run_fold(self, study: Any, fold: Fold, budget: int) -> bool:
        """Run the fold's study up to ``budget`` trials; False when interrupted."""
        import optuna
        from optuna.trial import TrialState

        batch = self.spec.batch
        while True:
            for _ in [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]:
                self._suggest(study.ask())  # proposed, then the sweep was killed
            trials = study.get_trials(deepcopy=False)
            n = len(trials)
            if n < budget and (n % batch or all(t.state != TrialState.RUNNING for t in trials)):
                # ask for the next batch, or for the rest of one whose asking was interrupted
                target = min(budget, (n // batch + 1) * batch)
                while (number := len(study.get_trials(deepcopy=False))) < target:
                    study.enqueue_trial(self._propose(study, number))
                    self._suggest(study.ask())
            running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
            if not running:
                return True
            if self.opts.stop_after is not None and self.ran >= self.opts.stop_after:
                return False
            trials = []
            for ft in running:
                trial = optuna.trial.Trial(study, ft._trial_id)  # its parameters are fixed
                trials.append((trial, self._suggest(trial)))
            tasks = [
                Task(fold.index, t.number, "train", params, fold.train_start, fold.train_end)
                for t, params in trials
            ]
            results = self._backend().run(tasks)
            for (trial, _), res in zip(trials, results, strict=True):
                self._tell(study, trial, res)
            self.ran += len(tasks)
            self._progress(fold, study, budget)

    def _tell(self, study: Any, trial: Any, res: Result) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("wall_seconds", round(res.wall_seconds, 3))
        if not res.ok:
            trial.set_user_attr("error", res.error)
            study.tell(trial, state=TrialState.FAIL)
            return
        ok = feasible(self.spec, res.figures)
        limit = self.spec.objective.max_drawdown
        trial.set_user_attr("figures", res.figures)
        trial.set_user_attr("equity", res.equity)
        trial.set_user_attr("feasible", ok)
        if limit is not None:  # TPE prefers feasible trials (≤ 0: feasible)
            trial.set_constraint("max_drawdown", float(res.figures["max_drawdown"]) - limit)
        study.tell(trial, objective_value(self.spec, res.figures))

    def run_tests(self, studies: list[Any], folds: list[Fold]) -> bool:
        """Score each fold's chosen parameters on its test window (once; stored)."""
        tasks, owners = [], []
        for study, fold in zip(studies, folds, strict=True):
            if "test" in study.user_attrs:
                continue
            best = select_best(self.spec, study.get_trials(deepcopy=False))
            if best is None:
                study.set_user_attr("test", {"ok": False, "error": "no feasible trial to test"})
                continue
            assert fold.test_start is not None and fold.test_end is not None
            tasks.append(
                Task(
                    fold.index,
                    best.number,
                    "test",
                    dict(best.params),
                    fold.test_start,
                    fold.test_end,
                )
            )
            owners.append(study)
        if not tasks:
            return True
        if self.opts.stop_after is not None and self.ran >= self.opts.stop_after:
            return False
        for study, res in zip(owners, self._backend().run(tasks), strict=True):
            stored: dict[str, Any] = {
                "ok": res.ok,
                "error": res.error,
                "trial": res.task.number,
                "wall_seconds": round(res.wall_seconds, 3),
            }
            if res.ok:
                stored.update(
                    figures=res.figures,
                    equity=res.equity,
                    objective=objective_value(self.spec, res.figures),
                )
            study.set_user_attr("test", stored)
        self.ran += len(tasks)
        return True

    def _progress(self, fold: Fold, study: Any, budget: int) -> None:
        if not self.opts.progress:
            return
        trials = study.get_trials(deepcopy=False)
        done = sum(1 for t in trials if t.state.is_finished())
        failed = sum(1 for t in trials if t.state.name == "FAIL")
        width = 30
        bar = "#" * (width * done // max(1, budget))
        sys.stderr.write(
            f"\rsweep: fold {fold.index + 1} [{bar:<{width}}] {done}/{budget} trials"
            f" ({failed} failed)"
        )
        if done >= budget:
            sys.stderr.write("\n")
        sys.stderr.flush()


def select_best(spec: SweepSpec, trials: list[Any]) -> Any:
    """The completed, feasible trial of highest objective (lowest number on a tie), or None."""
    ok = [
        t
        for t in trials
        if t.state.name == "COMPLETE"
        and t.user_attrs.get("feasible", True)
        and t.value is not None
        and not math.isnan(t.value)
    ]
    if not ok:
        return None
    return max(ok, key=lambda t: (t.value, -t.number))


def _collect(
    spec: SweepSpec,
    data: str,
    folds: list[Fold],
    studies: list[Any],
    finished: bool,
    base: dict[str, Any],
    seed: int,
) -> SweepOutcome:
    rows: list[dict[str, Any]] = []
    equity: dict[tuple[int, str, int], list[float]] = {}
    outcomes = []
    for fold, study in zip(folds, studies, strict=True):
        trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        best = select_best(spec, trials)
        out = FoldOutcome(fold)
        out.complete = sum(1 for t in trials if t.state.name == "COMPLETE")
        out.failed = sum(1 for t in trials if t.state.name == "FAIL")
        for t in trials:
            figs = t.user_attrs.get("figures", {})
            rows.append(
                _row(
                    spec,
                    fold,
                    "train",
                    t.number,
                    t.params,
                    t.state.name,
                    t.user_attrs.get("error", ""),
                    figs,
                    t.user_attrs.get("feasible"),
                    best is not None and t.number == best.number,
                    t.user_attrs.get("wall_seconds"),
                )
            )
            if "equity" in t.user_attrs:
                equity[(fold.index, "train", t.number)] = t.user_attrs["equity"]
        if best is not None:
            out.best_number = best.number
            out.params = dict(best.params)
            out.train = {**best.user_attrs["figures"], "objective": best.value}
            out.pbo, out.dsr = overfitting(spec, trials, best)
        test = study.user_attrs.get("test")
        if test is not None and best is not None:
            if test.get("ok"):
                out.test = {**test["figures"], "objective": test["objective"]}
                equity[(fold.index, "test", best.number)] = test["equity"]
            else:
                out.test_error = test.get("error", "")
            rows.append(
                _row(
                    spec,
                    fold,
                    "test",
                    best.number,
                    best.params,
                    "COMPLETE" if test.get("ok") else "FAIL",
                    test.get("error", ""),
                    test.get("figures", {}),
                    None,
                    True,
                    test.get("wall_seconds"),
                )
            )
        outcomes.append(out)
    return SweepOutcome(spec, data, outcomes, rows, equity, finished, base, seed)


def _row(
    spec: SweepSpec,
    fold: Fold,
    phase: str,
    number: int,
    params: dict[str, Any],
    state: str,
    error: str,
    figures: dict[str, Any],
    ok: bool | None,
    selected: bool,
    wall: float | None,
) -> dict[str, Any]:
    start, end = (
        (fold.train_start, fold.train_end) if phase == "train" else (fold.test_start, fold.test_end)
    )
    row: dict[str, Any] = {
        "fold": fold.index,
        "phase": phase,
        "trial": number,
        "state": state,
        "window_start": str(start),
        "window_end": str(end),
    }
    for name in spec.params:
        row[name] = params.get(name)
    row["objective"] = figures.get(spec.objective.metric) if figures else None
    row["feasible"] = ok
    row["selected"] = selected
    for key in (
        "sharpe",
        "calmar",
        "final_equity",
        "total_return",
        "max_drawdown",
        "fees_paid",
        "turnover",
        "orders",
        "fills",
    ):
        row[key] = figures.get(key)
    row["error"] = error
    row["wall_seconds"] = wall
    return row


def overfitting(spec: SweepSpec, trials: list[Any], best: Any) -> tuple[float | None, float | None]:
    """PBO (CSCV over the fold's completed trials' period returns) and the deflated Sharpe
    ratio of the selected trial; None where there are too few trials or periods."""
    series = {
        t.number: simple_returns(t.user_attrs["equity"])
        for t in trials
        if t.state.name == "COMPLETE" and "equity" in t.user_attrs
    }
    if best.number not in series:
        return None, None
    length = min(len(r) for r in series.values())
    srs = [sharpe(r[:length]) for r in series.values()]
    dsr = deflated_sharpe(series[best.number][:length], srs) if length >= 2 else None
    pbo = None
    if len(series) >= 2:
        blocks = spec.cscv_blocks
        while blocks > 2 and length // blocks < 2:
            blocks -= 2
        if length // blocks >= 2:
            mat = np.array([r[:length] for r in series.values()]).T
            pbo = pbo_cscv(mat, blocks)
    return pbo, dsr


__all__ = [
    "FoldOutcome",
    "SweepError",
    "SweepOptions",
    "SweepOutcome",
    "feasible",
    "objective_value",
    "overfitting",
    "run_sweep",
    "select_best",
]
