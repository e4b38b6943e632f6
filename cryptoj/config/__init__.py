"""Configuration: frozen msgspec Structs, loaded from YAML and validated field by field.

``load_config`` collects *every* problem (wrong type, out-of-range value, unknown key) and raises
:class:`ConfigError` whose ``problems`` are lines like
``risk.daily_loss_limit: expected a number in (0, 1], got 'two'``. Secrets are never stored in the
config: only the names of environment variables or the path of a key file.
"""

from __future__ import annotations

import functools
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from cryptoj.config.coinbase import CoinbaseFeedConfig
from cryptoj.config.ops import FlagName, FlagValue, OpsConfig, flag_problems
from cryptoj.paths import writable_file_problem

Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
NonNegFraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
OpenFraction = Annotated[float, msgspec.Meta(gt=0, lt=1)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Product = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{2,10}-[A-Z]{3,5}$")]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section."""


class RiskConfig(_Section, frozen=True, kw_only=True):
    """Risk limits, all fractions (0.02 = 2 %)."""

    daily_loss_limit: Fraction = 0.02  # of the UTC day's reference equity; breach → HALTED
    max_drawdown: OpenFraction = 0.10  # from the equity high-water mark → HALTED until resume
    position_size_limit: Fraction = 0.10  # largest weight of equity one asset may hold
    stop_loss: Fraction = 0.05  # per position, from its average entry price
    correlation_weight: NonNegFraction = 0.30  # share of the dynamic cut driven by correlation
    volatility_weight: NonNegFraction = 0.40  # share of the dynamic cut driven by volatility
    min_position_size: NonNegFraction = 0.02  # a position smaller than this is not opened
    volatility_halflife_bars: PositiveInt = 60  # EWMA half-life of the volatility estimate
    caution_drawdown: Fraction = 0.01  # intraday drawdown that moves NORMAL → CAUTION
    correlation_grid_s: NonNegFloat = 0.0  # correlation's sampling grid, s; 0: the bars' interval
    #: traded notional per UTC day, a multiple of equity; beyond it only reducing orders go out
    max_daily_turnover: Annotated[float, msgspec.Meta(gt=0, le=100)] = 0.5
    #: the volatility the caps use: EWMA, or the HAR-RV forecast (EWMA until it has history)
    volatility_model: Literal["ewma", "har"] = "ewma"
    har_period_s: PositiveFloat = 86_400.0  # har: the realised-variance period, seconds


class PortfolioConfig(_Section, frozen=True, kw_only=True):
    """Target weights and transactional rebalancing (docs/portfolio.md)."""

    weighting: Literal["risk_parity", "inverse_vol", "signal"] = "risk_parity"
    cash_buffer: NonNegFraction = 0.05  # of equity, never allocated
    volatile_scale: NonNegFraction = 1.0  # signal scale of a product in the VOLATILE regime
    drift_threshold: NonNegFraction = 0.005  # of equity: smaller deviations are not traded
    cost_band_multiple: NonNegFloat = 1.0  # band ≥ this × round-trip cost rate (0: drift only)
    volatile_drift_multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0  # band × this, VOLATILE
    max_depth_multiple: NonNegFloat = 5.0  # a leg asks at most this × the visible size (0: no cap)
    limit_bps: NonNegFloat = 0.0  # > 0: legs beyond execution.max_depth_share go as LIMIT, bps
    leg_timeout_s: PositiveFloat = 900.0  # open longer → cancelled (> execution.max_duration_s)
    quote_max_age_s: PositiveFloat = 30.0  # older than the newest quote or the clock: not traded
    rollback: Literal["keep", "compensate"] = "keep"  # what a failed transaction does with buys


StrategyName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class StrategyConfig(_Section, frozen=True, kw_only=True):
    """One strategy (docs/strategies.md).

    ``kind``: a bundled strategy (``ema_trend``, ``mean_reversion``, ``vol_target``),
    ``manual`` (no strategy: the operator sets each product's target weight through
    ``POST /control/target``), ``"package.module:ClassName"`` (importable from the working
    directory or an installed package) or the name of a ``cryptoj.strategies`` entry point.
    ``params`` are validated by the strategy's own schema; the EMA trend also reads the
    fields below (``params`` override them).
    """

    kind: Annotated[str, msgspec.Meta(min_length=1)] = "ema_trend"
    name: StrategyName | None = None  # in traces and orders' reasons; null: from the kind
    weight: Fraction = 1.0  # capital share: its targets are fractions of this share
    products: tuple[Product, ...] = ()  # products it receives events of (empty: every one)
    params: dict[str, Any] = msgspec.field(default_factory=dict)  # the strategy's parameters
    fast_period: PositiveInt = 12  # bars
    slow_period: PositiveInt = 48  # bars
    target_weight: Fraction = 0.10  # of equity, further capped by risk.position_size_limit
    band: NonNegFraction = 0.0005  # EMAs must differ by this fraction to flip the signal
    #: to enter, the EMAs must differ by at least this fraction (null: the round trip's cost,
    #: 2 × paper.taker_fee + feed.bar_spread_bps)
    entry_band: NonNegFraction | None = None
    min_hold_s: NonNegFloat = 0.0  # market seconds a new signal is kept before it may flip back


class PaperConfig(_Section, frozen=True, kw_only=True):
    """The paper venue's account and cost model."""

    starting_cash: PositiveFloat = 100_000.0  # in quote_currency
    quote_currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,5}$")] = "USD"  # account cash
    taker_fee: NonNegFraction = 0.006  # Coinbase Advanced tier-1 taker fee
    maker_fee: NonNegFraction = 0.004  # Coinbase Advanced tier-1 maker fee
    depth_levels: PositiveInt = 5  # price levels a market order may walk (top of book + 4 more)
    level_spacing_bps: NonNegFloat = 5.0  # minimum distance between those levels, basis points
    deplete_book: bool = True  # our fills use up the book until the next quote (conservative)


