"""The `tune` extra: what fine-tuning, sweeps and packaging need, and the one message that names
the command installing it when it is missing (torch first, as a CPU build, or pip pulls a
multi-GB CUDA build)."""

from __future__ import annotations

import importlib.util

from podium.errors import ConfigurationError

__all__ = ["INSTALL_HINT", "require_tune_extra"]

INSTALL_HINT = ("pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install 'podium[tune]' "
                "(a GPU machine: plain pip install 'podium[tune]'; from a checkout, make setup installs it)")
_MODULES = ("torch", "transformers", "peft", "trl", "datasets", "gguf", "optuna")


def require_tune_extra(what: str, modules: tuple[str, ...] = _MODULES) -> None:
    """``ConfigurationError`` naming the install command when any of ``modules`` is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigurationError(f"{what} needs the tune extra ({', '.join(missing)} not installed): {INSTALL_HINT}")
