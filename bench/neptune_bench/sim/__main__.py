"""`python -m neptune_bench.sim`: cluster-scale scenarios, validation, the decision benchmark.

  scenarios  [--only paper75|large1000] [--out DIR]   every policy at 75 and 1000 executors
  validate   [--sizes 1,2,4] [--measure 15] [--out DIR] against the real runtime (takes minutes)
  decisions  [--executors 1000] [--out DIR]            one policy call on a large snapshot
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import decision_bench, validate
from .scenarios import SCENARIOS, run_scenario


def _cell(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scenarios_markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Simulated clusters", "",
             "The runtime's own policy functions over simulated executors (one slot each).", ""]
    for result in results:
        lines += [f"## {result['scenario']} ({result['simulated_s']:g} s simulated)", "",
                  "| policy | stream p50 ms | stream p99 ms | batch throughput (rel.) | "
                  "suspensions | kills | wasted task s | suspended memory avg / max MiB | "
                  "policy call mean us |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for policy, row in result["policies"].items():
            lines.append(
                f"| {policy} | {_cell(row['stream_p50_ms'])} | {_cell(row['stream_p99_ms'])} | "
                f"{_cell(row['batch_throughput_rel'], 3)} | {row['suspensions']} | "
                f"{row['kills']} | {_cell(row['wasted_task_seconds'], 1)} | "
                f"{row['suspended_memory_avg_mib']:.0f} / {row['suspended_memory_max_mib']:.0f} | "
                f"{row['timing']['policy_mean_us']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("scenarios", "validate", "decisions"))
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--only", choices=tuple(SCENARIOS), default=None)
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--measure", type=float, default=15.0)
    parser.add_argument("--executors", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=200)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.command == "validate":
        return validate.main(args.out, tuple(int(s) for s in args.sizes.split(",")),
                             args.measure)
    if args.command == "decisions":
        return decision_bench.main(["--executors", str(args.executors), "--repetitions",
                                    str(args.repetitions), "--json",
                                    os.path.join(args.out, "sim_decisions.json")])
    names = [args.only] if args.only else list(SCENARIOS)
    results = [run_scenario(SCENARIOS[name](), log=sys.stderr) for name in names]
    with open(os.path.join(args.out, "sim.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    text = scenarios_markdown(results)
    with open(os.path.join(args.out, "sim.md"), "w") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
