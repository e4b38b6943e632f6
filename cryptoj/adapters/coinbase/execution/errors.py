"""Error classification of Coinbase REST calls (pure: no I/O, no clock).

Every failure of a call is turned into one :class:`Fault` by :func:`classify`, and
:func:`decide` says what the client does about it: retry after a delay, or give up with an
exception from the hierarchy below. The rules (README "Live trading on Coinbase"):

======================  ==============================  ========================================
fault kind              seen as                         what the client does
======================  ==============================  ========================================
``auth``                HTTP 401 (plain ``Unauthorized``) one retry (the SDK signs a fresh JWT per
                                                        request), then :class:`AuthenticationFailed`
``forbidden``           HTTP 403 (missing scopes)       :class:`AuthenticationFailed` at once
``rate_limited``        HTTP 429 (HTML or JSON body)    wait ``Retry-After`` / ``x-ratelimit-reset``
                                                        (else backoff), bounded; not processed
``server``              HTTP 5xx                        reads: retry with backoff, bounded;
                                                        create: *outcome unknown*
``not_found``           HTTP 404, or 400 "not found"    reads: ``None``; never retried
``bad_request``         other HTTP 4xx                  :class:`RequestRejected` (create: the
                                                        order is rejected with the body's reason)
``not_sent``            connect error / connect timeout, retry with backoff, bounded (the request
                        TLS failure                     never reached Coinbase)
``no_response``         read timeout, connection        reads: retry with backoff, bounded;
                        dropped after sending           create: *outcome unknown*
``bad_body``            2xx whose body is not JSON or   reads: retry, bounded; create: *outcome
                        not the expected shape          unknown*
``credentials``         the key cannot sign a JWT       :class:`AuthenticationFailed` at once
======================  ==============================  ========================================

*Outcome unknown* (:class:`OutcomeUnknown`) means the create request may have been processed:
the venue then looks the order up by ``client_order_id`` and, only when it is certainly absent,
sends it again under the **same** id (Coinbase returns the original order for a repeated id).

Secrets: every message built here goes through :func:`redact` (the private key, any bearer
token and anything that looks like a PEM block are replaced), and response bodies are cut to
:data:`BODY_EXCERPT` characters. Error bodies are never parsed unguarded: 429 bodies can be HTML.
"""

from __future__ import annotations

import email.utils
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from cryptoj.supervision.guard import describe_error

BODY_EXCERPT = 200
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.S)
_KEYISH = re.compile(r"[A-Za-z0-9+/=_-]{12,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")


class FaultKind(enum.StrEnum):
    """What went wrong with one REST call (see the module docstring)."""

    AUTH = "auth"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    SERVER = "server"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    NOT_SENT = "not_sent"
    NO_RESPONSE = "no_response"
    BAD_BODY = "bad_body"
    CREDENTIALS = "credentials"


#: Kinds after which the request may have been processed by Coinbase.
MAYBE_PROCESSED = frozenset({FaultKind.SERVER, FaultKind.NO_RESPONSE, FaultKind.BAD_BODY})


@dataclass(frozen=True)
class Fault:
    """One classified failure: kind, HTTP status (0 without a response), wait hint, text."""

    kind: FaultKind
    status: int
    message: str
    retry_after_s: float | None = None

    @property
    def maybe_processed(self) -> bool:
        """True when Coinbase may have acted on the request (create: outcome unknown)."""
        return self.kind in MAYBE_PROCESSED


class CoinbaseError(Exception):
    """Base of every error the execution client raises; the message never holds a secret."""

    def __init__(self, message: str, fault: Fault | None = None) -> None:
        super().__init__(message)
        self.fault = fault


class AuthenticationFailed(CoinbaseError):
    """Coinbase refused the key (401 after a retry with a fresh JWT, or 403), or it cannot sign."""


class RateLimited(CoinbaseError):
    """Still rate limited (429) after the bounded retries; nothing was processed."""


class ServerError(CoinbaseError):
    """Coinbase kept answering 5xx after the bounded retries."""


class TransportError(CoinbaseError):
    """No usable response after the bounded retries (connect errors, timeouts, broken bodies)."""


