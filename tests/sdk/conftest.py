"""Fixtures for the SDK tests: a fake ingest endpoint and a clean default client per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import podium
from tests.sdk.sdk_fakes import FakeIngest, HttpIngest, make_client


@pytest.fixture(autouse=True)
def clean_sdk() -> Iterator[None]:
    """No default client left behind (tests/conftest.py already clears PODIUM_* variables)."""
    podium.shutdown(timeout=2)
    yield
    podium.shutdown(timeout=2)


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    fake = FakeIngest()
    yield fake
    if fake.gate is not None:
        fake.gate.set()
    podium.shutdown(timeout=2)
    fake.client.close()


@pytest.fixture
def client(ingest: FakeIngest) -> podium.Podium:
    """The default client, sending to ``ingest``."""
    return make_client(ingest)


@pytest.fixture
def http_ingest() -> Iterator[HttpIngest]:
    server = HttpIngest()
    yield server
    podium.shutdown(timeout=2)
    server.close()
