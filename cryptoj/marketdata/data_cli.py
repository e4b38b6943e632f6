"""``cryptoj data download`` / ``cryptoj data list`` and the catalog part of ``replay
--list-data`` (command-line glue over :mod:`.download` and :mod:`.catalog`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptoj.marketdata.catalog import GRANULARITY_RESOLUTION, Catalog, list_sets
from cryptoj.marketdata.download import (
    PUBLIC_URL,
    DownloadError,
    Plan,
    PublicClient,
    UnknownProduct,
    download,
)
from cryptoj.marketdata.loader import DataError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def run_data_command(args: argparse.Namespace) -> int:
    """Run ``data download`` or ``data list``; returns the exit code."""
    if args.data_command == "list":
        print_catalog_sets(args.catalog)
        return EXIT_OK
    if args.data_command != "download":
        print("data: expected a subcommand: download or list", file=sys.stderr)
        return EXIT_USAGE
    granularities = args.granularity
    if granularities is None:
        granularities = [] if args.trades else ["ONE_MINUTE"]
    if bad := [g for g in granularities if g not in GRANULARITY_RESOLUTION]:
        print(
            f"data download: unknown granularity {', '.join(bad)}: choose from "
            + " ".join(GRANULARITY_RESOLUTION),
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not granularities and not args.trades:
        print("data download: nothing to fetch: give --granularity or --trades", file=sys.stderr)
        return EXIT_USAGE
    if args.start > args.end:
        print(f"data download: --from {args.start} is after --to {args.end}", file=sys.stderr)
        return EXIT_USAGE
    if args.ca_file and not Path(args.ca_file).is_file():
        print(f"data download: --ca-file {args.ca_file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    plan = Plan(
        products=tuple(args.products),
        granularities=tuple(dict.fromkeys(granularities)),
        trades=args.trades,
        start=args.start,
        end=args.end,
    )
    try:
        client = PublicClient(args.rest_url or PUBLIC_URL, ca_file=args.ca_file, rate=args.rate)
        stats = download(
            plan, Catalog(args.catalog), client, progress=sys.stderr.isatty() and not args.quiet
        )
    except UnknownProduct as e:
        print(f"data download: unknown product or bad request: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (DownloadError, DataError, ValueError, OSError) as e:
        print(f"data download: {e}", file=sys.stderr)
        return EXIT_ERROR
    if stats.days_fetched and not stats.rows:
        print(
            f"data download: no data: the exchange has nothing for {', '.join(plan.products)} "
            f"from {plan.start} to {plan.end} (the empty days are recorded as gaps)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(
        f"data download: {stats.days_fetched} day(s) fetched, {stats.days_skipped} already "
        f"stored; {stats.rows} rows, {stats.gaps} missing candle(s) recorded as gaps; "
        f"{stats.requests} requests ({stats.rate_limited} rate-limited, {stats.retries} "
        f"retries) into {args.catalog}"
    )
    return EXIT_OK


def print_catalog_sets(root: str) -> None:
    """One tab-separated line per catalog set (name, products, resolution, range, gaps)."""
    for s in list_sets(root):
        print(
            f"{s.name}\t{','.join(s.products)}\t{s.resolution}\t{s.first_day} .. {s.last_day}\t"
            f"{s.days} day(s), {s.rows} rows, gaps {s.gaps}"
        )
    from cryptoj.marketdata.recording import list_recorded

    for day, rows in list_recorded(root):
        print(f"recorded:{day}\t(live feed)\trecorded\t{day}\t{rows} rows")
