"""The `explain` extra: the one message that names the command installing it when a method's
library is missing."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from podium.errors import ConfigurationError

__all__ = ["INSTALL_HINT", "quiet_import", "require"]

INSTALL_HINT = "pip install 'podium[explain]' (from a checkout, make setup installs it)"


def require(method: str, *modules: str) -> None:
    """``ConfigurationError`` naming ``pip install 'podium[explain]'`` when any of ``modules`` is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigurationError(f"the {method} explanation needs {', '.join(missing)}, which is not installed: "
                                 f"{INSTALL_HINT}")


@contextmanager
def quiet_import() -> Iterator[None]:
    """Import shap, lime or captum without their import-time warnings (matplotlib's colormap
    deprecations, numba's): they are about those libraries' own code, not ours, and the test
    suite turns every warning into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