class FeedConfig(_Section, frozen=True, kw_only=True):
    """Where market data comes from."""

    source: Literal["replay", "coinbase"] = "replay"  # coinbase: the live websocket feed
    data: str = "coinbase-1m-2018-04"  # bundled set name or path to a CSV in the documented format
    speed: NonNegFloat = 60.0  # replay pace for the daemon: 1 = real time, 0 = as fast as possible
    products: tuple[Product, ...] = ()  # empty = every product in the data
    bar_spread_bps: NonNegFloat = 10.0  # bar-only data: modelled spread around the close, bps
    bar_depth_fraction: Fraction = 0.05  # bar-only data: modelled top-of-book size, of bar volume
    tick_bar_size: PositiveInt = 100  # trade-tick data: trades per bar handed to the strategy
    window_ms: NonNegInt = 0  # replay: emit events in windows of this length (0 = per timestamp)
    catalog: str = "data"  # local market-data catalog (data download, catalog:/recorded: data)
    record: bool = False  # write the received feed into the catalog (recorded/<day>/)
    record_l2_interval_s: PositiveFloat = 1.0  # recording: one book snapshot per product per this
    record_l2_depth: PositiveInt = 10  # recording: levels per side in each book snapshot
    record_queue: PositiveInt = 100_000  # recording: queue bound (events beyond are dropped)
    warmup_timeout_s: NonNegFloat = 10.0  # live: time to load the strategies' history (0 = cold)
    warmup_max_bars: NonNegInt = 300  # live: bars per product for a strategy warming on all history
    #: daemon: a mailbox keeps only the newest waiting quote per product and merges waiting
    #: trades of a product into the newest (volume kept): bounded under bursts and many
    #: products; false hands every quote and trade over, so a recorded day replays the same
    conflate_mailboxes: bool = True
    coinbase: CoinbaseFeedConfig = CoinbaseFeedConfig()  # source: coinbase (docs/coinbase-feed.md)


class JournalConfig(_Section, frozen=True, kw_only=True):
    """The SQLite (WAL) journal of orders, fills and position changes."""

    path: str = "var/journal.sqlite"
    #: threaded runtime (the daemon): the PortfolioActor commits its journal writes once per
    #: mailbox batch, its messages held until the commit (journal first holds); false commits
    #: every write on its own
    group_commit: bool = True


class TraceConfig(_Section, frozen=True, kw_only=True):
    """The message trace (JSON lines, rotated by size)."""

    enabled: bool = True
    path: str = "var/trace.jsonl"
    max_bytes: PositiveInt = 50_000_000  # rotate when the current file exceeds this
    max_files: PositiveInt = 5  # rotated files kept besides the current one


class SupervisionConfig(_Section, frozen=True, kw_only=True):
    """Restart intensity of the supervisors (OTP semantics) and the feed's backoff."""

    max_restarts: PositiveInt = 3  # per supervisor, within period_s
    period_s: PositiveFloat = 60.0
    feed_max_restarts: PositiveInt = 10
    feed_period_s: PositiveFloat = 300.0
    backoff_min_s: PositiveFloat = 1.0
    backoff_max_s: PositiveFloat = 60.0
    backoff_jitter: NonNegFraction = 0.2
    stop_timeout_s: PositiveFloat = 5.0


