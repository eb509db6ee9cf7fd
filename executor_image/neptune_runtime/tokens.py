"""The driver's HTTP tokens: who may ingest, and who may read status and shared state.

Two tokens, each a file in the tokens directory (`--tokens-dir`, NEPTUNE_TOKENS_DIR): `ingest`
grants everything (POST /ingest/JOB, POST /admin/..., and the reads); `read` grants GET /status
and GET /state/NAME. /metrics and /healthz need none. On Kubernetes the directory is the
Secret NAME-ingest-token, mounted by the operator; a rotated Secret takes effect as its files
change (they are looked at again at most every RELOAD_SECONDS). In local mode `neptunectl run`
makes the directory, with files of mode 0600, and prints where it is.

A request carries its token as `Authorization: Bearer TOKEN` or `X-Neptune-Token: TOKEN` (the
Kubernetes API server's service proxy strips `Authorization` after it authenticated the caller).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("neptune.driver")

Grant = Literal["ingest", "read"]
GRANTS: tuple[Grant, ...] = ("ingest", "read")
RELOAD_SECONDS = 2.0


class TokensError(Exception):
    """The tokens directory cannot be used; the message names the path."""


def create(directory: Path) -> dict[Grant, str]:
    """Make a tokens directory (mode 0700) with new random tokens (files of mode 0600)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    made: dict[Grant, str] = {}
    for grant in GRANTS:
        made[grant] = secrets.token_urlsafe(32)
        fd = os.open(directory / grant, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(made[grant] + "\n")
    return made


@dataclass
class Tokens:
    directory: Path

    def __post_init__(self) -> None:
        self._values: dict[Grant, str] = {}
        self._checked = 0.0
        self._stamps: dict[Grant, float] = {}
        self.load()
        missing = [g for g in GRANTS if not self._values.get(g)]
        if missing:
            raise TokensError(f"tokens directory {self.directory}: no token in "
                              + ", ".join(str(self.directory / g) for g in missing))

    def load(self) -> None:
        """Read the token files again if they changed (a rotation)."""
        self._checked = time.monotonic()
        for grant in GRANTS:
            path = self.directory / grant
            try:
                stamp = path.stat().st_mtime
                if self._stamps.get(grant) == stamp:
                    continue
                value = path.read_text().strip()
            except OSError as exc:
                if grant not in self._values:
                    raise TokensError(f"cannot read token file {path}: "
                                      f"{exc.strerror or exc}") from None
                log.warning("token file %s: %s; keeping the token read before", path, exc)
                continue
            if value and grant in self._values and value != self._values[grant]:
                log.info("the %s token was rotated", grant)
            if value:
                self._values[grant], self._stamps[grant] = value, stamp

    def allows(self, presented: str | None, need: Grant) -> bool:
        """Whether `presented` grants `need` (the ingest token grants reads too)."""
        if time.monotonic() - self._checked > RELOAD_SECONDS:
            self.load()
        if not presented:
            return False
        grants: tuple[Grant, ...] = ("ingest",) if need == "ingest" else ("ingest", "read")
        # compare_digest against every candidate: the time taken does not tell which matched
        matched = [hmac.compare_digest(presented.encode(), self._values[g].encode())
                   for g in grants]
        return any(matched)


def presented(authorization: str | None, header: str | None) -> str | None:
    """The token a request carries, from either header."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return header.strip() if header else None
