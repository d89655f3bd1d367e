"""Import optional dependencies with a message that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlcycle.exceptions import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise a :class:`MissingDependencyError` naming ``extra``.

    Parameters
    ----------
    module
        Dotted module name, e.g. ``"mlflow"``.
    extra
        The optional dependency group of mlcycle that provides it, e.g. ``"train"``.

    Returns
    -------
    ModuleType
        The imported module.

    Examples
    --------
    >>> require("json", "train").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"'{module}' is not installed; it comes with mlcycle's '{extra}' extra. "
            f"Install it with: pip install 'mlcycle[{extra}]'"
        ) from exc
