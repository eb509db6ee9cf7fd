"""The driver's HTTP side: event ingest, /metrics, /healthz, /status."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .app import StreamJob
from .driver import Driver
from .sources import HttpIngest, parse_body
from .status import status_document

MAX_BODY = 8 * 1024 * 1024


def make_app(driver: Driver) -> web.Application:
    routes = web.RouteTableDef()

    def reject(job: str, reason: str, message: str, status: int = 400) -> web.Response:
        metrics.INGEST_REJECTED.labels(job, reason).inc()
        driver.rejected += 1
        return web.json_response({"error": message}, status=status)

    @routes.post("/ingest/{job}")
    async def ingest(request: web.Request) -> web.Response:
        name = request.match_info["job"]
        job = driver.app.jobs.get(name)
        if not isinstance(job, StreamJob):
            return reject("unknown", "unknown_job", f"no stream job named {name!r}", 404)
        if not isinstance(job.source, HttpIngest):
            return reject(name, "not_http", f"job {name!r} does not take HTTP ingest "
                          f"(its source is {job.source.kind})")
        if not job.source.accepting:
            return web.json_response(
                {"error": f"job {name!r} is not accepting events yet: no executor has "
                          "registered with the driver"}, status=503, headers={"Retry-After": "1"})
        body = await request.read()
        try:
            events = parse_body(body, request.content_type)
        except (ValueError, UnicodeDecodeError) as exc:
            return reject(name, "malformed", f"job {name!r}: {exc}")
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
        return web.json_response({"ok": True})

    @routes.get("/status")
    async def status(request: web.Request) -> web.Response:
        return web.json_response(status_document(driver))

    @routes.get("/state/{name}")
    async def state(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in driver.states:
            return web.json_response({"error": f"no shared state named {name!r}"}, status=404)
        version, value = driver.states[name]
        return web.json_response({"name": name, "version": version, "value": value})

    @routes.post("/admin/reset-stats")
    async def reset_stats(request: web.Request) -> web.Response:
        driver.reset_stats()
        return web.json_response({"ok": True})

    application = web.Application(client_max_size=MAX_BODY)
    application.add_routes(routes)
    return application


async def serve(driver: Driver, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_app(driver), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: int = runner.addresses[0][1]
    return runner, bound
