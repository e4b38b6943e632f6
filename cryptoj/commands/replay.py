"""The ``replay``, ``sweep`` and ``report`` commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptoj.commands.config import load
from cryptoj.marketdata.errors import DataError
from cryptoj.models.system import EXIT_ERROR, EXIT_OK, EXIT_USAGE


def replay(args: argparse.Namespace) -> int:
    """``replay``: run the strategies over recorded data (or ``--list-data``); the summary."""
    from cryptoj.marketdata.loader import list_datasets
    from cryptoj.paths import writable_file_problem
    from cryptoj.progress import wanted
    from cryptoj.replay import ReplayOptions, run_replay

    if args.list_data:
        for info in list_datasets():
            print(
                f"{info.name}\t{','.join(info.instruments)}\t{info.resolution}\t"
                f"{info.start} .. {info.end}"
            )
        from cryptoj.marketdata.data_cli import print_catalog_sets

        print_catalog_sets(args.catalog or load(args.config).feed.catalog)
        return EXIT_OK
    cfg = load(args.config)
    if args.runtime == "threaded" and (args.chaos or args.chaos_storm):
        print("replay: --chaos and --chaos-storm need --runtime deterministic", file=sys.stderr)
        return EXIT_USAGE
    for what, path in (("--journal", args.journal), ("--trace", args.trace)):
        problem = writable_file_problem(path, what) if path else None
        if problem is not None:
            print(f"replay: {problem}", file=sys.stderr)
            return EXIT_USAGE
    opts = ReplayOptions(
        data=args.data or cfg.feed.data,
        start=args.start,
        end=args.end,
        journal=args.journal,
        trace=args.trace or None,
        runtime=args.runtime,
        seed=cfg.seed if args.seed is None else args.seed,
        chaos=args.chaos,
        chaos_storm=args.chaos_storm,
        progress=wanted(args.json),
        unwind=args.unwind,
        catalog=args.catalog or cfg.feed.catalog,
    )
    try:
        summary, code = run_replay(cfg, opts)
    except (DataError, ValueError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # journal or trace: the checks above cannot foresee everything
        print(f"replay: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    if args.report:
        from cryptoj.report import ReportError, write_report

        try:
            with _report_progress(opts.progress) as progress:
                index = write_report(
                    opts.journal,
                    args.report,
                    data=opts.data,
                    products=list(cfg.feed.products) or None,
                    title=f"cryptoj replay of {opts.data} (seed {opts.seed})",
                    extra=_report_rows(summary),
                    catalog=opts.catalog,
                    progress=progress,
                    quote_max_age_s=cfg.portfolio.quote_max_age_s,
                )
        except (ReportError, DataError) as e:
            print(f"replay: report: {e}", file=sys.stderr)
            return EXIT_USAGE
        summary["report"] = str(index)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        _print_summary(summary)
    return code if code is not None else EXIT_ERROR


def _report_rows(s: dict[str, Any]) -> dict[str, Any]:
    """The replay summary's rows that the report's own table does not have."""
    keys = (
        "runtime",
        "seed",
        "events",
        "restarts",
        "crashes",
        "escalations",
        "dead_letters",
        "invariants_ok",
        "exit_code",
        "exit_reason",
    )
    return {k: s[k] for k in keys if k in s}


def sweep(args: argparse.Namespace) -> int:
    """``sweep``: a walk-forward parameter search; its trials, best config and report."""
    from cryptoj.research.output import write_best, write_trials
    from cryptoj.research.report import write_report
    from cryptoj.research.space import load_spec
    from cryptoj.research.sweep import SweepError, SweepOptions, run_sweep

    if (args.trials is not None and args.trials < 1) or (args.jobs is not None and args.jobs < 1):
        print("sweep: --trials and --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    spec = load_spec(args.space)
    out = Path(args.out)
    if args.fresh:
        (out / "study.sqlite").unlink(missing_ok=True)
    opts = SweepOptions(
        out=out,
        trials=args.trials,
        jobs=args.jobs,
        seed=args.seed,
        ray=args.ray,
        progress=sys.stderr.isatty(),
    )
    try:
        outcome = run_sweep(spec, opts)
    except SweepError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sweep: interrupted; rerun the same command to continue ({out})", file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as e:
        if e.name not in ("optuna", "ray"):
            raise
        print(f"sweep: needs {e.name}: pip install -e '.[research]'", file=sys.stderr)
        return EXIT_USAGE
    write_trials(outcome, out)
    best = write_best(outcome, out)
    index = write_report(outcome, out, title=f"cryptoj sweep: {args.space}")
    metric = spec.objective.metric
    for f in outcome.folds:
        oos = f"{f.test['objective']:.4g}" if f.test else (f.test_error or "-")
        is_ = f"{f.train['objective']:.4g}" if f.train else "-"
        print(
            f"fold {f.fold.index}: {f.fold.label()}: {f.complete} complete, {f.failed} failed; "
            f"chosen #{f.best_number} {metric} in-sample {is_}, out-of-sample {oos}"
        )
    failed = sum(f.failed for f in outcome.folds)
    print(f"trials {out / 'trials.csv'} ({len(outcome.rows)} rows, {failed} failed)")
    print(f"best config {best}" if best else "best config: none (no feasible trial)")
    print(f"report {index}")
    return EXIT_OK if outcome.finished else EXIT_ERROR


@contextlib.contextmanager
def _report_progress(show: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A progress bar for ``write_report`` (terminals only; None otherwise)."""
    if not show:
        yield None
        return
    from cryptoj.progress import Bar

    bar: Bar | None = None

    def progress(done: int, total: int, what: str) -> None:
        nonlocal bar
        if bar is None:
            bar = Bar("report", total).__enter__()
        bar.update(done, what)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def report(args: argparse.Namespace) -> int:
    """``report``: the HTML report of a journal."""
    from cryptoj.progress import wanted
    from cryptoj.report import ReportError, write_report
    from cryptoj.report.data import journal_meta

    cfg = load(args.config, default_if_missing=True)
    try:
        data = args.data or journal_meta(args.journal).get("data") or cfg.feed.data
        with _report_progress(wanted(json_output=False)) as progress:
            index = write_report(
                args.journal,
                args.out,
                data=data,
                products=list(cfg.feed.products) or None,
                title=args.title,
                catalog=args.catalog or cfg.feed.catalog,
                progress=progress,
                quote_max_age_s=cfg.portfolio.quote_max_age_s,
            )
    except (ReportError, DataError) as e:
        print(f"report: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report written: {index}")
    return EXIT_OK


