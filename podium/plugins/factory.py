"""Building a plugin-registered thing (a guardrail scanner, an alert channel) from a config's
``type`` and ``params``: one place for the 400s that say what exists and what it accepts."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from podium.errors import ValidationFailed

__all__ = ["build_registered"]

T = TypeVar("T")


def build_registered(what: str, name: str, factories: Mapping[str, Callable[..., T]], params: Any,
                     *, where: str, unknown: str | None = None) -> T:
    """``factories[name](**params)``. An unknown ``name``, params that are not a mapping, and a
    factory that refuses its params (TypeError / ValueError) are a :class:`ValidationFailed`
    naming ``what`` (e.g. "guardrail scanner"; ``unknown`` overrides it in the unknown-name
    message) and the known names or accepted parameters."""
    factory = factories.get(name)
    if factory is None:
        raise ValidationFailed(
            f"unknown {unknown or what} {name!r}; use one of {', '.join(sorted(factories))} "
            "(or install the plugin that provides it: see docs/plugins.md)",
            details=[{"loc": where, "msg": f"unknown {unknown or what}", "type": name}])
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValidationFailed(f"params for {what} {name!r} must be a mapping, not {params!r}",
                               details=[{"loc": where, "msg": "params must be a mapping", "type": name}])
    try:
        return factory(**params)
    except TypeError as e:
        try:
            accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
        except (TypeError, ValueError):
            accepted = []
        raise ValidationFailed(
            f"bad params for {what} {name!r}: {e}; it accepts {', '.join(accepted) or 'no params'}",
            details=[{"loc": where, "msg": str(e), "type": name}]) from e
    except ValueError as e:
        raise ValidationFailed(f"bad params for {what} {name!r}: {e}",
                               details=[{"loc": where, "msg": str(e), "type": name}]) from e
