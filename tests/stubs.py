"""Hand-written test doubles: a recording actor context and message builders."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from cryptoj.adapters.coinbase.fake import FakeCoinbase
from cryptoj.adapters.coinbase.fake.auth import ApiKey, generate_api_key
from cryptoj.models.base import Message
from cryptoj.models.market import Bar, Quote
from cryptoj.models.risk import RiskLevel, RiskParameters


@dataclass
class FakeCtx:
    """A synchronous Context that records what the actor sends and schedules."""

    name: str = "actor"
    time_ns: int = 1_522_800_060_000_000_000
    sent: list[tuple[str, Message]] = field(default_factory=list)
    scheduled: list[tuple[int, Message]] = field(default_factory=list)
    stopped: list[tuple[int, str]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    _n: int = 0

    def now(self) -> int:
        return self.time_ns

    def send(self, to: str, msg: Message, *, correlation_id: str | None = None) -> None:
        self.sent.append((to, msg))

    def schedule(self, delay_ns: int, msg: Message) -> None:
        self.scheduled.append((delay_ns, msg))

    def new_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-test-{self._n:06d}"

    def stop_system(self, exit_code: int, reason: str) -> None:
        self.stopped.append((exit_code, reason))

    def to(self, name: str) -> list[Message]:
        """Messages sent to ``name``, in order."""
        return [m for n, m in self.sent if n == name]


def quote(
    product: str = "BTC-USD",
    bid: str = "7000",
    ask: str = "7001",
    size: str = "5",
    ts: int = 1_522_800_060_000_000_000,
) -> Quote:
    """A quote with equal sizes on both sides."""
    return Quote(
        ts=ts,
        product=product,
        bid=Decimal(bid),
        bid_size=Decimal(size),
        ask=Decimal(ask),
        ask_size=Decimal(size),
    )


def bar(product: str = "BTC-USD", close: str = "7000", ts: int = 1_522_800_060_000_000_000) -> Bar:
    """A one-minute bar whose OHLC all equal ``close``."""
    c = Decimal(close)
    return Bar(
        ts=ts, product=product, open=c, high=c, low=c, close=c, volume=Decimal(1), interval_s=60
    )


def risk_params(level: RiskLevel = RiskLevel.NORMAL, cap: float = 0.10) -> RiskParameters:
    """Risk parameters capping BTC-USD and ETH-USD at ``cap``, at ``level``."""
    return RiskParameters(
        ts=1_522_800_060_000_000_000,
        version=1,
        level=level,
        max_weight=(("BTC-USD", cap), ("ETH-USD", cap)),
        stop_loss=0.05,
        min_position_size=0.02,
        size_multiplier=1.0,
    )


ROOT = Path(__file__).resolve().parents[1]


def spawn_daemon(config: Path, *args: str) -> subprocess.Popen[str]:
    """``python -m cryptoj [args] --config CONFIG`` as a child process in the config's folder,
    importing this checkout, stdout and stderr merged into one text pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "cryptoj", *args, "--config", str(config)],
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def start_keyed_fake(
    kind: str = "Ed25519", balances: dict[str, str] | None = None
) -> tuple[FakeCoinbase, ApiKey]:
    """A started fake Coinbase (BTC-USD, ETH-USD, fast steps) that accepts one new API key of
    ``kind``; the caller stops the fake."""
    key = generate_api_key(kind)
    fake = FakeCoinbase(
        products=["BTC-USD", "ETH-USD"],
        step_s=0.05,
        heartbeat_s=0.2,
        jwt_key_name=key.name,
        jwt_public_key=key.public_pem,
        balances=balances or {"USD": "1000000", "ETH": "100"},
    ).start()
    return fake, key


def chromium_command(profile: Path, window: str, *args: str) -> list[str]:
    """A headless Chromium command line: no sandbox, GPU, first-run or background traffic,
    its own profile directory, a window of ``window`` ("W,H"), then ``args``."""
    return [
        str(shutil.which("chromium")),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        *args,
    ]