HttpsUrl = Annotated[str, msgspec.Meta(pattern=r"^https://[^/\s]+/?$")]
WssUrl = Annotated[str, msgspec.Meta(pattern=r"^wss://[^/\s]+(/\S*)?$")]


class CoinbaseConfig(_Section, frozen=True, kw_only=True):
    """Coinbase credentials (by reference only: never put a secret in this file) and the
    execution client used with ``mode: live`` (docs/live-trading.md)."""

    api_key_env: str = "COINBASE_API_KEY"  # name of the env var holding the key name
    api_secret_env: str = "COINBASE_API_SECRET"  # name of the env var holding the private key
    key_file: str | None = None  # path to a JSON key file readable only by its owner
    # -- execution (mode: live) ------------------------------------------------------------
    rest_url: HttpsUrl = "https://api.coinbase.com"  # REST API host (private endpoints)
    user_ws_url: WssUrl = "wss://advanced-trade-ws-user.coinbase.com"  # the user channel
    ca_file: str | None = None  # extra CA (PEM) to trust, e.g. the local fake's certificate
    quote_currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3,5}$")] = "USD"  # account cash
    timeout_s: PositiveFloat = 10.0  # every REST call (and the websocket connect)
    max_attempts: PositiveInt = 4  # tries per call on 429 / 5xx / transport errors
    backoff_min_s: PositiveFloat = 0.5  # first retry delay, doubling up to backoff_max_s
    backoff_max_s: PositiveFloat = 8.0
    rate_limit_per_s: PositiveFloat = 25.0  # client-side limit (Coinbase: 30/s private)
    rate_limit_burst: PositiveInt = 10
    place_attempts: PositiveInt = 3  # creates under one client_order_id before "unknown"
    outcome_retry_s: PositiveFloat = 5.0  # look an unknown outcome up again after this
    absent_grace_s: NonNegFloat = 60.0  # absent this long after intent and last send: lost
    lookup_window_s: PositiveFloat = 600.0  # orders listed from this long before the intent
    reconcile_interval_s: PositiveFloat = 60.0  # full REST reconciliation period
    user_stale_s: PositiveFloat = 10.0  # user channel silent this long → reconnect


class LoggingConfig(_Section, frozen=True, kw_only=True):
    """Logging (loguru)."""

    level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json: bool = False  # JSON lines instead of human-readable lines
    file: str | None = None  # also log to this file (rotated at 10 MB, 5 kept)
    heartbeat_s: NonNegFloat = 60.0  # daemon: one state line every this many seconds (0 = off)


ResponseName = Literal["normal", "no_entries", "cancel_orders", "reduce", "flatten", "stop"]


class TriggerLevels(_Section, frozen=True, kw_only=True):
    """The response level each trigger raises the emergency programme to (docs/operations.md)."""

    risk_caution: ResponseName = "normal"  # risk level CAUTION
    risk_reducing: ResponseName = "reduce"  # risk level REDUCING (loss, drawdown, stop-loss hits)
    systemic: ResponseName = "reduce"  # REDUCING for systemic risk: most correlated first
    risk_halted: ResponseName = "flatten"  # risk level HALTED (daily loss limit)
    feed_stale: ResponseName = "no_entries"  # FeedStatus stale
    feed_failed: ResponseName = "cancel_orders"  # FeedStatus degraded / failed / down
    drawdown: ResponseName = "flatten"  # monitor.max_drawdown breached
    error_rate: ResponseName = "no_entries"  # monitor.max_error_rate breached (held: a fault)
    latency: ResponseName = "no_entries"  # monitor.max_latency_s exceeded
    escalation: Literal["stop", "flatten"] = "stop"  # root supervisor failed: always exit 3


class MonitorConfig(_Section, frozen=True, kw_only=True):
    """Monitoring thresholds of the emergency programme (0 switches a monitor off)."""

    max_drawdown: NonNegFraction = 0.08  # equity fall from its peak since the last recovery
    max_error_rate: NonNegFraction = 0.5  # rejected ÷ closed orders over error_window orders
    error_window: PositiveInt = 20  # orders the error rate is computed over
    max_latency_s: NonNegFloat = 0.0  # slowest order round trip (decision → close), seconds


