"""The command line: run, replay, sweep, status, report, check-config, trace and emergency commands.

``run`` is the default. The emergency commands (shutdown, flatten, hold, resume) are sent to
the running daemon's control endpoint on loopback.

Exit codes: 0 success; 1 unexpected error (for the emergency commands: no daemon answered);
2 bad usage, configuration or data (or the daemon refused the command); 3 emergency shutdown
(a supervisor escalated past the root).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from cryptoj.config import Config, ConfigError, load_config, path_problems
from cryptoj.marketdata.errors import DataError
from cryptoj.runtime.assemble import LiveTradingUnavailable
from cryptoj.runtime.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE

DEFAULT_CONFIG = "config.yaml"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535 (0 = any), got {value}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: MESSAGE`` and exit 2 (the usage is in ``--help``)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = _Parser(prog="cryptoj", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="start the daemon (the default command)")
    run.add_argument(
        "--config", default=None, help=f"config file (default: {DEFAULT_CONFIG} if present)"
    )
    run.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    run.add_argument(
        "--live",
        action="store_true",
        help="trade live on Coinbase (also needs mode: live and live_trading_confirmed: true)",
    )
    run.add_argument(
        "--ops-port",
        type=_port,
        default=None,
        help="ops endpoint port (overrides ops.port; 0 = any)",
    )

    rp = sub.add_parser("replay", help="run the full actor system over recorded data")
    rp.add_argument(
        "--data", default=None, help="bundled set name or CSV path (default: feed.data)"
    )
    rp.add_argument(
        "--list-data",
        action="store_true",
        help="list the bundled data sets and the catalog's sets, and exit",
    )
    rp.add_argument(
        "--catalog",
        default=None,
        metavar="DIR",
        help="local market-data catalog for catalog:/recorded: data (default: feed.catalog)",
    )
    rp.add_argument("--from", dest="start", type=_date, help="first UTC day (YYYY-MM-DD)")
    rp.add_argument("--to", dest="end", type=_date, help="last UTC day, inclusive (YYYY-MM-DD)")
    rp.add_argument("--config", default=None, help="config file (default: built-in defaults)")
    rp.add_argument(
        "--journal",
        default="var/replay/journal.sqlite",
        help="journal path, recreated on each replay",
    )
    rp.add_argument("--trace", default="var/replay/trace.jsonl", help="trace path ('' disables)")
    rp.add_argument("--runtime", choices=("deterministic", "threaded"), default="deterministic")
    rp.add_argument(
        "--seed", type=int, default=None, help="scheduler and id seed (default: config seed)"
    )
    rp.add_argument(
        "--chaos",
        type=_count,
        default=0,
        metavar="N",
        help="inject N actor crashes (deterministic runtime only)",
    )
    rp.add_argument(
        "--chaos-storm",
        action="store_true",
        help="crash one actor past its restart intensity (ends in exit code 3)",
    )
    rp.add_argument(
        "--unwind",
        choices=("gradual", "immediate"),
        default=None,
        help="how the emergency programme unwinds: in slices (gradual) or all at market at once "
        "(immediate); default: shutdown.unwind.mode",
    )
    rp.add_argument("--json", action="store_true", help="print the summary as JSON (last line)")
    rp.add_argument(
        "--report", metavar="DIR", default=None, help="also write an HTML report into DIR"
    )

    st = sub.add_parser("status", help="show the running daemon's state (over loopback)")
    st.add_argument("--config", default=None, help=f"config file (default: {DEFAULT_CONFIG})")
    st.add_argument("--port", type=int, default=None, help="ops port (default: ops.port)")
    st.add_argument("--url", default=None, help="ops endpoint URL (default: from the config)")
    st.add_argument("--json", action="store_true", help="print /status, /health, /ready as JSON")
    st.add_argument("--timeout", type=float, default=10.0, help="seconds per request")

    rep = sub.add_parser("report", help="write an HTML report of a journal (replay or live)")
    rep.add_argument("journal", help="journal database (e.g. var/journal.sqlite)")
    rep.add_argument("--out", default="var/report", help="output folder (default: var/report)")
    rep.add_argument(
        "--data",
        default=None,
        help="market data set or CSV (default: the journal's, else feed.data)",
    )
    rep.add_argument("--config", default=None, help=f"config file (default: {DEFAULT_CONFIG})")
    rep.add_argument("--title", default=None, help="page title")
    rep.add_argument(
        "--catalog", default=None, metavar="DIR", help="local catalog (default: feed.catalog)"
    )

    for name, text in (
        ("shutdown", "stop the running daemon in order (exit code 0)"),
        ("flatten", "unwind every position of the running daemon, then hold"),
        ("hold", "stop new entries and automatic recovery until resume"),
        ("resume", "return the emergency programme to NORMAL (gradual re-entry)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--reason", default="", help="why (journalled)")
        cmd.add_argument("--config", default=None, help=f"config file (default: {DEFAULT_CONFIG})")
        cmd.add_argument("--port", type=int, default=None, help="ops port (default: ops.port)")
        cmd.add_argument("--url", default=None, help="ops endpoint URL (default: from the config)")
        cmd.add_argument("--timeout", type=float, default=10.0, help="seconds for the request")
        if name == "flatten":
            cmd.add_argument(
                "--stop", action="store_true", help="stop the daemon (exit 0) once flat"
            )
        if name == "resume":
            cmd.add_argument(
                "--by", default=None, help="who resumes (journalled; default: the OS user)"
            )
            cmd.add_argument(
                "--journal",
                default=None,
                help="the daemon's journal, written directly when no daemon answers "
                "(default: journal.path)",
            )

    data = sub.add_parser("data", help="download market data into the local catalog")
    data_sub = data.add_subparsers(dest="data_command")
    dl = data_sub.add_parser(
        "download", help="Coinbase public candles and trades into the catalog (no API key)"
    )
    dl.add_argument("--products", nargs="+", required=True, help="e.g. BTC-USD ETH-USD")
    dl.add_argument(
        "--granularity",
        nargs="*",
        default=None,
        metavar="NAME",
        help="candle granularities, Coinbase's names: ONE_MINUTE FIVE_MINUTE FIFTEEN_MINUTE "
        "THIRTY_MINUTE ONE_HOUR TWO_HOUR SIX_HOUR ONE_DAY (default ONE_MINUTE unless --trades)",
    )
    dl.add_argument("--trades", action="store_true", help="also download market trades")
    dl.add_argument("--from", dest="start", type=_date, required=True, help="first UTC day")
    dl.add_argument("--to", dest="end", type=_date, required=True, help="last UTC day, inclusive")
    dl.add_argument("--catalog", default="data", metavar="DIR", help="catalog (default: data/)")
    dl.add_argument(
        "--rest-url", default=None, metavar="URL", help="API base (default: api.coinbase.com)"
    )
    dl.add_argument("--ca-file", default=None, metavar="PATH", help="CA bundle to trust")
    dl.add_argument(
        "--rate", type=float, default=8.0, help="requests per second at most (default 8)"
    )
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dls = data_sub.add_parser("list", help="list the catalog's sets")
    dls.add_argument("--catalog", default="data", metavar="DIR", help="catalog (default: data/)")

    cc = sub.add_parser("check-config", help="validate a config file")
    cc.add_argument("path", nargs="?", default=DEFAULT_CONFIG)

    ns = sub.add_parser(
        "new-strategy", help="write a strategy skeleton NAME.py and its test (README strategies)"
    )
    ns.add_argument("name", help="module name of the new strategy (a Python identifier)")
    ns.add_argument("--dir", default=".", help="where to write the files (default: here)")
    sw = sub.add_parser(
        "sweep", help='search parameters over replays, walk-forward (README "Parameter sweeps")'
    )
    sw.add_argument("space", help="sweep file (YAML; see examples/sweep.yaml)")
    sw.add_argument("--trials", type=int, default=None, help="trials per train window")
    sw.add_argument("--jobs", type=int, default=None, help="workers (default: all cores)")
    sw.add_argument("--seed", type=int, default=None, help="sampler and replay seed")
    sw.add_argument("--out", default="var/sweep", help="output folder (default: var/sweep)")
    sw.add_argument(
        "--ray",
        default=None,
        metavar="auto|ADDRESS",
        help="run the trials on a Ray cluster (auto: the running one, else a local one)",
    )
    sw.add_argument(
        "--fresh", action="store_true", help="discard the stored study in --out and start over"
    )

    tr = sub.add_parser(
        "trace", help="inspect a message trace (see 'cryptoj trace --help')", add_help=False
    )
    tr.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cryptoj`` and ``python -m cryptoj``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]
    if argv and argv[0] == "trace":
        from cryptoj.trace.cli import main as trace_main

        return int(trace_main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args.path)
        if args.command == "new-strategy":
            return _new_strategy(args.name, args.dir)
        if args.command == "replay":
            return _replay(args)
        if args.command == "data":
            from cryptoj.marketdata.data_cli import run_data_command

            return run_data_command(args)
        if args.command == "run":
            from cryptoj.daemon import run_daemon

            cfg = _load(args.config, default_if_missing=True)
            problems = path_problems(cfg)
            if problems:
                raise ConfigError(args.config or DEFAULT_CONFIG, problems)
            return int(
                run_daemon(cfg, log_json=args.log_json, ops_port=args.ops_port, live=args.live)
            )
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "status":
            return _status(args)
        if args.command == "report":
            return _report(args)
        if args.command in ("shutdown", "flatten", "hold", "resume"):
            return _control(args)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, LiveTradingUnavailable) as e:
        print(f"cryptoj: {e}", file=sys.stderr)
        return EXIT_USAGE
    build_parser().print_help()
    return EXIT_USAGE


def _load(path: str | None, *, default_if_missing: bool = False) -> Config:
    if path is None and default_if_missing and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return _with_strategies(load_config(path), path or "<defaults>")


def _with_strategies(cfg: Config, source: str) -> Config:
    """``cfg`` when every configured strategy loads with valid parameters, else ConfigError."""
    from cryptoj.strategies.loader import strategy_problems

    problems = strategy_problems(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def _new_strategy(name: str, directory: str) -> int:
    from cryptoj.strategies.skeleton import SkeletonError, write_skeleton

    try:
        written = write_skeleton(name, Path(directory))
    except SkeletonError as e:
        print(f"new-strategy: {e}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"wrote {path}")
    print(
        f'next: python -m pytest {written[1]} -q; then set strategy.kind: "{name}:'
        f'{_class_name(name)}" in your config and run python -m cryptoj replay'
    )
    return EXIT_OK


def _class_name(module: str) -> str:
    from cryptoj.strategies.skeleton import class_name

    return class_name(module)


def _check_config(path: str) -> int:
    try:
        cfg = _with_strategies(load_config(path), path)
    except ConfigError as e:
        problems = e.problems
    else:
        problems = path_problems(cfg)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: OK (mode {cfg.mode}, {len(cfg.feed.products) or 'all'} products)")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
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

        print_catalog_sets(args.catalog or _load(args.config).feed.catalog)
        return EXIT_OK
    cfg = _load(args.config)
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


def _sweep(args: argparse.Namespace) -> int:
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


def _status(args: argparse.Namespace) -> int:
    from cryptoj.ops.status_cli import run_status

    cfg = _load(args.config, default_if_missing=True)
    code, text = run_status(
        cfg.ops, url=args.url, port=args.port, as_json=args.json, timeout=args.timeout
    )
    print(text, file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


def _control(args: argparse.Namespace) -> int:
    """POST the emergency command to the running daemon's control endpoint (loopback)."""
    import urllib.error
    import urllib.request

    from cryptoj.config.ops import resolve_token
    from cryptoj.ops.status_cli import base_url

    cfg = _load(args.config, default_if_missing=True)
    try:
        token = resolve_token(cfg.ops)
    except (OSError, ValueError) as e:
        print(f"{args.command}: ops token: {e}", file=sys.stderr)
        return EXIT_USAGE
    url = f"{args.url or base_url(cfg.ops, args.port)}/control/{args.command}"
    body: dict[str, Any] = {"reason": args.reason, "stop": bool(getattr(args, "stop", False))}
    if args.command == "resume":
        body["by"] = args.by or _os_user()
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:
            answer = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip()
        print(f"{args.command}: refused by the daemon: HTTP {e.code} {detail}", file=sys.stderr)
        return EXIT_USAGE if e.code < 500 else EXIT_ERROR
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        print(f"{args.command}: no cryptoj daemon answering at {url} ({reason})", file=sys.stderr)
        if args.command == "resume":
            return _resume_offline(args.journal or cfg.journal.path, body["by"], args.reason)
        return EXIT_ERROR
    print(f"{args.command}: accepted ({json.dumps(answer, sort_keys=True)})")
    return EXIT_OK


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _resume_offline(path: str, by: str, reason: str) -> int:
    """Record an operator resume in the journal of a daemon that is not running: the restarted
    daemon's RiskActor then starts without the drawdown halt, its high-water mark from its
    first equity."""
    import time

    from cryptoj.actors.risk import drawdown_state, record_resume
    from cryptoj.journal import Journal

    if not Path(path).is_file():
        print(f"resume: nothing recorded: journal {path} not found", file=sys.stderr)
        return EXIT_ERROR
    journal = Journal(path)
    try:
        _, halted = drawdown_state(journal)
        record_resume(journal, time.time_ns(), by, reason, None, "cli")
    finally:
        journal.close()
    what = "drawdown halt lifted" if halted else "no drawdown halt was in force"
    print(f"resume: recorded in {path} by {by} ({what}); the daemon starts from it")
    return EXIT_OK


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


def _report(args: argparse.Namespace) -> int:
    from cryptoj.progress import wanted
    from cryptoj.report import ReportError, write_report
    from cryptoj.report.data import journal_meta

    cfg = _load(args.config, default_if_missing=True)
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
