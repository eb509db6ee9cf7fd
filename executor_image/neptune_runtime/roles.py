"""The `driver` and `executor` roles as processes (what pods and `neptunectl run` start)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from . import hotpath, tokens, yieldpoint
from .app import App
from .bodies import IngestLimits
from .durable import StateDirError
from .jobconfig import apply_job_settings
from .loader import AppLoadError, load_app
from .policies import NeptuneConfig

log = logging.getLogger("neptune.driver")


def _load(ref: str, role: str) -> object:
    try:
        app = load_app(ref)
    except AppLoadError as exc:
        if exc.detail:
            print(exc.detail, file=sys.stderr, end="")
        print(f"neptunectl {role}: {exc}", file=sys.stderr)
        return None
    # The app's module objects live as long as the process: keep them out of the cyclic
    # collector's scans, whose pauses would land on latency-critical loops.
    gc.freeze()
    return app


def _tokens(tokens_dir: str | None, state_dir: str | None) -> tokens.Tokens:
    """The HTTP tokens: from `tokens_dir`, else kept with the state (so that a restarted driver
    keeps them), else made for this run only; either way the log says where."""
    if tokens_dir:
        return tokens.Tokens(Path(tokens_dir))
    directory = (Path(state_dir) / "tokens" if state_dir
                 else Path(tempfile.mkdtemp(prefix="neptune-tokens-")))
    if not (directory / "ingest").exists():
        tokens.create(directory)
    log.warning("no --tokens-dir: HTTP tokens are in %s (ingest: %s, read: %s)", directory,
                directory / "ingest", directory / "read")
    return tokens.Tokens(directory)


def driver_main(app_ref: str, secret: str, *, host: str, port: int, http_port: int,
                policy: str, ready_file: str | None, priorities_file: str | None,
                jobs_file: str | None = None, state_dir: str | None = None,
                tokens_dir: str | None = None, heartbeat_timeout: float | None = None,
                limits: IngestLimits | None = None, coarse_fraction: float = 0.25,
                upgrade_mode: str = "last-state", generation: str | None = None,
                neptune_config: NeptuneConfig | None = None) -> int:
    from .driver import Driver
    from .http_api import serve

    app = _load(app_ref, "driver")
    if not isinstance(app, App):
        return 3
    problems = _job_settings(app, jobs_file)
    try:
        warm_us = hotpath.warm_from_env()
        driver = Driver(app, secret, policy=policy, neptune_config=neptune_config,
                        priorities_file=priorities_file, state_dir=state_dir, warm_us=warm_us,
                        limits=limits, heartbeat_timeout=heartbeat_timeout,
                        coarse_fraction=coarse_fraction, upgrade_mode=upgrade_mode,
                        generation=generation)
        grants = _tokens(tokens_dir, state_dir)
    except (StateDirError, tokens.TokensError, ValueError) as exc:
        print(f"neptunectl driver: {exc}", file=sys.stderr)
        return 2
    driver.config_problems = problems

    async def main() -> None:
        bound = await driver.start(host, port)
        runner, http_bound = await serve(driver, grants, host, http_port)
        log.info("driver of app %s: executors on port %d, HTTP on port %d, policy %s",
                 app.name, bound, http_bound, policy)
        if ready_file:
            tmp = ready_file + ".tmp"
            with open(tmp, "w") as handle:
                json.dump({"port": bound, "http_port": http_bound, "pid": os.getpid()}, handle)
            os.replace(tmp, ready_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await driver.stop()
        await asyncio.sleep(0.05)  # let the connections' closing bytes leave
        await runner.cleanup()

    asyncio.run(main())
    return 0


def _job_settings(app: App, jobs_file: str | None) -> list[str]:
    """Apply the resource's job settings, if the operator gave us a file of them."""
    if not jobs_file or not os.path.exists(jobs_file):
        return []
    try:
        with open(jobs_file) as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        return [f"cannot read job settings {jobs_file}: {exc}"]
    problems = apply_job_settings(app, document)
    for problem in problems:
        log.warning("job settings: %s", problem)
    return problems


def executor_main(app_ref: str, secret: str, *, driver: str, name: str,
                  metrics_port: int | None, yield_points: bool, cpu: int | None,
                  connect_timeout: float = 30.0) -> int:
    from .executor import run_executor

    app = _load(app_ref, "executor")
    if not isinstance(app, App):
        return 3
    host, _, port = driver.rpartition(":")
    if not host or not port.isdigit():
        print(f"neptunectl executor: --driver must be HOST:PORT, got {driver!r}", file=sys.stderr)
        return 2
    try:
        polling = yieldpoint.Settings.from_env()
    except ValueError as exc:
        print(f"neptunectl executor: {exc}", file=sys.stderr)
        return 2
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return run_executor(app, app_ref, (host, int(port)), secret, name,
                        yield_points=yield_points, metrics_port=metrics_port,
                        polling=polling, connect_timeout=connect_timeout)
