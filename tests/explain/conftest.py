"""Fixtures the explanation tests share: the bundled SmolLM2 as a Hugging Face folder (for
integrated gradients), converted once per run into the same home the tune tests use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def hf_loaded(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Any, Any]:
    """(model, tokenizer) of the bundled SmolLM2 through transformers (``load_hf_model``); the
    conversion runs once per test run (file-locked, shared with tests/tune's ``hf_base``)."""
    from podium.config import Settings
    from podium.explain import load_hf_model

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    home: Path = root / "tune-base-home"
    home.mkdir(exist_ok=True)
    return load_hf_model(settings=Settings(home=home))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test to use ``hf_loaded`` converts the model in its setup (~30 s alone, minutes on
    a busy machine): those tests get 400 s unless they set more."""
    for item in items:
        if "hf_loaded" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(400))
