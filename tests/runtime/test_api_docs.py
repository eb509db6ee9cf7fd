"""Every public name of the API reference's modules (docs/api/index.md) has a docstring, and the
reference builds without a warning (mkdocs --strict)."""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "api" / "index.md"


def modules() -> list[str]:
    return re.findall(r"^::: ([\w.]+)$", REFERENCE.read_text(), re.MULTILINE)


def undocumented(name: str) -> list[str]:
    module = importlib.import_module(name)
    missing = [] if module.__doc__ else [name]
    for attr, value in vars(module).items():
        if attr.startswith("_") or getattr(value, "__module__", None) != name:
            continue
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not inspect.getdoc(value):
            missing.append(f"{name}.{attr}")
        if inspect.isclass(value):
            for method, member in vars(value).items():
                if method.startswith("_") or not callable(member):
                    continue
                if not (member.__doc__ or inspect.getdoc(getattr(value, method))):
                    missing.append(f"{name}.{attr}.{method}")
    return missing


def test_every_public_name_of_the_reference_is_documented() -> None:
    names = modules()
    assert "neptune_runtime.datasets" in names and "neptune_runtime.app" in names
    missing = [m for name in names for m in undocumented(name)]
    assert not missing, f"public names without a docstring: {missing}"


def test_the_reference_builds_without_warnings(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is not installed: `make setup` installs the dev extra"
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "api" / "index.html").exists()
