"""The spread of several quick runs (`neptunectl bench --quick --json ...`), as Markdown.

This machine is noisy: one quick run says little on its own. Given the JSON of several runs,
this writes per shape and per system the stream p99, the batch throughput and the neptune
targets of each run, with their median and range:

    python -m neptune_bench.runs run1.json run2.json run3.json > results/quick_runs.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .report import kind_rows
from .suite_report import BATCH_ALONE, figure, run_rows
from .summary import spread

METRICS = (("stream_p99_ms", "stream p99 ms", 1), ("batch_throughput_rel",
                                                   "batch throughput (rel.)", 3))


def shape_rows(result: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """One run -> {shape: {system: row}}, the kind shape first (suite_report.run_rows)."""
    out = {"kind": kind_rows(result)}
    for name, shape in result.get("shapes", {}).items():
        out[name] = run_rows(shape)
    return out


def _run_label(result: dict[str, Any], name: str) -> str:
    load = result.get("machine", {}).get("loadavg_at_end")
    return f"{name} (load {load[0]:.1f})" if load else name


def markdown(results: list[tuple[str, dict[str, Any]]]) -> str:
    """`results`: (name, quick result) per run, in the order they ran."""
    per_run = [(name, shape_rows(result)) for name, result in results]
    shapes = list(dict.fromkeys(s for _, rows in per_run for s in rows))
    heads = " | ".join(_run_label(result, name) for name, result in results)
    lines = ["# Quick runs side by side", "",
             f"{len(results)} runs of `neptunectl bench --quick --peers`; each cell one run's "
             "figure, then the median [min-max] over the runs that have it. Load average (1 "
             "min) at each run's end in the heading.", ""]
    for shape in shapes:
        for key, title, digits in METRICS:
            lines += [f"## {shape}: {title}", "",
                      f"| system | {heads} | median [min-max] |",
                      "|---|" + "---:|" * (len(results) + 1)]
            systems = list(dict.fromkeys(
                s for _, rows in per_run for s in rows.get(shape, {}) if s != BATCH_ALONE))
            for system in systems:
                values = [rows.get(shape, {}).get(system, {}).get(key) for _, rows in per_run]
                if all(v is None for v in values):
                    continue
                cells = " | ".join(figure(v, digits) for v in values)
                lines.append(f"| {system} | {cells} | {figure(spread(values), digits)} |")
            lines.append("")
    names = list(dict.fromkeys(t for _, result in results for t in result.get("targets", {})))
    lines += ["## Targets met", "", f"| target | {heads} |", "|---|" + "---|" * len(results)]
    for target in names:
        verdicts = []
        for _, result in results:
            check = result.get("targets", {}).get(target)
            value = check and check["value"]
            digits = 3 if value is not None and abs(value) < 10 else 1
            verdicts.append("-" if check is None else
                            f"{'yes' if check['ok'] else 'NO'} ({figure(value, digits)})")
        lines.append(f"| {target} | " + " | ".join(verdicts) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="JSON of quick runs, in the order they ran")
    args = parser.parse_args(argv)
    results = []
    for path in args.runs:
        with open(path) as handle:
            results.append((os.path.splitext(os.path.basename(path))[0], json.load(handle)))
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
