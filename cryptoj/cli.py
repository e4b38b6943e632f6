"""The command line: run, replay, sweep, status, report, check-config, trace and emergency commands.

``run`` is the default. The emergency commands (shutdown, flatten, hold, resume) are sent to
the running daemon's control endpoint on loopback.

Exit codes: 0 success; 1 unexpected error (for the emergency commands: no daemon answered);
2 bad usage, configuration or data (or the daemon refused the command); 3 emergency shutdown
(a supervisor escalated past the root).

This module parses the arguments and dispatches; the commands themselves are in
:mod:`cryptoj.commands`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import NoReturn

from cryptoj.commands.config import DEFAULT_CONFIG, check_config, load, new_strategy
from cryptoj.commands.control import control, status
from cryptoj.commands.replay import replay, report, sweep
from cryptoj.config import ConfigError, path_problems
from cryptoj.marketdata.errors import DataError
from cryptoj.models.system import EXIT_USAGE
from cryptoj.runtime.assemble import LiveTradingUnavailable


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
            return check_config(args.path)
        if args.command == "new-strategy":
            return new_strategy(args.name, args.dir)
        if args.command == "replay":
            return replay(args)
        if args.command == "data":
            from cryptoj.marketdata.data_cli import run_data_command

            return run_data_command(args)
        if args.command == "run":
            from cryptoj.daemon import run_daemon

            cfg = load(args.config, default_if_missing=True)
            problems = path_problems(cfg)
            if problems:
                raise ConfigError(args.config or DEFAULT_CONFIG, problems)
            return int(
                run_daemon(cfg, log_json=args.log_json, ops_port=args.ops_port, live=args.live)
            )
        if args.command == "sweep":
            return sweep(args)
        if args.command == "status":
            return status(args)
        if args.command == "report":
            return report(args)
        if args.command in ("shutdown", "flatten", "hold", "resume"):
            return control(args)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (DataError, LiveTradingUnavailable) as e:
        print(f"cryptoj: {e}", file=sys.stderr)
        return EXIT_USAGE
    build_parser().print_help()
    return EXIT_USAGE
