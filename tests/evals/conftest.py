"""Fixtures for the evaluation tests: no SDK default client left behind between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import podium


@pytest.fixture(autouse=True)
def clean_sdk() -> Iterator[None]:
    podium.shutdown(timeout=2)
    yield
    podium.shutdown(timeout=2)
