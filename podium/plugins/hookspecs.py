"""The hook specifications. Each hook receives a ``register`` callable; a plugin calls it once
per thing it adds. Signatures of ``register``:

- ``register_scorers``: ``register(type_name, factory, *, category="custom", description="")``;
  ``factory(**params)`` builds a :class:`podium.evals.scorers.Scorer`.
- ``register_providers``: ``register(name, factory)``; ``factory(settings)`` returns an object
  implementing :class:`podium.gateway.providers.base.Provider`.
- ``register_guardrails``: ``register(name, factory, *, kinds=("input", "output"), description="")``;
  ``factory(**params)`` builds a :class:`podium.guardrails.base.Scanner`.
- ``register_alert_channels``: ``register(name, factory, *, description="")``; ``factory(**params)``
  builds a :class:`podium.alerts.Channel` (``send(alert) -> Delivery``).
- ``register_probes``: ``register(name, source, *, family=None)``; ``source`` is a YAML file's path
  or its content (a dict, or a list of probes): a red-team probe set (:mod:`podium.redteam.probes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "podium"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., Any]


@hookspec
def register_scorers(register: Register) -> None:
    """Register assertion types: ``register("word-count-between", WordCountBetween, category="custom")``."""


@hookspec
def register_providers(register: Register) -> None:
    """Register gateway providers: ``register("echo", lambda settings: EchoProvider())``."""


@hookspec
def register_guardrails(register: Register) -> None:
    """Register guardrail scanners: ``register("no-pirates", NoPirates, kinds=("output",))``."""


@hookspec
def register_alert_channels(register: Register) -> None:
    """Register alert channels: ``register("file", FileChannel, description="JSON lines to a file")``."""


@hookspec
def register_probes(register: Register) -> None:
    """Register red-team probe sets: ``register("my-injections", Path(__file__).parent / "probes.yaml")``."""
