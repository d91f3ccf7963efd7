"""Fixtures for the prompt registry tests: a clean SDK default client and a fake model upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import podium
from tests.gateway.fake_upstream import FakeUpstream


@pytest.fixture(autouse=True)
def clean_sdk() -> Iterator[None]:
    """No default client (and its prompt cache) left behind between tests."""
    podium.shutdown(timeout=2)
    yield
    podium.shutdown(timeout=2)


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    upstream_server.reset()
    return upstream_server