class RequestRejected(CoinbaseError):
    """Coinbase refused the request itself (HTTP 4xx other than 401/403/404/429)."""


class OutcomeUnknown(CoinbaseError):
    """A create request was sent but its outcome is unknown (look it up by client_order_id)."""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secrets (and each of their lines), bearer tokens, JWTs, PEMs."""
    out = text
    for secret in secrets:
        if not secret:
            continue
        out = out.replace(secret, "[redacted]")
        flat = "".join(secret.split())
        # any run of 12+ key characters that also occurs in the key (a whole line or a piece)

        def hide(m: re.Match[str], flat: str = flat) -> str:
            return "[redacted]" if m.group(0) in flat else m.group(0)

        out = _KEYISH.sub(hide, out)
    out = _PEM.sub("[redacted key]", out)
    out = _BEARER.sub("Bearer [redacted]", out)
    return _JWT.sub("[redacted jwt]", out)


def body_excerpt(text: str) -> str:
    """The start of a response body on one line (HTML bodies are reduced to their text)."""
    flat = re.sub(r"<[^>]*>", " ", text)
    flat = " ".join(flat.split())
    return flat[:BODY_EXCERPT] + ("…" if len(flat) > BODY_EXCERPT else "")


def retry_after_s(headers: Mapping[str, Any] | None, now_s: float) -> float | None:
    """Seconds to wait according to ``Retry-After`` or ``x-ratelimit-reset`` (None if neither).

    ``Retry-After`` may be seconds or an HTTP date. ``x-ratelimit-reset`` is read as seconds to
    wait when small, as a Unix time (seconds, or milliseconds) when it is a timestamp.
    """
    if not headers:
        return None
    lower = {str(k).lower(): v for k, v in headers.items()}
    ra = lower.get("retry-after")
    if ra is not None:
        text = str(ra).strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now_s)
    reset = lower.get("x-ratelimit-reset")
    if reset is not None:
        try:
            value = float(str(reset).strip())
        except ValueError:
            return None
        if value > 1e11:  # a Unix time in milliseconds
            value = value / 1000 - now_s
        elif value > 1e8:  # a Unix time in seconds
            value -= now_s
        return max(0.0, value)
    return None


def classify(exc: BaseException, *, secrets: Iterable[str] = (), now_s: float = 0.0) -> Fault:
    """Turn an exception raised by the SDK / requests into a :class:`Fault`.

    ``now_s`` (Unix seconds) is only used to turn absolute reset times into waits.
    """
    secrets = tuple(secrets)

    def msg(text: str) -> str:
        return redact(text, secrets)

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        resp = exc.response
        status = int(resp.status_code)
        try:
            text = resp.text
        except Exception:  # an undecodable body: describe it, never fail while classifying
            text = "<undecodable body>"
        excerpt = body_excerpt(text)
        where = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if status == 401:
            return Fault(FaultKind.AUTH, status, msg(where))
        if status == 403:
            return Fault(FaultKind.FORBIDDEN, status, msg(where))
        if status == 429:
            wait = retry_after_s(resp.headers, now_s)
            return Fault(FaultKind.RATE_LIMITED, status, msg(where), wait)
        if status >= 500:
            return Fault(FaultKind.SERVER, status, msg(where), retry_after_s(resp.headers, now_s))
        if status == 404 or "not found" in text.lower():
            return Fault(FaultKind.NOT_FOUND, status, msg(where))
        return Fault(FaultKind.BAD_REQUEST, status, msg(where))
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return Fault(FaultKind.NOT_SENT, 0, msg(describe_error(exc)))
    if isinstance(exc, requests.exceptions.ProxyError | requests.exceptions.InvalidURL):
        return Fault(FaultKind.NOT_SENT, 0, msg(describe_error(exc)))
    if isinstance(exc, requests.exceptions.ReadTimeout | requests.exceptions.Timeout):
        return Fault(FaultKind.NO_RESPONSE, 0, msg(describe_error(exc)))
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = describe_error(exc)
        never_connected = any(
            marker in text
            for marker in (
                "NewConnectionError",
                "Failed to establish a new connection",
                "Connection refused",
                "Name or service not known",
                "nodename nor servname",
            )
        )
        return Fault(FaultKind.NOT_SENT if never_connected else FaultKind.NO_RESPONSE, 0, msg(text))
    if isinstance(
        exc,
        requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError,
    ):
        return Fault(FaultKind.NO_RESPONSE, 0, msg(describe_error(exc)))
    if isinstance(exc, ValueError | TypeError | KeyError):  # JSON / shape errors on a 2xx body
        return Fault(
            FaultKind.BAD_BODY, 200, msg(f"unexpected response body: {describe_error(exc)}")
        )
    if isinstance(exc, OSError):
        return Fault(FaultKind.NO_RESPONSE, 0, msg(describe_error(exc)))
    # The SDK raises a bare Exception when the key cannot sign a JWT.
    return Fault(FaultKind.CREDENTIALS, 0, msg(f"cannot sign the request: {describe_error(exc)}"))


@dataclass(frozen=True)
class Retry:
    """Try the same request again after ``wait_s`` seconds."""

    wait_s: float
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries (attempt numbers are 1-based: the first try is attempt 1)."""

    max_attempts: int = 4  # 429 / 5xx / transport: at most this many tries in all
    auth_attempts: int = 2  # 401: the first try plus one retry with a fresh JWT
    backoff_min_s: float = 0.5
    backoff_max_s: float = 8.0
    max_wait_s: float = 60.0  # a Retry-After longer than this is capped

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.auth_attempts < 1:
            raise ValueError("retry policy: attempts must be at least 1")
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("retry policy: expected 0 < backoff_min_s <= backoff_max_s")

    def backoff_s(self, attempt: int, unit_random: float) -> float:
        """Exponential backoff before try ``attempt + 1``, ± 20 % jitter."""
        base = min(self.backoff_max_s, self.backoff_min_s * 2.0 ** max(0, attempt - 1))
        return float(base * (0.8 + 0.4 * unit_random))