def _rotated_note(files: list[str]) -> str:
    """`` (+N rotated files: …; `trace` commands read them all)`` when the trace rotated."""
    older = files[:-1]
    if not older:
        return ""
    names = ", ".join(older) if len(older) <= 2 else f"{older[0]} … {older[-1]}"
    return f" (+{len(older)} rotated file(s): {names}; the trace commands read them all)"


def _print_summary(s: dict[str, Any]) -> None:
    problems = "; ".join(s["invariant_problems"])
    lines = [
        f"replay of {s['data']} ({s['runtime']} runtime, seed {s['seed']}): "
        f"{s['events']} events in {s['wall_seconds']}s ({s['events_per_second']}/s)",
        f"orders {s['orders']}, fills {s['fills']}, rejections {s['rejections']}, "
        f"open orders at end {s['open_orders']}",
        "orders by strategy: "
        + (", ".join(f"{k} {v}" for k, v in s.get("orders_by_strategy", {}).items()) or "none"),
        f"equity {s['start_equity']:,.2f} -> {s['final_equity']:,.2f} "
        f"(max drawdown {s['max_drawdown']:.2%})",
        f"fees {s['fees_paid']:,.2f} ({s['fees_pct']:.2%} of start equity), "
        f"turnover {s['turnover']:.2f}× start equity",
        f"restarts {s['restarts']}, escalations {s['escalations']}, "
        f"dead letters {s['dead_letters']}",
        f"invariants {'OK' if s['invariants_ok'] else 'BROKEN: ' + problems}",
        f"exit: {s['exit_code']} ({s['exit_reason']})",
        f"journal {s['journal']}, trace {s['trace']}" + _rotated_note(s.get("trace_files", [])),
    ]
    if s.get("report"):
        lines.append(f"report {s['report']}")
    print("\n".join(lines))
