"""CDP API credentials and the websocket JWT (a fresh one per subscribe message).

Credentials come from the daemon config's ``coinbase`` section, by reference only: the names of
two environment variables (key name, private key) or a JSON key file
``{"name": ..., "privateKey": ...}`` (``id`` is accepted for ``name``). Public market data needs
no key; without credentials :func:`ws_jwt_factory` returns a factory that yields ``None`` and the
subscribe messages carry no ``jwt``.

The token is built by ``coinbase.jwt_generator.build_ws_jwt`` of ``coinbase-advanced-py`` (ES256
or EdDSA, auto-detected; claims ``sub``, ``iss="cdp"``, ``nbf``, ``exp=nbf+120``; header ``kid``
and a random ``nonce``), exactly what Coinbase expects (protocol notes §2). The secret is never
logged: :class:`Credentials` hides it from ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class CredentialsError(Exception):
    """The configured credentials cannot be read (missing file, bad JSON, one of two env vars)."""


@dataclass(frozen=True)
class Credentials:
    """A CDP key name and its private key (PEM, or base64 Ed25519 seed)."""

    key_name: str
    secret: str = field(repr=False)


def load_credentials(
    *,
    api_key_env: str = "COINBASE_API_KEY",
    api_secret_env: str = "COINBASE_API_SECRET",
    key_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """The credentials the config points at, or None when none are configured.

    A key file wins over the environment. Both variables must be set, or neither.
    """
    env = os.environ if environ is None else environ
    if key_file:
        try:
            data = json.loads(Path(key_file).read_text(encoding="utf-8"))
        except OSError as e:
            raise CredentialsError(f"key file {key_file}: {e.strerror or e}") from e
        except ValueError as e:
            raise CredentialsError(f"key file {key_file}: not valid JSON") from e
        name = data.get("name") or data.get("id") if isinstance(data, dict) else None
        secret = data.get("privateKey") if isinstance(data, dict) else None
        if not isinstance(name, str) or not isinstance(secret, str) or not name or not secret:
            raise CredentialsError(f"key file {key_file}: expected 'name' and 'privateKey'")
        return Credentials(name, _unescape(secret))
    name, secret = env.get(api_key_env, ""), env.get(api_secret_env, "")
    if not name and not secret:
        return None
    if not name or not secret:
        missing = api_key_env if not name else api_secret_env
        raise CredentialsError(f"environment variable {missing} is not set (its pair is)")
    return Credentials(name, _unescape(secret))


def _unescape(secret: str) -> str:
    # the SDK decodes "unicode_escape" so a PEM with literal "\n" in an env var works
    return secret.replace("\\n", "\n") if "\\n" in secret else secret


def ws_jwt_factory(credentials: Credentials | None) -> Callable[[], str | None]:
    """A callable that returns a **new** websocket JWT on every call (None without keys)."""
    if credentials is None:
        return lambda: None
    from coinbase.jwt_generator import build_ws_jwt  # imported lazily: public data needs none

    key, secret = credentials.key_name, credentials.secret

    def make() -> str | None:
        return str(build_ws_jwt(key, secret))

    try:
        make()  # fail at start, not at the first subscribe, when the key is unusable
    except Exception as e:  # the SDK raises a bare Exception for an unreadable key
        raise CredentialsError(f"cannot sign a websocket JWT with key {key!r}: {e}") from e
    return make