def decide(
    fault: Fault,
    attempt: int,
    policy: RetryPolicy,
    *,
    create: bool = False,
    unit_random: float = 0.5,
) -> Retry | CoinbaseError:
    """What to do after ``fault`` on try number ``attempt``: a :class:`Retry` or the error to raise.

    ``create`` marks a POST /orders: a fault after which Coinbase may have processed it gives
    :class:`OutcomeUnknown` instead of a retry (the caller looks the order up first).
    """
    kind = fault.kind
    text = fault.message
    if kind is FaultKind.AUTH:
        if attempt < policy.auth_attempts:
            return Retry(0.0, "401: retry once with a fresh JWT")
        return AuthenticationFailed(f"Coinbase refused the API key: {text}", fault)
    if kind is FaultKind.FORBIDDEN:
        return AuthenticationFailed(f"the API key lacks a permission: {text}", fault)
    if kind is FaultKind.CREDENTIALS:
        return AuthenticationFailed(text, fault)
    if kind is FaultKind.NOT_FOUND:
        return RequestRejected(text, fault)
    if kind is FaultKind.BAD_REQUEST:
        return RequestRejected(text, fault)
    if create and fault.maybe_processed:
        return OutcomeUnknown(f"create order: outcome unknown after {text}", fault)
    if attempt >= policy.max_attempts:
        final: dict[FaultKind, type[CoinbaseError]] = {
            FaultKind.RATE_LIMITED: RateLimited,
            FaultKind.SERVER: ServerError,
        }
        cls = final.get(kind, TransportError)
        return cls(f"gave up after {attempt} tries: {text}", fault)
    if kind is FaultKind.RATE_LIMITED and fault.retry_after_s is not None:
        return Retry(min(fault.retry_after_s, policy.max_wait_s), f"429: wait as told ({text})")
    wait = policy.backoff_s(attempt, unit_random)
    if fault.retry_after_s is not None:
        wait = max(wait, min(fault.retry_after_s, policy.max_wait_s))
    return Retry(wait, f"{kind}: retry ({text})")


__all__ = [
    "AuthenticationFailed",
    "CoinbaseError",
    "Fault",
    "FaultKind",
    "OutcomeUnknown",
    "RateLimited",
    "RequestRejected",
    "Retry",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "body_excerpt",
    "classify",
    "decide",
    "redact",
    "retry_after_s",
]
