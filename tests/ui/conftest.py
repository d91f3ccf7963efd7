"""Fixtures of the UI tests: a fake OpenAI-compatible upstream for the playground."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.fake_upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    upstream_server.reset()
    return upstream_server
