"""`neptunectl bench` where neptune_bench is not installed (the container image): exit 2, and say
how to install it."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# -I -S: no PYTHON* variables and no site module, so no .pth file runs and the editable
# install's finder, which maps neptune_bench to bench/, is not there; the runtime and its
# dependencies are put on the path as plain directories, as in the image.
PROGRAM = """
import sys
sys.path[:0] = sys.argv[1:]
from neptune_runtime.cli import main
try:
    import neptune_bench
except ModuleNotFoundError:
    pass
else:
    raise SystemExit(f"neptune_bench is importable from {neptune_bench.__file__}")
sys.exit(main(["bench", "--quick"]))
"""


def test_bench_without_the_package_exits_2_and_says_how_to_install() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROGRAM, str(ROOT / "executor_image"),
         sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]],
        capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "make bench-setup" in proc.stderr
    assert "Traceback" not in proc.stderr
