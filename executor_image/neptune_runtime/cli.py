"""`neptunectl`: run (embedded local mode), driver, executor, bench, operator."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any

from .bodies import (
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_EVENTS,
    IngestLimits,
)
from .durations import parse_duration
from .policies import POLICIES

STATE_DIR_HELP = ("keep committed offsets and accepted ingest events in this directory, so that "
                  "a restarted driver resumes without losing events (default: in memory)")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _secret(role: str) -> str:
    secret = os.environ.get("NEPTUNE_SECRET")
    if not secret:
        raise SystemExit(f"neptunectl {role}: set NEPTUNE_SECRET (the app's shared secret)")
    return secret


TOKENS_HELP = ("directory holding the HTTP tokens, files `ingest` and `read` (see "
               "docs/architecture.md)")
LIMITS = [
    ("--max-events", "NEPTUNE_INGEST_MAX_EVENTS", str(DEFAULT_MAX_EVENTS),
     "most events one ingest request may carry (more: 413)"),
    ("--max-depth", "NEPTUNE_INGEST_MAX_DEPTH", str(DEFAULT_MAX_DEPTH),
     "deepest JSON nesting an ingest request may have (deeper: 400)"),
    ("--max-body", "NEPTUNE_INGEST_MAX_BODY", str(DEFAULT_MAX_BODY),
     "largest ingest request body, in bytes (larger: 413)"),
    ("--max-backlog", "NEPTUNE_MAX_BACKLOG", str(DEFAULT_MAX_BACKLOG),
     "most events a job may have in flight (accepted, not yet handed on); ingest beyond "
     "it answers 503 and a log replay waits"),
]


def _positive(value: str | None) -> int:
    if value is None or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def _duration(value: str) -> float:
    try:
        return parse_duration(value, what="--duration")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from .liveview import render, summary
    from .processes import LocalCluster, StartError

    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = LocalCluster(args.app, executors=args.executors, policy=args.policy,
                           http_port=args.http_port, state_dir=args.state_dir,
                           tokens_dir=args.tokens_dir)
    try:
        cluster.start()
    except StartError as exc:
        cluster.stop()
        print(f"neptunectl run: {exc}", file=sys.stderr)
        return 1
    print(f"neptunectl run: {args.app} with {args.executors} executor(s), policy "
          f"{args.policy}; status at {cluster.http}/status\n"
          f"neptunectl run: HTTP ingest token {cluster.tokens['ingest']} (in "
          f"{cluster.tokens_dir}/ingest, mode 0600; the read token is beside it), e.g.\n"
          f"  curl -H \"Authorization: Bearer $(cat {cluster.tokens_dir}/ingest)\" "
          f"{cluster.http}/status", file=sys.stderr)
    began = time.monotonic()
    tty = sys.stdout.isatty() and not args.no_live
    last_print = 0.0
    status: dict[str, Any] | None = None
    code = 0
    try:
        while not stop["flag"]:
            elapsed = time.monotonic() - began
            if args.duration and elapsed >= args.duration:
                break
            dead = cluster.exited()
            if "driver" in dead:
                print(f"neptunectl run: the driver exited with code {dead['driver']}",
                      file=sys.stderr)
                code = 1
                break
            for line in cluster.revive(time.monotonic()):
                print(f"neptunectl run: {line}", file=sys.stderr)
            try:
                status = cluster.status()
            except OSError:
                status = None
            if status is not None:
                if tty:
                    sys.stdout.write("\x1b[H\x1b[2J" + render(status, elapsed, args.duration)
                                     + "\n")
                    sys.stdout.flush()
                elif elapsed - last_print >= args.print_every:
                    print(render(status, elapsed, args.duration), flush=True)
                    last_print = elapsed
            time.sleep(1.0 if tty else 0.25)
        with contextlib.suppress(OSError):
            status = cluster.status()
    finally:
        codes = cluster.stop()
    if status is not None:
        print(summary(status, time.monotonic() - began), flush=True)
        failed = [n for n, job in status["jobs"].items() if job["state"] == "failed"]
        if failed and code == 0:
            print(f"neptunectl run: job(s) failed: {', '.join(failed)}", file=sys.stderr)
            code = 1
    leftovers = {n: c for n, c in codes.items() if c not in (0, -signal.SIGTERM)}
    if leftovers and code == 0:
        print(f"neptunectl run: processes exited abnormally: {leftovers}", file=sys.stderr)
    return code


def cmd_driver(args: argparse.Namespace) -> int:
    from .roles import driver_main

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    return driver_main(args.app, _secret("driver"), host=args.host, port=args.port,
                       http_port=args.http_port, policy=args.policy, ready_file=args.ready_file,
                       priorities_file=args.priorities, jobs_file=args.jobs,
                       state_dir=args.state_dir, tokens_dir=args.tokens_dir,
                       heartbeat_timeout=args.heartbeat_timeout,
                       coarse_fraction=args.coarse_fraction,
                       upgrade_mode=args.upgrade_mode, generation=args.generation,
                       limits=IngestLimits(max_depth=args.max_depth,
                                           max_events=args.max_events,
                                           max_body=args.max_body,
                                           max_backlog=args.max_backlog))


def cmd_executor(args: argparse.Namespace) -> int:
    if args.slots > 1:  # the supervisor must not import the runtime's metrics: it only serves
        from .slots import supervise

        passthrough = ["--app", args.app, "--driver", args.driver]
        if not args.yield_points:
            passthrough.append("--no-yield-points")
        return supervise(args.slots, args.name, args.metrics_port, passthrough)
    from .roles import executor_main

    return executor_main(args.app, _secret("executor"), driver=args.driver, name=args.name,
                         metrics_port=args.metrics_port, yield_points=args.yield_points,
                         cpu=args.cpu, connect_timeout=args.connect_timeout)


def cmd_bench(args: argparse.Namespace) -> int:
    # The benchmarks are a separate package (bench/neptune_bench), left out of the image.
    try:
        from neptune_bench.runner import main as bench_main
    except ModuleNotFoundError as exc:
        if exc.name != "neptune_bench":
            raise
        print("neptunectl bench: the benchmark package neptune_bench is not installed; in a "
              "checkout, run `make bench-setup` (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    return bench_main(args)


def cmd_operator(args: argparse.Namespace) -> int:
    return run_operator(args.rest)


def run_operator(argv: list[str]) -> int:
    try:
        from neptune_operator.main import main as operator_main
    except ImportError as exc:
        print(f"neptunectl operator: the operator is not installed ({exc}); "
              "install with `pip install neptune-k8s[operator]`", file=sys.stderr)
        return 2
    return operator_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neptunectl", description=__doc__)
    parser.add_argument("--log-level", default=_env("NEPTUNE_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)
    policies = list(POLICIES)

    run = sub.add_parser("run", help="run an app locally: a driver and N executor processes")
    run.add_argument("app", help="path of the app module (a .py file) or a module name")
    run.add_argument("--executors", type=int, default=2)
    run.add_argument("--policy", choices=policies, default="neptune")
    run.add_argument("--duration", type=_duration, default=None,
                     help="stop after this long (e.g. 30s); default: until Ctrl-C")
    run.add_argument("--http-port", type=int, default=0, help="driver HTTP port (0: any)")
    run.add_argument("--state-dir", default=None, help=STATE_DIR_HELP)
    run.add_argument("--tokens-dir", default=None, help=TOKENS_HELP + " (default: a new "
                     "private directory, printed at start)")
    run.add_argument("--no-live", action="store_true", help="no full-screen live view")
    run.add_argument("--print-every", type=float, default=5.0,
                     help="seconds between status prints when not on a terminal")
    run.set_defaults(func=cmd_run)

    driver = sub.add_parser("driver", help="the driver role (in a pod); secret in NEPTUNE_SECRET")
    driver.add_argument("--app", default=_env("NEPTUNE_APP"), required=not _env("NEPTUNE_APP"))
    driver.add_argument("--host", default=_env("NEPTUNE_HOST", "0.0.0.0"))
    driver.add_argument("--port", type=int, default=int(_env("NEPTUNE_PORT", "7077") or 0))
    driver.add_argument("--http-port", type=int,
                        default=int(_env("NEPTUNE_HTTP_PORT", "8080") or 0))
    driver.add_argument("--policy", choices=policies, default=_env("NEPTUNE_POLICY", "neptune"))
    driver.add_argument("--priorities", default=_env("NEPTUNE_PRIORITIES_FILE"),
                        help="JSON file {'jobs': {name: priority}} kept up to date by the operator")
    driver.add_argument("--jobs", default=_env("NEPTUNE_JOBS_FILE"),
                        help="JSON job settings from the resource, applied over the module's")
    driver.add_argument("--state-dir", default=_env("NEPTUNE_STATE_DIR"), help=STATE_DIR_HELP)
    driver.add_argument("--tokens-dir", default=_env("NEPTUNE_TOKENS_DIR"), help=TOKENS_HELP)
    driver.add_argument("--heartbeat-timeout", type=_duration,
                        default=_duration(_env("NEPTUNE_HEARTBEAT_TIMEOUT", "10s") or "10s"),
                        help="declare an executor lost, and re-run its tasks, when it is not "
                             "heard from for this long (default 10s)")
    driver.add_argument("--upgrade-mode", choices=["last-state", "stateless"],
                        default=_env("NEPTUNE_UPGRADE_MODE", "last-state"),
                        help="stateless: a driver of a new --generation starts keyed jobs with "
                             "empty state, from their source's committed offsets")
    driver.add_argument("--generation", default=_env("NEPTUNE_SPEC_GENERATION"),
                        help="the resource's spec generation (set by the operator)")
    driver.add_argument("--coarse-fraction", type=float,
                        default=float(_env("NEPTUNE_COARSE_FRACTION", "0.25") or 0.25),
                        help="warn about a batch job whose tasks go longer than this fraction "
                             "of the tightest stream SLO between yield points (default 0.25)")
    for flag, variable, default, what in LIMITS:
        driver.add_argument(flag, type=_positive, default=_positive(_env(variable, default)),
                            help=f"{what} (default {default}; {variable})")
    driver.add_argument("--ready-file", default=None)
    driver.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    driver.set_defaults(func=cmd_driver)

    executor = sub.add_parser("executor", help="the executor role (one slot, one process)")
    executor.add_argument("--app", default=_env("NEPTUNE_APP"), required=not _env("NEPTUNE_APP"))
    executor.add_argument("--driver", default=_env("NEPTUNE_DRIVER"),
                          required=not _env("NEPTUNE_DRIVER"), help="HOST:PORT of the driver")
    executor.add_argument("--name", default=_env("NEPTUNE_EXECUTOR_NAME",
                                                 _env("HOSTNAME", "executor")))
    executor.add_argument("--metrics-port", type=int,
                          default=int(m) if (m := _env("NEPTUNE_METRICS_PORT")) else None)
    executor.add_argument("--no-yield-points", dest="yield_points", action="store_false",
                          help="do not wrap task inputs (only to measure yield-point cost)")
    executor.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    executor.add_argument("--connect-timeout", type=_duration,
                          default=_duration(_env("NEPTUNE_CONNECT_TIMEOUT", "30s") or "30s"),
                          help="how long to keep trying to reach and authenticate with the "
                               "driver before exiting (default 30s)")
    executor.add_argument("--slots", type=int, default=int(_env("NEPTUNE_SLOTS", "1") or 1),
                          help="executor processes to run (one per core); their metrics are "
                               "served together on --metrics-port")
    executor.set_defaults(func=cmd_executor)

    bench = sub.add_parser("bench", help="the suspension benchmark (DESIGN.md section 7)")
    bench.add_argument("--quick", action="store_true", help="the 60-second version")
    bench.add_argument("--json", default=None, help="write the figures to this JSON file")
    bench.add_argument("--markdown", default=None, help="write the table to this file")
    bench.add_argument("--peers", action="store_true",
                       help="also run the peers (spark_fair, dask_priority, os_priority)")
    bench.add_argument("--full", action="store_true",
                       help="the full suite: sweeps, repetitions, report and plots in --out")
    bench.add_argument("--out", default="bench/results", help="directory of the full suite")
    bench.add_argument("--repetitions", type=int, default=3, help="full suite: runs per point")
    bench.add_argument("--budget", type=_duration, default=45 * 60.0,
                       help="full suite: stop starting new runs after this long (e.g. 40m)")
    bench.set_defaults(func=cmd_bench)

    operator = sub.add_parser("operator", help="start the kopf operator")
    operator.add_argument("rest", nargs=argparse.REMAINDER)
    operator.set_defaults(func=cmd_operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["operator"]:  # its own options (argparse REMAINDER refuses "--x" there)
        return run_operator(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
