"""Assemble the actor system: venue, market-data source, journal and the supervision registry.

``mode`` (paper | live) is read here and nowhere else. Live trading is opt-in twice: ``mode:
live`` with ``live_trading_confirmed: true`` in the config **and** ``--live`` on the command line
(``live=True`` here); anything else refuses with :class:`LiveTradingUnavailable` saying why. For
live trading the keys are loaded and validated and the account is read once (which proves the
key works) before any actor exists; a fresh journal starts with the account's quote-currency
balance as its starting cash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from cryptoj.actors.feed import ReplaySource
from cryptoj.actors.shutdown import ShutdownActor
from cryptoj.config import Config
from cryptoj.journal import Journal
from cryptoj.runtime.common import Registered, flatten_tree
from cryptoj.strategies.history import MarketHistory
from cryptoj.supervision.tree import Dependencies, build_tree
from cryptoj.venues.paper import PaperExchange

if TYPE_CHECKING:
    from cryptoj.adapters.coinbase.execution import CoinbaseVenue
    from cryptoj.marketdata.loader import Batch

#: The actors whose journal writes the threaded runtime commits once per mailbox batch
#: (``ThreadedRuntime(group_commit=...)``, ``journal.group_commit``): the PortfolioActor acts
#: on the world only through messages, which wait for the commit. Not the ExecutionActor: it
#: calls the venue from its handler, right after journalling the order.
GROUP_COMMIT = ("portfolio",)


class LiveTradingUnavailable(Exception):
    """Live trading was refused (the message says why): no opt-in, bad keys, no account."""


@dataclass
class System:
    """Everything a runtime needs to start the daemon."""

    cfg: Config
    venue: PaperExchange | CoinbaseVenue
    source: ReplaySource
    journal_path: str
    registry: dict[str, Registered]
    resumed_after_ns: int | None = None  # resume: the journal's last market time
    skipped_batches: int = 0  # resume: batches at or before it, not replayed again

    @property
    def start_ns(self) -> int:
        """Time of the first market event (after a resume with nothing left: the journal's
        last market time)."""
        if not self.source.batches and self.resumed_after_ns is not None:
            return self.resumed_after_ns
        return self.source.first_ts

    @property
    def paper(self) -> PaperExchange:
        """The paper venue (replays are always paper)."""
        assert isinstance(self.venue, PaperExchange), "not a paper system"
        return self.venue


def open_live_venue(
    cfg: Config, live: bool, environ: Mapping[str, str] | None = None
) -> tuple[CoinbaseVenue, dict[str, Decimal]]:
    """The Coinbase venue and the account's balances, or :class:`LiveTradingUnavailable`."""
    if not live:
        raise LiveTradingUnavailable(
            "the config says mode: live, but --live was not given: live trading needs both "
            "(python -m cryptoj run --live); refusing to trade live"
        )
    if not cfg.live_trading_confirmed:
        raise LiveTradingUnavailable(
            "mode: live also needs live_trading_confirmed: true in the config; refusing to trade"
        )
    if cfg.feed.source != "coinbase":
        raise LiveTradingUnavailable(
            f"mode: live trades on live prices: set feed.source: coinbase (got {cfg.feed.source})"
        )
    from cryptoj.adapters.coinbase.execution import (
        AuthenticationFailed,
        CoinbaseError,
        CredentialsError,
        build_venue,
        load_trading_credentials,
    )

    try:
        credentials, _ = load_trading_credentials(cfg.coinbase, environ)
    except CredentialsError as e:
        raise LiveTradingUnavailable(f"coinbase credentials: {e}") from None
    venue = build_venue(cfg.coinbase, credentials, seed=cfg.seed)
    try:
        balances = venue.balances()
    except AuthenticationFailed as e:
        raise LiveTradingUnavailable(
            f"Coinbase refused the API key {credentials.key_name!r}: {e}"
        ) from None
    except CoinbaseError as e:
        raise LiveTradingUnavailable(
            f"cannot read the account at {cfg.coinbase.rest_url}: {e}"
        ) from None
    return venue, balances


def assemble(
    cfg: Config,
    batches: list[Batch],
    journal_path: str,
    *,
    fresh_journal: bool,
    stop_on_feed_end: bool = True,
    run_tag: str = "s",
    data_name: str = "",
    live: bool = False,
    environ: Mapping[str, str] | None = None,
    resume: bool = False,
    history: MarketHistory | None = None,
) -> System:
    """Build the venue, the source and the registry; prepare the journal.

    With an existing journal (a restart) the paper account is restored from its fills, so the
    simulated venue holds what it held before the process stopped. ``run_tag`` makes this run's
    venue ids distinct from earlier runs' ids in the same journal. ``data_name`` (the market
    data set or file) is journalled in ``meta`` with the products, so ``cryptoj report JOURNAL``
    finds the prices without ``--data``. ``live`` is the command line's ``--live`` (see the
    module docstring); ``environ`` replaces ``os.environ`` for the credentials (tests).
    ``resume`` (the paper daemon) skips the batches at or before the journal's last market
    time, so a restart continues the market clock instead of trading the same bars again.
    ``history``: market events the strategies warm up on (a replay's preceding data).
    """
    venue: PaperExchange | CoinbaseVenue
    balances: dict[str, Decimal] = {}
    if cfg.mode == "live":
        venue, balances = open_live_venue(cfg, live, environ)
    elif live:
        raise LiveTradingUnavailable(
            "--live was given but the config says mode: paper; set mode: live and "
            "live_trading_confirmed: true to trade live"
        )
    else:
        venue = PaperExchange.from_config(cfg.paper, id_prefix=f"paper-{run_tag}")
    path = Path(journal_path)
    if fresh_journal:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    journal = Journal(path)
    if journal.get_meta("starting_cash") is None:
        if isinstance(venue, PaperExchange):
            start = Decimal(repr(cfg.paper.starting_cash))
        else:
            start = balances.get(venue.quote_currency, Decimal(0))
            others = {c: b for c, b in balances.items() if c != venue.quote_currency and b}
            if others:
                held = ", ".join(f"{b} {c}" for c, b in sorted(others.items()))
                journal.record_event(
                    venue.clock(), "runtime", "live_start", f"not managed by cryptoj: {held}"
                )
        journal.set_meta("starting_cash", str(start))
    if data_name:
        journal.set_meta("data", data_name)
        journal.set_meta("products", ",".join(cfg.feed.products))
    if isinstance(venue, PaperExchange):
        venue.restore(journal.fills())
    resumed_after = journal.last_market_ts() if resume and not fresh_journal else None
    journal.close()
    skipped = 0
    if resumed_after is not None:
        kept = [b for b in batches if b[-1].ts > resumed_after]
        skipped, batches = len(batches) - len(kept), kept
    source = ReplaySource(
        batches,
        bar_spread_bps=cfg.feed.bar_spread_bps,
        bar_depth_fraction=cfg.feed.bar_depth_fraction,
        window_ns=cfg.feed.window_ms * 1_000_000,
    )
    deps = Dependencies(venue=venue, source=source, journal_path=str(path), history=history)
    registry = flatten_tree(build_tree(cfg, deps), parent="shutdown")
    registry["shutdown"] = Registered(
        "shutdown",
        "main",
        lambda: ShutdownActor(venue, str(path), stop_on_feed_end=stop_on_feed_end, cfg=cfg),
    )
    return System(cfg, venue, source, str(path), registry, resumed_after, skipped)
