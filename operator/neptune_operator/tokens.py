"""The driver's HTTP tokens: what the Secret NAME-ingest-token holds and how a request carries
them. Pure except `generate` (randomness).

The operator creates the Secret once with two random tokens and never rewrites it; rotating
means replacing its values (docs/operator.md). It reads the read token back through its own
Kubernetes client to ask the driver for /status.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Any

from .constants import INGEST_TOKEN_KEY, READ_TOKEN_KEY, TOKEN_HEADER

KEYS = (INGEST_TOKEN_KEY, READ_TOKEN_KEY)


def generate() -> dict[str, str]:
    """Two independent random tokens (256 bits each, URL-safe text)."""
    return {key: secrets.token_urlsafe(32) for key in KEYS}


def from_secret(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """The tokens a Secret object holds, as the driver reads them (surrounding whitespace
    ignored). Keys that are missing, empty or not base64 are left out."""
    out: dict[str, str] = {}
    data = (secret or {}).get("data") or {}
    for key in KEYS:
        raw = data.get(key)
        if not isinstance(raw, str):
            continue
        try:
            value = base64.b64decode(raw, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            continue
        if value:
            out[key] = value
    return out


def headers(token: str) -> dict[str, str]:
    """Both ways the driver takes a token: Authorization for direct requests, X-Neptune-Token
    for requests through the API server's service proxy (which strips Authorization)."""
    return {"Authorization": f"Bearer {token}", TOKEN_HEADER: token}
