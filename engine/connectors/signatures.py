"""HMAC-SHA256 webhook signatures: the Stripe, GitHub and generic schemes, both ends.

A receiver checks in two stages so that a forged or replayed request costs nothing:
``precheck`` looks at the headers only (the signature header is there and well formed, the
timestamp is within the tolerance), before the body is read; ``verify`` then compares the
HMAC of the body against every configured secret (several during a rotation) in constant
time. A sender signs with ``sign``.

- ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`` over ``"<t>.<body>"``.
- ``github``: ``X-Hub-Signature-256: sha256=<hex>`` over the body (no timestamp: replays
  are caught by the delivery id, ``X-GitHub-Delivery``).
- ``generic``: ``X-Webhook-Signature: sha256=<hex>`` (or bare hex; several comma-separated)
  and ``X-Webhook-Timestamp: <unix>``, over ``"<timestamp>.<body>"``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SCHEMES = ("stripe", "github", "generic")
DEFAULT_TOLERANCE = 300.0  # seconds, as Stripe's own libraries default to

STRIPE_HEADER = "stripe-signature"
GITHUB_HEADER = "x-hub-signature-256"
GENERIC_HEADER = "x-webhook-signature"
GENERIC_TIMESTAMP = "x-webhook-timestamp"


class SignatureError(Exception):
    """The request is not signed as configured. ``code``: ``missing_signature``,
    ``bad_signature`` or ``stale_timestamp`` (all answered 401)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Presented:
    """What the headers claim: the signatures (hex) and the timestamp they cover, if any."""

    signatures: tuple[str, ...]
    timestamp: str | None


def _hex_list(values: Sequence[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        value = value.strip()
        if value.startswith("sha256="):
            value = value[len("sha256="):]
        if value:
            out.append(value.lower())
    return tuple(out)


def _fresh(timestamp: str, tolerance: float, now: float) -> None:
    try:
        moment = float(int(timestamp.strip()))
    except ValueError:
        raise SignatureError("bad_signature", f"the signature timestamp {timestamp[:40]!r} is "
                             "not a Unix time in seconds") from None
    if abs(now - moment) > tolerance:
        raise SignatureError("stale_timestamp", f"the signature timestamp is {int(now - moment)} s "
                             f"from this server's clock (tolerance {int(tolerance)} s): a replay, "
                             "or a clock to fix")


def precheck(scheme: str, headers: Mapping[str, str], *, tolerance: float = DEFAULT_TOLERANCE,
             signature_header: str = GENERIC_HEADER, timestamp_header: str = GENERIC_TIMESTAMP,
             now: float | None = None) -> Presented:
    """What can be checked before reading the body. ``headers``: lower-case names."""
    now = time.time() if now is None else now
    if scheme == "stripe":
        raw = headers.get(STRIPE_HEADER)
        if not raw:
            raise SignatureError("missing_signature", "no Stripe-Signature header")
        timestamp: str | None = None
        signatures: list[str] = []
        for part in raw.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t":
                timestamp = value
            elif key == "v1":
                signatures.append(value)
        if timestamp is None or not signatures:
            raise SignatureError("bad_signature", "the Stripe-Signature header needs t=<unix "
                                 "time> and at least one v1=<hex signature>")
        _fresh(timestamp, tolerance, now)
        return Presented(_hex_list(signatures), timestamp)
    if scheme == "github":
        raw = headers.get(GITHUB_HEADER)
        if not raw:
            raise SignatureError("missing_signature", "no X-Hub-Signature-256 header")
        if not raw.strip().startswith("sha256="):
            raise SignatureError("bad_signature", "X-Hub-Signature-256 must be sha256=<hex>")
        return Presented(_hex_list([raw]), None)
    if scheme == "generic":
        raw = headers.get(signature_header.lower())
        if not raw:
            raise SignatureError("missing_signature", f"no {signature_header} header")
        stamp = headers.get(timestamp_header.lower())
        if not stamp:
            raise SignatureError("missing_signature", f"no {timestamp_header} header (the "
                                 "signature covers '<timestamp>.<body>')")
        _fresh(stamp, tolerance, now)
        return Presented(_hex_list(raw.split(",")), stamp.strip())
    raise ValueError(f"unknown signature scheme {scheme!r} (one of {', '.join(SCHEMES)})")


def _digest(secret: str, timestamp: str | None, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    if timestamp is not None:
        mac.update(timestamp.encode("ascii", "replace") + b".")
    mac.update(body)
    return mac.hexdigest()


def verify(presented: Presented, secrets: Sequence[str], body: bytes) -> None:
    """Raises ``SignatureError`` unless one presented signature is the HMAC of the body
    under one of ``secrets``. Every pair is compared (constant time each), so how long it
    takes does not say which secret or signature came close."""
    matched = False
    for secret in secrets:
        expected = _digest(secret, presented.timestamp, body)
        for signature in presented.signatures:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureError("bad_signature", "the signature does not match the body under "
                             "any configured secret")


def sign(scheme: str, secret: str, body: bytes, *, now: float | None = None,
         signature_header: str = "X-Webhook-Signature",
         timestamp_header: str = "X-Webhook-Timestamp") -> dict[str, str]:
    """The headers that sign ``body`` under ``scheme``."""
    stamp = str(int(time.time() if now is None else now))
    if scheme == "stripe":
        return {"Stripe-Signature": f"t={stamp},v1={_digest(secret, stamp, body)}"}
    if scheme == "github":
        return {"X-Hub-Signature-256": f"sha256={_digest(secret, None, body)}"}
    if scheme == "generic":
        return {signature_header: f"sha256={_digest(secret, stamp, body)}",
                timestamp_header: stamp}
    raise ValueError(f"unknown signature scheme {scheme!r} (one of {', '.join(SCHEMES)})")
