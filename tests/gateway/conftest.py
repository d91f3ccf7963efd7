"""Fixtures shared by the gateway tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, ProjectKeys
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.openai_app import serve


@pytest.fixture
def openai_gateway(store: Any, project: ProjectKeys, upstream: FakeUpstream,
            podium_home: Path) -> Iterator[Callable[..., LiveServer]]:
    """``openai_gateway(cache=..., mode=...)`` starts a server whose ``fake`` alias is the fake
    upstream (tests/gateway/openai_app.py); every server started is stopped after the test."""
    started: list[LiveServer] = []

    def make(**kw: Any) -> LiveServer:
        srv = serve(store, project, upstream, podium_home, **kw)
        started.append(srv)
        return srv

    yield make
    for s in started:
        s.thread.stop()
