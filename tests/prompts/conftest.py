"""Fixtures for the prompt registry tests: a clean SDK default client and a fake model upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import podium


@pytest.fixture(autouse=True)
def clean_sdk() -> Iterator[None]:
    """No default client (and its prompt cache) left behind between tests."""
    podium.shutdown(timeout=2)
    yield
    podium.shutdown(timeout=2)


