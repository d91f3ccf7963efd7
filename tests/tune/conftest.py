"""Fixtures the tune tests share: the bundled SmolLM2 converted once per session into a
Hugging Face folder (``ensure_base_model``; ~20-30 s, so every test that needs it shares one)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hf_base(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The bundled SmolLM2-135M-Instruct as a Hugging Face folder (config, tokenizer, fp32 safetensors),
    under ``<home>/models/base/``. The home is shared by the xdist workers of a run (the parent of
    their temp dirs): ``ensure_base_model``'s file lock makes one convert and the other wait."""
    from podium.config import Settings
    from podium.tune.base_model import ensure_base_model

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    home = root / "tune-base-home"
    home.mkdir(exist_ok=True)
    return ensure_base_model(Settings(home=home))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test to use ``hf_base`` converts the model in its setup (~30 s alone, minutes on a
    busy machine): those tests get 300 s instead of the suite's 120 s unless they set more."""
    for item in items:
        if "hf_base" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(300))
