"""An app module that fails at import: the runtime must say so plainly."""

import neptune_runtime_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401
