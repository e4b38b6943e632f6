"""Trading keys: load, check the key file's permissions, validate the key type (before any actor).

Live trading needs a CDP API key: a key name and a private key, from the two environment
variables named in the config's ``coinbase`` section or from ``coinbase.key_file`` (JSON
``{"name": ..., "privateKey": ...}``; a key file wins over the environment, as for the feed).
:func:`load_trading_credentials` refuses, with a :class:`CredentialsError` naming what is wrong
and never showing the secret:

* no key configured at all, or one of the two variables missing;
* a key file that does not exist, is not a regular file, or can be read by its group or by
  others (``chmod 600`` it: the message names the file and its mode);
* a private key that is neither an ECDSA P-256 key (PEM, SEC1 or PKCS#8) → ``ES256`` nor an
  Ed25519 key (PKCS#8 PEM, or the base64 of a 32- or 64-byte raw key) → ``EdDSA``, which are
  the two kinds Coinbase issues (protocol notes §2);
* a key the SDK cannot sign a JWT with.

The returned :class:`Credentials` hides the secret from ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from cryptoj.adapters.coinbase.execution.errors import redact
from cryptoj.adapters.coinbase.jwt_auth import Credentials, CredentialsError, load_credentials

if TYPE_CHECKING:
    from cryptoj.config import CoinbaseConfig


def check_key_file(path: str) -> None:
    """Refuse a key file that is missing, not a regular file, or readable by group or others."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise CredentialsError(f"key file {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"key file {path}: not a regular file")
    loose = st.st_mode & 0o077
    if loose:
        raise CredentialsError(
            f"key file {path} is accessible by its group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); refusing to use it: run chmod 600 {path}"
        )


def key_algorithm(secret: str) -> str:
    """``"ES256"`` or ``"EdDSA"`` for a usable private key; :class:`CredentialsError` otherwise.

    The message never includes the key.
    """
    text = secret.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("utf-8"), password=None)
        except (ValueError, TypeError) as e:
            kind = type(e).__name__
            raise CredentialsError(
                f"the private key is a PEM block that cannot be read ({kind}); expected an "
                "unencrypted ECDSA P-256 or Ed25519 private key"
            ) from None
        except Exception as e:  # cryptography raises UnsupportedAlgorithm for exotic keys
            raise CredentialsError(
                f"the private key is of an unsupported kind ({type(e).__name__})"
            ) from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return "EdDSA"
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise CredentialsError(
                    f"the private key is an ECDSA key on {key.curve.name}; Coinbase keys use "
                    "P-256 (secp256r1)"
                )
            return "ES256"
        raise CredentialsError(
            f"the private key is a {type(key).__name__.lstrip('_')}; expected ECDSA P-256 or "
            "Ed25519"
        )
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(
            "the private key is neither a PEM block nor base64 (an Ed25519 key)"
        ) from None
    if len(raw) not in (32, 64):
        raise CredentialsError(
            f"the private key decodes to {len(raw)} bytes; an Ed25519 key has 32 or 64"
        )
    ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    return "EdDSA"


def validate_credentials(credentials: Credentials) -> str:
    """Check the key name and that the SDK can sign a REST JWT; return the algorithm."""
    name = credentials.key_name
    if not name or any(c.isspace() for c in name):
        raise CredentialsError(f"the API key name {name!r} is empty or contains spaces")
    algorithm = key_algorithm(credentials.secret)
    from coinbase.jwt_generator import build_rest_jwt

    try:
        build_rest_jwt("GET api.coinbase.com/api/v3/brokerage/accounts", name, credentials.secret)
    except Exception as e:  # the SDK raises a bare Exception; its text is redacted anyway
        text = redact(str(e).splitlines()[0] if str(e) else type(e).__name__, [credentials.secret])
        raise CredentialsError(f"cannot sign a JWT with key {name!r}: {text}") from None
    return algorithm


def load_trading_credentials(
    cfg: CoinbaseConfig, environ: Mapping[str, str] | None = None
) -> tuple[Credentials, str]:
    """The validated trading credentials and their JWT algorithm (see the module docstring)."""
    if cfg.key_file:
        check_key_file(cfg.key_file)
    try:
        creds = load_credentials(
            api_key_env=cfg.api_key_env,
            api_secret_env=cfg.api_secret_env,
            key_file=cfg.key_file,
            environ=environ,
        )
    except CredentialsError:
        raise
    except Exception as e:  # an unexpected shape: never echo the file's content
        raise CredentialsError(f"cannot read the credentials: {type(e).__name__}") from None
    if creds is None:
        raise CredentialsError(
            "live trading needs a Coinbase API key: set the environment variables "
            f"{cfg.api_key_env} and {cfg.api_secret_env}, or coinbase.key_file "
            "(a JSON key file readable only by its owner)"
        )
    where = f"key file {cfg.key_file}" if cfg.key_file else f"${cfg.api_secret_env}"
    try:
        algorithm = validate_credentials(creds)
    except CredentialsError as e:
        raise CredentialsError(f"{where}: {e}") from None
    return creds, algorithm


__all__ = [
    "Credentials",
    "CredentialsError",
    "check_key_file",
    "key_algorithm",
    "load_trading_credentials",
    "validate_credentials",
]