class UnwindConfig(_Section, frozen=True, kw_only=True):
    """How positions are unwound: priority queue, slices against depth, deadline."""

    mode: Literal["gradual", "immediate"] = "gradual"  # immediate: all at market at once
    priority: Literal["risk", "correlation", "size"] = "risk"  # risk = size × vol × correlation
    reduce_target_exposure: NonNegFraction = 0.05  # REDUCE: gross exposure ÷ equity to reach
    max_duration_s: PositiveFloat = 900.0  # market time: then the remainder goes at market
    adverse_move_bps: PositiveFloat = 50.0  # each such adverse move adds the base pace once more
    volatile_multiplier: Annotated[float, msgspec.Meta(ge=1)] = 2.0  # pace × this, VOLATILE
    coarse_depth_multiple: PositiveFloat = 3.0  # books further apart than max_duration_s: × top
    stop_loss_deadline_s: PositiveFloat = 900.0  # the same for a stop-loss exit
    depth_fraction: Fraction = 0.5  # a slice takes at most this share of the visible top size
    max_participation: Fraction = 0.1  # ... and of the recent traded volume (one bar)
    max_concurrent: PositiveInt = 1  # products unwound at the same time, highest priority first
    emergency_deadline_s: PositiveFloat = 60.0  # own-venue flatten after an escalation
    emergency_step_s: PositiveFloat = 5.0  # its polling interval, seconds


class RecoveryConfig(_Section, frozen=True, kw_only=True):
    """Automatic return to NORMAL after an unwind caused by market conditions."""

    automatic: bool = True  # false: every programme waits for the operator's resume
    cooldown_s: NonNegFloat = 3_600.0  # the recovery conditions must hold this long
    max_volatility: NonNegFloat = 0.0  # per-bar σ every product must be under (0 = regimes only)
    reentry_steps: tuple[Fraction, ...] = (0.25, 0.5)  # entry size multipliers before full size
    reentry_step_s: PositiveFloat = 3_600.0  # time at each step, seconds
    after_emergency: Literal["hold", "resume"] = "hold"  # a restart after exit 3 starts held


class ShutdownConfig(_Section, frozen=True, kw_only=True):
    """The emergency programme of the ShutdownActor (levels, triggers, unwinding, recovery)."""

    triggers: TriggerLevels = TriggerLevels()
    monitor: MonitorConfig = MonitorConfig()
    unwind: UnwindConfig = UnwindConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    stop_open_orders: Literal["cancel", "keep"] = "cancel"  # on an orderly stop
    stop_wait_s: PositiveFloat = 10.0  # an orderly stop waits this long for orders in flight


class ExecutionConfig(_Section, frozen=True, kw_only=True):
    """Order splitting in the ExecutionActor: TWAP with a depth limit
    (docs/portfolio.md#order-splitting)."""

    split_enabled: bool = True  # false: every order goes to the venue whole
    max_depth_share: Fraction = 0.25  # a child takes at most this share of the visible top size
    child_interval_s: PositiveFloat = 30.0  # one child per interval, seconds
    max_duration_s: PositiveFloat = 600.0  # deadline from the parent's start; then it expires
    min_child_notional: NonNegFloat = 10.0  # smallest child, quote currency
    max_consecutive_rejections: PositiveInt = 3  # children rejected in a row stop the parent


