"""`neptunectl operator [--namespace NS ...] [--liveness URL] [--verbose]`: run the operator.

One replica (the chart's Deployment uses Recreate), so kopf runs standalone, without peering.
"""

from __future__ import annotations

import argparse
import logging
import os


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neptunectl operator")
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="watch only this namespace (repeatable; default: "
                             "$NEPTUNE_WATCH_NAMESPACES, else all namespaces)")
    parser.add_argument("--liveness", default=os.environ.get(
        "NEPTUNE_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="kopf liveness endpoint ('' to disable)")
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    # `neptunectl operator -- --namespace x`: the CLI hands over everything after "operator".
    return build_parser().parse_args(argv[1:] if argv[:1] == ["--"] else argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # One INFO line per handler run per app is noise at 500 apps; our Events tell the story.
        for noisy in ("kopf.objects", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    namespaces = args.namespace or [
        n for n in os.environ.get("NEPTUNE_WATCH_NAMESPACES", "").split(",") if n]
    # Imported here: importing registers the handlers with kopf's default registry.
    import kopf

    from . import handlers

    handlers.WATCHED = tuple(namespaces)

    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness or None,
    )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
