"""Configuration of the operations endpoint and the feature flags.

The ``ops`` and ``flags`` sections of :class:`cryptoj.config.Config`.

The bearer token is never stored in the config: ``token_env`` names an environment variable and
``token_file`` a file readable only by its owner (like the Coinbase key). A non-loopback
``host`` without a token is refused at start (:func:`ops_problems`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
#: A flag name: lower case words separated by ``_`` or ``.`` (``strategy.breakout.allocation``).
FlagName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=64)]
#: A flag value: on/off, or a number (an allocation, a size, a threshold).
FlagValue = bool | float


class OpsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Health, readiness, metrics, status and control over HTTP (``docs/operations.md``)."""

    enabled: bool = True
    host: str = "127.0.0.1"  # bind address; anything but loopback requires a token
    port: Port = 9325  # 0 = any free port (logged at start)
    token_env: str = "CRYPTOJ_OPS_TOKEN"  # env var holding the bearer token (unset/empty: none)
    token_file: str | None = None  # or a file holding the token, readable only by its owner
    control_remote: bool = False  # allow POST /control/* from non-loopback clients (with token)
    ask_timeout_s: PositiveFloat = 1.0  # how long one request waits for an actor's snapshot
    ping_timeout_s: PositiveFloat = 5.0  # /health: an actor slower than this to answer is stuck
    down_grace_s: PositiveFloat = 120.0  # /health: a supervised actor may be down this long
    ready_max_risk_level: Literal["NORMAL", "CAUTION", "REDUCING", "HALTED"] = "REDUCING"
    min_free_mb: NonNegFloat = 50.0  # /ready: free disk space needed next to the journal
    overload_lag_s: PositiveFloat = 1.0  # /ready: overloaded above this recent feed lag p99, s
    overload_mailbox: PositiveInt = 10_000  # /ready: overloaded above this many waiting messages


class FlagError(ValueError):
    """A flag change or flag definition is invalid; the message says which and why."""


def parse_flags(raw: Mapping[str, Any]) -> dict[str, FlagValue]:
    """Validate a mapping of flag name → value; raise :class:`FlagError` listing every problem."""
    problems: list[str] = []
    out: dict[str, FlagValue] = {}
    for name, value in raw.items():
        try:
            msgspec.convert(name, FlagName)
        except msgspec.ValidationError:
            problems.append(f"flags.{name}: not a valid flag name (lower case, '_' or '.')")
            continue
        try:
            out[name] = check_value(name, value)
        except FlagError as e:
            problems.append(str(e))
    if problems:
        raise FlagError("; ".join(problems))
    return out


def flag_problems(raw: Any) -> list[str]:
    """Every problem of a ``flags:`` section, one line each (empty when it is valid)."""
    if not isinstance(raw, Mapping):
        return [f"flags: expected a mapping of flag name to true/false or a number, got {raw!r}"]
    try:
        parse_flags(raw)
    except FlagError as e:
        return str(e).split("; ")
    return []


def check_value(name: str, value: Any, current: FlagValue | None = None) -> FlagValue:
    """``value`` as a flag value; with ``current`` it must keep that kind (on/off or number)."""
    if isinstance(value, bool):
        if current is not None and not isinstance(current, bool):
            raise FlagError(f"flags.{name}: expected a number, got {value!r}")
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        if isinstance(current, bool):
            raise FlagError(f"flags.{name}: expected true or false, got {value!r}")
        return float(value)
    kind = "true or false" if isinstance(current, bool) else "a finite number or true/false"
    raise FlagError(f"flags.{name}: expected {kind}, got {value!r}")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped) and ``localhost``."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def resolve_token(ops: OpsConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The configured bearer token, or None; ``OSError``/``ValueError`` for a bad token file."""
    env = os.environ if environ is None else environ
    if ops.token_file:
        path = Path(ops.token_file)
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(
                f"ops.token_file {path} must be readable only by its owner (chmod 600)"
            )
        token = path.read_text(encoding="utf-8").strip()
        return token or None
    token = env.get(ops.token_env, "").strip() if ops.token_env else ""
    return token or None


def ops_problems(ops: OpsConfig, token: str | None) -> list[str]:
    """Start-time checks that need the environment: one line per problem."""
    problems = []
    if ops.enabled and not is_loopback(ops.host) and not token:
        problems.append(
            f"ops.host: {ops.host!r} is not a loopback address, so a token is required "
            f"(set ${ops.token_env} or ops.token_file)"
        )
    if token is not None and len(token) < 16:
        problems.append("ops token: expected at least 16 characters")
    return problems


def risk_rank(level: str) -> int:
    """0 for NORMAL up to 3 for HALTED (unknown levels rank highest)."""
    order = ("NORMAL", "CAUTION", "REDUCING", "HALTED")
    return order.index(level) if level in order else len(order)


__all__ = [
    "FlagError",
    "FlagName",
    "FlagValue",
    "OpsConfig",
    "check_value",
    "flag_problems",
    "is_loopback",
    "ops_problems",
    "parse_flags",
    "resolve_token",
    "risk_rank",
]
