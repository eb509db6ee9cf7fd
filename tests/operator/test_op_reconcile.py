"""reconcile: the Secrets made once, and /status asked with the read token (re-read on 401).

A fake Kube stands for the API server; the driver is a small aiohttp server on loopback that
checks the token as the runtime does (Authorization: Bearer or X-Neptune-Token)."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from aiohttp import web

from neptune_operator import reconcile
from neptune_operator.config import OperatorConfig
from neptune_operator.kube import ApiError, Kube

from .op_helpers import BASE

SECRET = "fraud-ingest-token"


def token_secret(read: str, ingest: str = "ingest-token") -> dict[str, Any]:
    return {"metadata": {"name": SECRET},
            "data": {k: base64.b64encode(v.encode()).decode()
                     for k, v in (("read", read), ("ingest", ingest))}}


class FakeKube:
    def __init__(self, secrets: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.secrets: dict[str, dict[str, Any]] = dict(secrets or {})
        self.gets: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []
        self.fail: ApiError | None = None

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        self.gets.append(f"{kind}/{name}")
        if self.fail is not None:
            raise self.fail
        return self.secrets.get(name) if kind == "Secret" else None

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        self.created.append(dict(manifest))
        self.secrets[manifest["metadata"]["name"]] = dict(manifest)
        return dict(manifest)

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self.applied.append(dict(manifest))
        return dict(manifest)

    def as_kube(self) -> Kube:
        return cast(Kube, self)


def app() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def test_secrets_are_created_once_with_fresh_values() -> None:
    fake = FakeKube()
    created = asyncio.run(reconcile.ensure_secrets(fake.as_kube(), app()))
    assert created == ["fraud-secret", SECRET]
    tokens = fake.secrets[SECRET]["stringData"]
    assert set(tokens) == {"ingest", "read"} and tokens["ingest"] != tokens["read"]
    assert len(fake.secrets["fraud-secret"]["stringData"]["secret"]) == 64
    # Again: both exist, nothing is created or rewritten.
    assert asyncio.run(reconcile.ensure_secrets(fake.as_kube(), app())) == []
    assert len(fake.created) == 2
    assert fake.secrets[SECRET]["stringData"] == tokens


def test_a_rotated_token_secret_is_kept() -> None:
    rotated = token_secret("user-rotated")
    fake = FakeKube({SECRET: rotated})
    result = asyncio.run(reconcile.apply_children(fake.as_kube(), OperatorConfig(), app(),
                                                  "roll", None))
    assert result.secrets_created == ["fraud-secret"]
    assert fake.secrets[SECRET] is rotated
    # Secrets are never applied (an apply would put the operator's values back).
    assert [m["kind"] for m in fake.applied if m["kind"] == "Secret"] == []
    assert "Deployment/fraud-driver" in result.applied


def test_token_cache_reads_the_secret_once_until_asked_fresh() -> None:
    fake = FakeKube({SECRET: token_secret(" read-1\n")})
    cache = reconcile.TokenCache()
    kube = fake.as_kube()
    assert asyncio.run(cache.get(kube, "team-a", "fraud")) == ("read-1", None)
    assert asyncio.run(cache.get(kube, "team-a", "fraud")) == ("read-1", None)
    assert fake.gets == [f"Secret/{SECRET}"]
    fake.secrets[SECRET] = token_secret("read-2")
    assert asyncio.run(cache.get(kube, "team-a", "fraud", fresh=True)) == ("read-2", None)
    assert len(fake.gets) == 2
    cache.forget("team-a", "fraud")
    asyncio.run(cache.get(kube, "team-a", "fraud"))
    assert len(fake.gets) == 3


def test_token_cache_says_why_there_is_no_token() -> None:
    cache = reconcile.TokenCache()
    fake = FakeKube()
    token, why = asyncio.run(cache.get(fake.as_kube(), "team-a", "fraud"))
    assert token is None and why == f"Secret {SECRET} does not exist"
    fake.secrets[SECRET] = {"data": {"ingest": base64.b64encode(b"x").decode()}}
    token, why = asyncio.run(cache.get(fake.as_kube(), "team-a", "fraud"))
    assert token is None and why == f"Secret {SECRET} has no 'read' token"
    fake.fail = ApiError(403, "GET", "/api/v1/...", '{"message": "forbidden"}')
    token, why = asyncio.run(cache.get(fake.as_kube(), "team-a", "fraud"))
    assert token is None and why is not None and "HTTP 403" in why and SECRET in why


class Driver:
    """/status answering only the current read token, as the runtime does."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.seen: list[str | None] = []

    async def status(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        given = request.headers.get("X-Neptune-Token") or (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None)
        self.seen.append(given)
        if given != self.token:
            return web.json_response({"error": "missing or wrong token"}, status=401)
        return web.json_response({"phase": "Running", "jobs": {}})


@asynccontextmanager
async def serving(driver: Driver) -> AsyncIterator[str]:
    server = web.Application()
    server.router.add_get("/status", driver.status)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/status"
    finally:
        await runner.cleanup()


Result = tuple[dict[str, Any] | None, str | None]


def ask(driver: Driver, kube: FakeKube | None,
        cache: reconcile.TokenCache | None) -> Result:
    async def run() -> Result:
        async with serving(driver) as url:
            cfg = OperatorConfig(driver_status_url=url)
            return await reconcile.driver_status(cfg, app(), kube.as_kube() if kube else None,
                                                 cache)
    return asyncio.run(run())


def test_status_is_asked_with_the_read_token() -> None:
    driver, fake, cache = Driver("read-1"), FakeKube({SECRET: token_secret("read-1")}), \
        reconcile.TokenCache()
    doc, error = ask(driver, fake, cache)
    assert error is None and doc == {"phase": "Running", "jobs": {}}
    assert driver.seen == ["read-1"]
    ask(driver, fake, cache)
    assert fake.gets == [f"Secret/{SECRET}"]  # cached


def test_a_rotation_is_followed_after_one_401() -> None:
    fake, cache = FakeKube({SECRET: token_secret("old")}), reconcile.TokenCache()
    assert ask(Driver("old"), fake, cache)[1] is None
    # The user replaced the values and the driver has re-read its files.
    fake.secrets[SECRET] = token_secret("new")
    driver = Driver("new")
    doc, error = ask(driver, fake, cache)
    assert error is None and doc is not None
    assert driver.seen == ["old", "new"]
    assert len(fake.gets) == 2


def test_a_refused_token_that_did_not_change_is_reported_not_retried() -> None:
    # The Secret is rotated but the driver has not taken the new files yet.
    fake, cache = FakeKube({SECRET: token_secret("new")}), reconcile.TokenCache()
    driver = Driver("old")
    doc, error = ask(driver, fake, cache)
    assert doc is None and error is not None
    assert "HTTP 401: missing or wrong token" in error
    assert f"the read token of Secret {SECRET} was refused" in error
    assert driver.seen == ["new"]  # the same token is not sent twice
    assert len(fake.gets) == 2  # read again once, to see whether it changed


def test_a_missing_secret_is_named_when_the_driver_refuses() -> None:
    driver = Driver("read-1")
    doc, error = ask(driver, FakeKube(), reconcile.TokenCache())
    assert doc is None and error is not None
    assert "HTTP 401" in error and f"Secret {SECRET} does not exist" in error
    assert driver.seen == [None]


def test_without_a_client_no_token_is_sent() -> None:
    driver = Driver("read-1")
    doc, error = ask(driver, None, None)
    assert doc is None and error is not None and "HTTP 401" in error
    assert driver.seen == [None]


def test_an_unreachable_driver_is_an_error_not_an_exception() -> None:
    async def run() -> Result:
        cfg = OperatorConfig(driver_status_url="http://127.0.0.1:9/status")
        return await reconcile.driver_status(cfg, app(), FakeKube(
            {SECRET: token_secret("x")}).as_kube(), reconcile.TokenCache())
    doc, error = asyncio.run(run())
    assert doc is None and error is not None and "ClientConnectorError" in error


