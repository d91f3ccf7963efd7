"""Without the tune extra, fine-tuning, sweeps and packaging say which command installs it."""

from __future__ import annotations

import pytest

from podium.errors import ConfigurationError
from podium.tune.extra import INSTALL_HINT, require_tune_extra


def test_a_missing_package_names_the_install_command() -> None:
    require_tune_extra("fine-tuning", ("json",))  # present: nothing happens
    with pytest.raises(ConfigurationError) as e:
        require_tune_extra("podium tune sft", ("json", "no_such_package_podium"))
    assert "podium tune sft needs the tune extra (no_such_package_podium not installed)" in e.value.message
    assert INSTALL_HINT in e.value.message and "cpu" in INSTALL_HINT  # the CPU build of torch first
