"""Assemble the actor system: venue, market-data source, journal and the supervision registry.

``mode`` (paper | live) is read here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from cryptoj.actors.feed import ReplaySource
from cryptoj.actors.shutdown import ShutdownActor
from cryptoj.config import Config
from cryptoj.journal import Journal
from cryptoj.marketdata.loader import Batch
from cryptoj.runtime.common import Registered, flatten_tree
from cryptoj.supervision.tree import Dependencies, build_tree
from cryptoj.venues.paper import PaperExchange


class LiveTradingUnavailable(Exception):
    """``mode: live`` was asked for, but this build has no live venue client yet."""


@dataclass
class System:
    """Everything a runtime needs to start the daemon."""

    cfg: Config
    venue: PaperExchange
    source: ReplaySource
    journal_path: str
    registry: dict[str, Registered]

    @property
    def start_ns(self) -> int:
        """Time of the first market event."""
        return self.source.first_ts


def assemble(
    cfg: Config,
    batches: list[Batch],
    journal_path: str,
    *,
    fresh_journal: bool,
    stop_on_feed_end: bool = True,
    run_tag: str = "s",
    data_name: str = "",
) -> System:
    """Build the venue, the source and the registry; prepare the journal.

    With an existing journal (a restart) the paper account is restored from its fills, so the
    simulated venue holds what it held before the process stopped. ``run_tag`` makes this run's
    venue ids distinct from earlier runs' ids in the same journal. ``data_name`` (the market
    data set or file) is journalled in ``meta`` with the products, so ``cryptoj report JOURNAL``
    finds the prices without ``--data``.
    """
    if cfg.mode != "paper":
        raise LiveTradingUnavailable(
            "mode: live is not available yet (the Coinbase execution client is a later "
            "milestone); use mode: paper"
        )
    path = Path(journal_path)
    if fresh_journal:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    journal = Journal(path)
    if journal.get_meta("starting_cash") is None:
        journal.set_meta("starting_cash", str(Decimal(repr(cfg.paper.starting_cash))))
    if data_name:
        journal.set_meta("data", data_name)
        journal.set_meta("products", ",".join(cfg.feed.products))
    venue = PaperExchange.from_config(cfg.paper, id_prefix=f"paper-{run_tag}")
    venue.restore(journal.fills())
    journal.close()
    source = ReplaySource(
        batches,
        bar_spread_bps=cfg.feed.bar_spread_bps,
        bar_depth_fraction=cfg.feed.bar_depth_fraction,
        window_ns=cfg.feed.window_ms * 1_000_000,
    )
    deps = Dependencies(venue=venue, source=source, journal_path=str(path))
    registry = flatten_tree(build_tree(cfg, deps), parent="shutdown")
    registry["shutdown"] = Registered(
        "shutdown",
        "main",
        lambda: ShutdownActor(venue, str(path), stop_on_feed_end=stop_on_feed_end, cfg=cfg),
    )
    return System(cfg, venue, source, str(path), registry)
