"""podium's top level is the SDK facade: its __all__ is exactly its public names."""

from __future__ import annotations

import podium
import podium.openai
import podium.sdk


def public_names(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("podium")
    }


def test_all_is_sorted_and_complete() -> None:
    assert podium.__all__ == sorted(podium.__all__)
    assert set(podium.__all__) == public_names(podium) | {"__version__"}
    assert podium.__version__ == "0.1.0"
    for name in podium.__all__:
        assert hasattr(podium, name), name


def test_sdk_package_matches_the_facade() -> None:
    # evaluate and guard are the facade's own: they load podium.experiments / podium.guardrails, layers
    # above the SDK, on first use
    assert set(podium.sdk.__all__) == set(podium.__all__) - {"__version__", "evaluate", "guard"}
    assert podium.openai.__all__ == ["AsyncOpenAI", "OpenAI"]


def test_expected_surface() -> None:
    assert set(podium.__all__) == {
        "Dataset",
        "FlushResult",
        "Podium",
        "Prompt",
        "Span",
        "__version__",
        "configure",
        "create_dataset",
        "create_prompt",
        "create_score",
        "evaluate",
        "feedback",
        "flush",
        "get_client",
        "get_current_span_id",
        "get_current_trace_id",
        "get_dataset",
        "get_prompt",
        "guard",
        "observe",
        "propagate_attributes",
        "shutdown",
        "span",
        "update_current_span",
        "update_current_trace",
        "wrap_context",
    }
