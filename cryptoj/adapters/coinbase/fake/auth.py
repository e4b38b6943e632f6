"""JWT verification of the fake exchange (REST and websocket), and test API keys.

The fake registers one CDP API key: its name (``organizations/{org}/apiKeys/{id}``) and public
key (ECDSA P-256 → ES256, or Ed25519 → EdDSA). A REST call is accepted when (protocol notes §2):

* ``Authorization: Bearer <jwt>``;
* the header's ``alg`` is the key's algorithm and the signature verifies with the public key;
* header ``kid`` == claim ``sub`` == the registered key name; ``iss`` ``"cdp"`` (the SDK since
  1.4.1) or ``"coinbase-cloud"`` (earlier SDKs, ccxt), both of which Coinbase accepted;
* an ``aud`` claim is allowed and not checked (earlier SDKs and ccxt send
  ``["retail_rest_api_proxy"]``);
* ``nbf <= now + skew`` and ``exp > now`` (numbers);
* ``uri == "<METHOD> <host:port><path>"`` -- or that string among a ``uris`` list (the form
  Ed25519 tokens may carry): the request's method, its ``Host`` header, the path without the
  query string.

A websocket subscribe's JWT gets the same checks except that it carries no ``uri``. Every failure
has a reason (for counters and logs); the client only ever sees ``401 Unauthorized`` or the
``authentication failure`` frame, as on Coinbase.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ISSUERS = frozenset({"cdp", "coinbase-cloud"})  # today's SDK, earlier SDKs and ccxt


@dataclass(frozen=True)
class ApiKey:
    """A generated CDP-style key: its name, private key (PEM) and public key (PEM)."""

    name: str
    private_pem: str = field(repr=False)
    public_pem: str
    algorithm: str  # "ES256" or "EdDSA"

    def key_file_json(self) -> str:
        """The CDP key file the SDK and cryptoj read: ``{"name": ..., "privateKey": ...}``."""
        return json.dumps({"name": self.name, "privateKey": self.private_pem})


def generate_api_key(kind: str = "Ed25519", name: str | None = None) -> ApiKey:
    """A fresh key pair of ``kind`` ``ES256`` (ECDSA P-256, SEC1 PEM like CDP's) or ``Ed25519``."""
    name = name or f"organizations/fake-org/apiKeys/{secrets.token_hex(8)}"
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if kind.upper() in ("ES256", "ECDSA", "EC"):
        private, fmt, alg = (
            ec.generate_private_key(ec.SECP256R1()),
            serialization.PrivateFormat.TraditionalOpenSSL,
            "ES256",
        )
    elif kind.lower() in ("ed25519", "eddsa"):
        private, fmt, alg = (
            ed25519.Ed25519PrivateKey.generate(),
            serialization.PrivateFormat.PKCS8,
            "EdDSA",
        )
    else:
        raise ValueError(f"unknown key kind {kind!r}: expected ES256 or Ed25519")
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return ApiKey(name, private_pem, public_pem, alg)


def write_key_file(key: ApiKey, path: str | Path) -> Path:
    """Write the key file with mode 0600 (created so, never world-readable); returns the path."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key.key_file_json())
    p.chmod(0o600)
    return p


PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def load_public_key(pem: str) -> tuple[PublicKey, str]:
    """A public key (or the public half of a private key) from PEM, with its JWT algorithm."""
    data = pem.encode()
    key: Any
    if b"PRIVATE KEY" in data:
        key = serialization.load_pem_private_key(data, password=None).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"EC key on {key.curve.name}: ES256 needs P-256")
        return key, "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, "EdDSA"
    raise ValueError(f"unsupported key type {type(key).__name__}: expected P-256 or Ed25519")


class JwtVerifier:
    """Checks CDP JWTs against one registered key; ``clock`` gives unix seconds (injected)."""

    def __init__(
        self,
        key_name: str,
        public_pem: str,
        *,
        skew_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key_name:
            raise ValueError("the API key name is empty")
        self.key_name = key_name
        self.public_key, self.algorithm = load_public_key(public_pem)
        self.skew_s = skew_s
        self.clock = clock

    def verify_rest(self, authorization: str | None, method: str, host: str, path: str) -> str:
        """``""`` when the request's token is good, else why not."""
        if not authorization:
            return "no Authorization header"
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token.strip():
            return "Authorization is not 'Bearer <jwt>'"
        claims, reason = self._claims(token.strip())
        if reason:
            return reason
        expected = f"{method} {host}{path}"
        uris = claims.get("uris")
        if claims.get("uri") == expected or (isinstance(uris, list) and expected in uris):
            return ""
        if "uri" not in claims and isinstance(uris, list):
            return f"uris claim {uris!r} does not hold {expected!r}"
        return f"uri claim {claims.get('uri')!r} is not {expected!r}"

    def verify_ws(self, token: Any) -> str:
        """``""`` when a websocket subscribe's token is good (no ``uri`` claim), else why not."""
        if not isinstance(token, str) or not token:
            return "no jwt in the subscribe message"
        claims, reason = self._claims(token)
        if reason:
            return reason
        if "uri" in claims or "uris" in claims:
            return "a websocket JWT carries no uri claim"
        return ""

    def _claims(self, token: str) -> tuple[dict[str, Any], str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            return {}, f"malformed JWT: {e}"
        if header.get("alg") != self.algorithm:
            return {}, f"alg {header.get('alg')!r} is not the key's {self.algorithm}"
        if header.get("kid") != self.key_name:
            return {}, f"kid {header.get('kid')!r} is not the registered key name"
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=[self.algorithm],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.PyJWTError as e:
            return {}, f"signature or encoding: {e}"
        if claims.get("sub") != self.key_name:
            return {}, f"sub {claims.get('sub')!r} is not the registered key name"
        if claims.get("iss") not in ISSUERS:
            return {}, f"iss {claims.get('iss')!r} is not one of {sorted(ISSUERS)}"
        nbf, exp = _number(claims.get("nbf")), _number(claims.get("exp"))
        if nbf is None or exp is None:
            return {}, "nbf and exp must be numbers"
        now = self.clock()
        if nbf > now + self.skew_s:
            return {}, f"nbf {nbf} is in the future (now {now:.0f})"
        if exp <= now:
            return {}, f"expired (exp {exp}, now {now:.0f})"
        return claims, ""


def make_verifier(
    key_name: str | None, public_pem: str | None, skew_s: float = 5.0
) -> JwtVerifier | None:
    """The verifier of the registered key, or None (authentication off) when none is given."""
    if (key_name is None) != (public_pem is None):
        raise ValueError("give both the API key name and its public key, or neither")
    if key_name is None or public_pem is None:
        return None
    return JwtVerifier(key_name, public_pem, skew_s=skew_s)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)
