"""The driver's HTTP side: event ingest, /metrics, /healthz, /status, /state/NAME, /admin.

Ingest answers 202 `{"accepted": n}` once the events are accepted (with a state directory:
durable); anything else is refused with a JSON `{"error": ...}` and nothing of it is kept:
400 for a malformed body, 413 over a limit (bodies.py), 401 without the ingest token, 404 for
an unknown job, 503 with `Retry-After` while the job cannot take events (no executor yet, a
replay in progress, its backlog full, the job failed: the answer says which, with the job's
state and error), so that a producer retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .app import StreamJob
from .bodies import BodyError, parse_body
from .driver import Driver
from .sources import HttpIngest
from .status import live_executors, status_document
from .tokens import Grant, Tokens, presented

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(driver: Driver, tokens: Tokens) -> web.Application:
    routes = web.RouteTableDef()
    limits = driver.limits

    def reject(label: str, reason: str, message: str, status: int = 400, /,
               **extra: Any) -> web.Response:
        metrics.INGEST_REJECTED.labels(label, reason).inc()
        driver.rejected += 1
        headers = {"Retry-After": "1"} if status == 503 else None
        return web.json_response({"error": message, **extra}, status=status, headers=headers)

    def guarded(need: Grant, endpoint: str) -> Callable[[Handler], Handler]:
        def wrap(handler: Handler) -> Handler:
            async def checked(request: web.Request) -> web.StreamResponse:
                token = presented(request.headers.get("Authorization"),
                                  request.headers.get("X-Neptune-Token"))
                if not tokens.allows(token, need):
                    metrics.HTTP_AUTH_FAILURES.labels(endpoint).inc()
                    what = "missing" if token is None else "wrong"
                    return web.json_response(
                        {"error": f"{what} token: {endpoint} needs the {need} token, as "
                                  "'Authorization: Bearer TOKEN' or 'X-Neptune-Token: TOKEN'"},
                        status=401, headers={"WWW-Authenticate": 'Bearer realm="neptune"'})
                return await handler(request)
            return checked
        return wrap

    @routes.post("/ingest/{job}")
    @guarded("ingest", "ingest")
    async def ingest(request: web.Request) -> web.StreamResponse:
        name = request.match_info["job"]
        job = driver.app.jobs.get(name)
        if not isinstance(job, StreamJob):
            return reject("unknown", "unknown_job", f"no stream job named {name!r}", 404)
        if not isinstance(job.source, HttpIngest):
            return reject(name, "not_http", f"job {name!r} does not take HTTP ingest "
                          f"(its source is {job.source.kind})")
        refusal = driver.streams.refusal(name, 0)
        if refusal is not None:
            reason, answer = refusal
            return reject(name, reason, answer.pop("message"), 503, **answer)
        if not job.source.accepting:
            why = ("no executor has registered with the driver" if not driver.sources_started
                   else "the driver is replaying its ingest log")
            return reject(name, "not_ready", f"job {name!r} is not accepting events yet: {why}",
                          503)
        if request.content_length is not None and request.content_length > limits.max_body:
            return reject(name, "too_large", f"body of {request.content_length} bytes is over "
                          f"the limit of {limits.max_body} (max_body)", 413)
        body = await request.read()
        try:  # off the event loop: a large body must not stall the other requests
            events = await asyncio.to_thread(parse_body, body, request.content_type, limits)
        except BodyError as exc:
            return reject(name, "malformed" if exc.status == 400 else "too_large",
                          f"job {name!r}: {exc}", exc.status)
        refusal = driver.streams.refusal(name, len(events))
        if refusal is not None:
            reason, answer = refusal
            return reject(name, reason, answer.pop("message"), 503, **answer)
        try:
            accepted = await job.source.ingest(events)
        except OSError as exc:
            return reject(name, "not_durable", f"job {name!r}: cannot store the events in the "
                          f"driver's state directory: {exc}", 503)
        return web.json_response({"accepted": accepted}, status=202)

    @routes.get("/metrics")
    async def metrics_page(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    @routes.get("/healthz")
    async def healthz(request: web.Request) -> web.Response:
        # 200 whatever the executors do: this is the driver's liveness, and a driver restarted
        # for its executors' absence would only lose its state
        live = live_executors(driver)
        answer: dict[str, Any] = {"ok": True, "executors": live}
        if not live:
            answer["warning"] = "no live executor: tasks wait until one registers"
        return web.json_response(answer)

    @routes.get("/status")
    @guarded("read", "status")
    async def status(request: web.Request) -> web.StreamResponse:
        return web.json_response(status_document(driver))

    @routes.get("/state/{name}")
    @guarded("read", "state")
    async def state(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in driver.states:
            return web.json_response({"error": f"no shared state named {name!r}"}, status=404)
        version, value = driver.states[name]
        return web.json_response({"name": name, "version": version, "value": value})

    @routes.post("/admin/reset-stats")
    @guarded("ingest", "admin")
    async def reset_stats(request: web.Request) -> web.StreamResponse:
        driver.reset_stats()
        return web.json_response({"ok": True})

    application = web.Application(client_max_size=limits.max_body)
    application.add_routes(routes)
    return application


async def serve(driver: Driver, tokens: Tokens, host: str,
                port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_app(driver, tokens), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound
