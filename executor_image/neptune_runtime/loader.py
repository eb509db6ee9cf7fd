"""Loading the application module named by a path or a dotted module name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path

from .app import App


class AppLoadError(Exception):
    """The app module could not be imported or exposes no App. `cause` is one line."""

    def __init__(self, ref: str, cause: str, detail: str = "") -> None:
        super().__init__(f"cannot load app {ref!r}: {cause}")
        self.cause = cause
        self.detail = detail


def load_app(ref: str) -> App:
    try:
        if ref.endswith(".py") or "/" in ref:
            path = Path(ref)
            if not path.is_file():
                raise AppLoadError(ref, f"no such file {path}")
            name = f"neptune_app_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise AppLoadError(ref, "not a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(ref)
    except AppLoadError:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(ref, f"{type(exc).__name__}: {exc}", traceback.format_exc()) from exc
    app = getattr(module, "app", None)
    if not isinstance(app, App):
        found = [n for n, v in vars(module).items() if isinstance(v, App)]
        if len(found) != 1:
            raise AppLoadError(ref, "the module must define `app = App(...)`")
        app = getattr(module, found[0])
    if not app.jobs:
        raise AppLoadError(ref, f"app {app.name!r} declares no jobs")
    return app