class Config(_Section, frozen=True, kw_only=True):
    """The whole daemon configuration (see config.yaml for every field, unit and default)."""

    mode: Literal["paper", "live"] = "paper"
    live_trading_confirmed: bool = False  # must also be true for mode: live
    seed: int = 7  # seeds ids and scheduling of the deterministic runtime
    risk: RiskConfig = RiskConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    strategy: StrategyConfig = StrategyConfig()
    #: several strategies at once, each with its capital share; when given, replaces strategy
    strategies: tuple[StrategyConfig, ...] = ()
    paper: PaperConfig = PaperConfig()
    feed: FeedConfig = FeedConfig()
    journal: JournalConfig = JournalConfig()
    trace: TraceConfig = TraceConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    execution: ExecutionConfig = ExecutionConfig()
    coinbase: CoinbaseConfig = CoinbaseConfig()
    logging: LoggingConfig = LoggingConfig()
    ops: OpsConfig = OpsConfig()
    flags: dict[FlagName, FlagValue] = msgspec.field(default_factory=dict)


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` has one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate ``path`` (defaults apply when ``path`` is None)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read file: {e.strerror}"]) from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(str(p), [yaml_problem(e)]) from e
    return parse_config(raw if raw is not None else {}, str(p))


def yaml_problem(e: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: where (line, column) and what."""
    mark = getattr(e, "problem_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(e, "context", None)
    return f"not valid YAML{where}: {what}" + (f" ({context})" if context else "")


def path_problems(cfg: Config) -> list[str]:
    """The files the daemon writes that it could not write (``check-config`` and ``run``)."""
    checks = [("journal.path", cfg.journal.path)]
    if cfg.trace.enabled:
        checks.append(("trace.path", cfg.trace.path))
    if cfg.logging.file:
        checks.append(("logging.file", cfg.logging.file))
    return [p for what, path in checks if (p := writable_file_problem(path, what)) is not None]


def parse_config(raw: Any, source: str = "<config>") -> Config:
    """Validate a decoded mapping; raise ConfigError listing every problem."""
    problems = validate(raw, Config, "")
    if not problems:
        problems = _cross_checks(msgspec.convert(raw, Config))
    if problems:
        raise ConfigError(source, problems)
    return msgspec.convert(raw, Config)


def configured_strategies(cfg: Config) -> list[tuple[str, StrategyConfig]]:
    """(config path, section) of every strategy to run: ``strategies``, else ``strategy``."""
    if cfg.strategies:
        return [(f"strategies[{i}]", s) for i, s in enumerate(cfg.strategies)]
    return [("strategy", cfg.strategy)]


def strategy_name(s: StrategyConfig) -> str:
    """The strategy's name: ``name``, else the class of a ``module:Class`` kind, else kind."""
    if s.name:
        return s.name
    return s.kind.rsplit(":", 1)[-1] if ":" in s.kind else s.kind


def _strategy_checks(cfg: Config) -> list[str]:
    out = []
    listed = configured_strategies(cfg)
    names: set[str] = set()
    for where, s in listed:
        if s.kind == "ema_trend" and s.fast_period >= s.slow_period:
            out.append(
                f"{where}.fast_period: expected less than {where}.slow_period "
                f"({s.slow_period}), got {s.fast_period}"
            )
        if s.kind == "manual" and len(listed) > 1:
            out.append(f"{where}.kind: 'manual' runs alone, not in a list of strategies")
        name = strategy_name(s)
        if name in names:
            out.append(f"{where}.name: {name!r} is already used by another strategy")
        names.add(name)
    total = sum(s.weight for _, s in listed)
    if total > 1 + 1e-9:
        out.append(f"strategies: the weights (capital shares) add up to {total:g}, expected <= 1")
    return out


def _cross_checks(cfg: Config) -> list[str]:
    out = _strategy_checks(cfg)
    if cfg.mode == "live" and not cfg.live_trading_confirmed:
        out.append("mode: 'live' also needs live_trading_confirmed: true (paper is the default)")
    if cfg.feed.source == "coinbase" and not cfg.feed.products:
        out.append("feed.products: expected the products to subscribe to with source: coinbase")
    if cfg.supervision.backoff_min_s > cfg.supervision.backoff_max_s:
        out.append("supervision.backoff_min_s: expected at most supervision.backoff_max_s")
    if cfg.coinbase.backoff_min_s > cfg.coinbase.backoff_max_s:
        out.append("coinbase.backoff_min_s: expected at most coinbase.backoff_max_s")
    if cfg.mode == "live" and cfg.feed.source != "coinbase":
        out.append(
            "feed.source: mode 'live' trades on live prices: expected 'coinbase', "
            f"got {cfg.feed.source!r}"
        )
    if cfg.portfolio.leg_timeout_s <= cfg.execution.max_duration_s:
        out.append(
            "portfolio.leg_timeout_s: expected more than execution.max_duration_s (a split "
            "leg would be cancelled before its last child)"
        )
    if cfg.execution.max_duration_s < cfg.execution.child_interval_s:
        out.append("execution.max_duration_s: expected at least execution.child_interval_s")
    latency = cfg.shutdown.monitor.max_latency_s
    if latency > 0 and cfg.execution.split_enabled and latency <= cfg.execution.max_duration_s:
        out.append(
            f"shutdown.monitor.max_latency_s: expected more than execution.max_duration_s "
            f"({cfg.execution.max_duration_s:g}) while splitting is on (a split order may take "
            f"that long to close), got {latency:g}"
        )
    return out


def validate(raw: Any, struct_type: type[msgspec.Struct], prefix: str) -> list[str]:
    """Check ``raw`` against ``struct_type`` and return every problem (empty when valid)."""
    info = _struct_info(struct_type)
    where = prefix or "config"
    if not isinstance(raw, dict):
        return [f"{where}: expected a mapping of fields, got {_show(raw)}"]
    problems: list[str] = []
    known = {f.encode_name: f for f in info.fields}
    for key in raw:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            problems.append(f"{path}: unknown field (known: {', '.join(sorted(known))})")
    for name, field in known.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            if field.required:
                problems.append(f"{path}: required field is missing")
            continue
        if struct_type is Config and name == "flags":
            problems.extend(flag_problems(raw[name]))
            continue
        if struct_type is Config and name == "strategies" and isinstance(raw[name], list):
            for i, item in enumerate(raw[name]):
                problems.extend(validate(item, StrategyConfig, f"{path}[{i}]"))
            continue
        ftype = field.type
        if isinstance(ftype, msgspec.inspect.StructType):
            problems.extend(validate(raw[name], ftype.cls, path))
            continue
        try:
            msgspec.convert(raw[name], _field_type(struct_type, name))
        except msgspec.ValidationError:
            problems.append(f"{path}: expected {describe(ftype)}, got {_show(raw[name])}")
    return problems


_STRUCT_INFOS: dict[type[msgspec.Struct], msgspec.inspect.StructType] = {}


def _struct_info(struct_type: type[msgspec.Struct]) -> msgspec.inspect.StructType:
    """The struct's fields, inspected once per type: inspecting ``Config`` also records every
    struct nested in it (inspecting each again cost most of the daemon's config load)."""
    info = _STRUCT_INFOS.get(struct_type)
    if info is None:
        found = msgspec.inspect.type_info(struct_type)
        assert isinstance(found, msgspec.inspect.StructType)
        _remember(found)
        info = found
    return info


def _remember(info: msgspec.inspect.StructType) -> None:
    if info.cls in _STRUCT_INFOS:
        return
    _STRUCT_INFOS[info.cls] = info
    for field in info.fields:
        if isinstance(field.type, msgspec.inspect.StructType):
            _remember(field.type)


@functools.cache
def _type_hints(struct_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The struct's resolved annotations, once per type (not once per field)."""
    return typing.get_type_hints(struct_type, include_extras=True)


def _field_type(struct_type: type[msgspec.Struct], name: str) -> Any:
    return _type_hints(struct_type)[name]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    return f"{value!r}"


def describe(t: msgspec.inspect.Type) -> str:
    """A human description of an inspected msgspec type, with its constraints."""
    i = msgspec.inspect
    if isinstance(t, (i.FloatType, i.IntType)):
        kind = "a number" if isinstance(t, i.FloatType) else "a whole number"
        lo = (
            "(" + str(_num(t.gt))
            if t.gt is not None
            else ("[" + str(_num(t.ge)) if t.ge is not None else None)
        )
        hi = (
            str(_num(t.lt)) + ")"
            if t.lt is not None
            else (str(_num(t.le)) + "]" if t.le is not None else None)
        )
        if lo and hi:
            return f"{kind} in {lo}, {hi}"
        if lo:
            return f"{kind} {'>' if lo[0] == '(' else '>='} {lo[1:]}"
        if hi:
            return f"{kind} {'<' if hi[-1] == ')' else '<='} {hi[:-1]}"
        return kind
    if isinstance(t, i.BoolType):
        return "true or false"
    if isinstance(t, i.StrType):
        return f"text matching {t.pattern}" if t.pattern else "text"
    if isinstance(t, i.LiteralType):
        return "one of " + ", ".join(repr(v) for v in t.values)
    if isinstance(t, i.UnionType):
        return " or ".join(describe(x) for x in t.types)
    if isinstance(t, i.NoneType):
        return "null"
    if isinstance(t, (i.VarTupleType, i.ListType)):
        return f"a list of {describe(t.item_type)}"
    if isinstance(t, i.EnumType):
        return "one of " + ", ".join(repr(m.value) for m in t.cls)
    return "a valid value"


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def redacted(cfg: Config) -> dict[str, Any]:
    """The config as plain data, safe to log (it holds no secrets by construction)."""
    data: dict[str, Any] = msgspec.to_builtins(cfg)
    return data


__all__ = [
    "Config",
    "ConfigError",
    "configured_strategies",
    "describe",
    "load_config",
    "parse_config",
    "path_problems",
    "strategy_name",
    "validate",
]
