"""The scorer contract: declared fields, MissingField, result wrapping, thresholds, `not-`, the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podium.errors import BadRequest, PodiumError
from podium.evals import (
    FunctionScorer,
    MissingField,
    Score,
    Scorer,
    ScorerConfigError,
    ScorerError,
    UnknownScorer,
    as_scorer,
    get_scorer,
    register_scorer,
    scorer,
    scorer_from_assertion,
    scorer_specs,
    scorer_types,
)
from podium.evals.scorers.base import COMMON_PARAMS, to_score

ROOT = Path(__file__).resolve().parents[2]


# --- function scorers: fields by parameter name ------------------------------------------------


def test_function_declares_required_and_optional_fields() -> None:
    seen: list[dict[str, Any]] = []

    def f(output, expected, metadata=None):  # type: ignore[no-untyped-def]
        seen.append({"output": output, "expected": expected, "metadata": metadata})
        return output == expected

    s = as_scorer(f)
    assert s.name == "f"
    assert s.fields == ("output", "expected", "metadata")
    assert s.required == {"output", "expected"}
    r = s.score({"input": "ignored", "output": "a", "expected": "a", "trace": {"x": 1}})
    assert r == Score(True, True, None, "f")
    assert seen == [{"output": "a", "expected": "a", "metadata": None}]  # only declared fields are passed


def test_missing_required_field_names_the_field() -> None:
    s = as_scorer(lambda output, expected: 1.0)
    with pytest.raises(MissingField) as ei:
        s.score({"output": "x"})
    assert ei.value.field == "expected"
    assert "`expected`" in str(ei.value) and "lambda" in str(ei.value)
    assert isinstance(ei.value, BadRequest) and ei.value.code == "missing_field"
    with pytest.raises(MissingField):
        s.score({"output": "x", "expected": None})  # None counts as absent


def test_score_batch_records_per_item_errors_and_keeps_going() -> None:
    def f(output, expected):  # type: ignore[no-untyped-def]
        if output == "boom":
            raise RuntimeError("kaput")
        return len(output) / len(expected)

    results = as_scorer(f).score_batch(
        [{"output": "ab", "expected": "abcd"}, {"output": "x"}, {"output": "boom", "expected": "y"},
         {"output": "a", "expected": "a"}]
    )
    assert results[0] == Score(0.5, name="f")
    assert isinstance(results[1], MissingField) and results[1].field == "expected"
    assert isinstance(results[2], ScorerError) and "RuntimeError: kaput" in str(results[2])
    assert isinstance(results[2].__cause__, RuntimeError)
    assert results[3] == Score(1.0, name="f")


def test_var_keyword_receives_every_present_field_and_defaults_apply() -> None:
    got: dict[str, Any] = {}

    def f(output, context="default-ctx", **rest):  # type: ignore[no-untyped-def]
        got.update(rest, output=output, context=context)
        return True

    as_scorer(f).score({"output": "o", "input": "i", "metadata": {"k": 1}})
    assert got == {"output": "o", "input": "i", "metadata": {"k": 1}, "context": "default-ctx"}


def test_objects_with_attributes_are_items_too() -> None:
    @dataclass
    class Item:
        output: str
        expected: str | None = None

    s = get_scorer("equals")
    assert s.score(Item("a", "a")).passed is True
    with pytest.raises(MissingField):
        s.score(Item("a"))


def test_bad_function_signatures_are_configuration_errors() -> None:
    with pytest.raises(ScorerConfigError, match="'answer' is not an item field"):
        as_scorer(lambda answer: True)
    with pytest.raises(ScorerConfigError, match="declares no item field"):
        as_scorer(lambda: True)
    # a non-field parameter with a default is allowed (configuration)
    assert as_scorer(lambda output, k=3: len(output) > k)(output="abcd").passed is True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, Score(True, True, name="s")),
        (0.25, Score(0.25, None, name="s")),
        (3, Score(3.0, None, name="s")),
        ("B", Score("B", None, name="s")),
        ({"score": 0.5, "pass": False, "reason": "meh"}, Score(0.5, False, "meh", "s")),
        ({"pass": True}, Score(True, True, None, "s")),
        (Score(1.0, True, "ok"), Score(1.0, True, "ok", "s")),
    ],
)
def test_return_values_are_wrapped(raw: Any, expected: Score) -> None:
    assert to_score(raw, "s") == expected


def test_unusable_return_values_are_errors() -> None:
    with pytest.raises(ScorerError, match="returned None"):
        as_scorer(lambda output: None)(output="x")
    with pytest.raises(ScorerError, match="unknown keys"):
        as_scorer(lambda output: {"scroe": 1})(output="x")


def test_numpy_scalars_are_plain_values() -> None:
    import numpy as np

    s = as_scorer(lambda output: np.float32(0.5))(output="x")
    assert s.value == 0.5 and type(s.value) is float
    b = as_scorer(lambda output: np.bool_(True))(output="x")
    assert b.value is True and b.passed is True


# --- thresholds, direction, not- ---------------------------------------------------------------


def test_threshold_gives_the_pass_flag_in_the_scorers_direction() -> None:
    hi = scorer(lambda output: float(output), name="hi", threshold=0.5)
    assert hi(output="0.5").passed is True
    assert hi(output="0.4").passed is False
    assert hi(output="0.4").explanation == "0.4 < threshold 0.5"
    lo = FunctionScorer(lambda output: float(output), threshold=10, direction="lower")
    assert lo(output="9").passed is True and lo(output="11").passed is False
    assert as_scorer(lambda output: float("nan")).score({"output": "x"}).passed is None
    assert scorer(lambda output: float("nan"), threshold=0.1)(output="x").passed is False


def test_not_prefix_inverts_pass_and_boolean_value() -> None:
    s = get_scorer("not-contains", value="sorry")
    assert s.name == "not-contains"
    r = s(output="I am sorry")
    assert (r.value, r.passed) == (False, False)
    assert r.explanation is not None and r.explanation.startswith("inverted (not-)")
    assert s(output="Sure!").passed is True
    m = get_scorer("not-rouge-l", threshold=0.5)  # a metric inverts through its threshold
    r2 = m(output="completely different words", expected="the cat sat on the mat")
    assert r2.passed is True and isinstance(r2.value, float)


def test_not_prefix_needs_a_verdict() -> None:
    with pytest.raises(ScorerConfigError, match="give it a `threshold`"):
        get_scorer("not-bleu")
    with pytest.raises(ScorerConfigError, match="not both"):
        get_scorer("not-contains", value="x", invert=True)
    # a custom function that gives no verdict fails per item, with the reason
    s = get_scorer("not-python", value=lambda output: 0.3)
    with pytest.raises(ScorerError, match="needs a pass/fail verdict"):
        s(output="x")


def test_threshold_on_a_check_is_rejected() -> None:
    with pytest.raises(ScorerConfigError, match="does not take 'threshold'"):
        get_scorer("contains", value="x", threshold=0.5)
    with pytest.raises(ScorerConfigError, match="`threshold` must be a number"):
        get_scorer("bleu", threshold="high")
    with pytest.raises(ScorerConfigError, match="`weight` must be a number >= 0"):
        get_scorer("contains", value="x", weight=-1)


# --- the registry ------------------------------------------------------------------------------


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownScorer) as ei:
        get_scorer("containz", value="x")
    err = ei.value
    assert err.known == scorer_types()
    for t in ("contains", "icontains-any", "bleu", "rouge-l", "similar", "perplexity", "llm-rubric", "python"):
        assert t in str(err)
    assert "Did you mean 'contains'?" in str(err)
    assert err.code == "unknown_scorer" and err.status_code == 400
    assert err.to_dict()["error"]["details"][0]["known"] == scorer_types()
    with pytest.raises(UnknownScorer, match="Known types: "):
        get_scorer("not-nothing-like-this")


def test_unknown_parameter_lists_the_accepted_ones() -> None:
    with pytest.raises(ScorerConfigError) as ei:
        get_scorer("regex", value="x", flagz="i")
    assert "does not take 'flagz'" in str(ei.value)
    assert "it accepts: value, flags, fullmatch, name, weight, invert" in str(ei.value)


def test_every_builtin_type_is_registered_with_a_description_and_common_params() -> None:
    expected = {
        "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any", "icontains-all",
        "starts-with", "regex", "is-json", "contains-json", "json-schema", "length", "latency", "cost", "python",
        "bleu", "chrf", "rouge-1", "rouge-2", "rouge-l", "rouge-lsum", "token-f1", "exact-match", "edit-distance",
        "levenshtein", "similar", "perplexity", "llm-rubric", "g-eval", "factuality", "answer-relevance",
        "context-faithfulness", "coherence", "fluency",
    }
    assert expected <= set(scorer_types())
    for spec in scorer_specs():
        assert spec.description, spec.type
        assert {"name", "weight", "invert"} <= set(spec.params), spec.type


def test_docs_list_every_scorer_type_with_its_parameters() -> None:
    doc = (ROOT / "docs" / "scorers.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|.*$", doc, re.MULTILINE)}
    from podium.plugins import list_plugins  # installed plugins (examples/plugin) document their own types

    builtin = {t for p in list_plugins() if p.version == "built-in" for t in p.registered.get("scorers", [])}
    missing = [t for t in scorer_types() if t in builtin and t not in rows]
    assert not missing, f"add these types to docs/scorers.md: {missing}"
    judge_options = doc.split("**Judge options**", 1)[1].split("**Verdicts.**", 1)[0]
    for spec in scorer_specs():
        if spec.type not in builtin:
            continue
        row = rows[spec.type]
        shared = judge_options if "judge options" in row else ""  # documented once, in their own table
        undocumented = [p for p in spec.params
                        if p not in COMMON_PARAMS and f"`{p}`" not in row and f"| `{p}` |" not in shared]
        assert not undocumented, f"docs/scorers.md: {spec.type} does not mention {undocumented}"


def test_assertion_mapping_promptfoo_style() -> None:
    s = scorer_from_assertion({"type": "not-icontains-any", "value": ["sorry", "cannot"], "weight": 2,
                               "metric": "no-refusal"})
    assert (s.name, s.weight, s.invert) == ("no-refusal", 2.0, True)
    assert s(output="I cannot do that").passed is False
    assert s(output="Here you go").passed is True
    r = scorer_from_assertion({"type": "length", "config": {"max": 3, "unit": "words"}})
    assert r(output="one two three four").passed is False
    j = scorer_from_assertion({"type": "llm-rubric", "value": "is polite", "provider": "team/gpt"})
    assert j.judge.model == "team/gpt"  # type: ignore[attr-defined]
    with pytest.raises(ScorerConfigError, match="needs a `type`"):
        scorer_from_assertion({"value": "x"})
    with pytest.raises(UnknownScorer):
        scorer_from_assertion({"type": "nope"})


def test_register_a_custom_type() -> None:
    class Shouts(Scorer):
        """The output is upper case."""

        type = "test-shouts"
        direction = None
        verdict = True

        def __init__(self, *, name: str | None = None, weight: float = 1.0, invert: bool = False) -> None:
            super().__init__(name=name, weight=weight, invert=invert)
            self._declare(["output"])

        def compute(self, output: str) -> bool:
            return output.isupper()

    register_scorer("test-shouts", Shouts, replace_existing=True)
    assert get_scorer("test-shouts")(output="HEY").passed is True
    assert get_scorer("not-test-shouts")(output="HEY").passed is False
    with pytest.raises(ValueError, match="already registered"):
        register_scorer("test-shouts", Shouts)
    with pytest.raises(ValueError, match="bad scorer type name"):
        register_scorer("not-this", Shouts)


def test_batch_capable_function_and_batch_failure_isolation() -> None:
    calls: list[int] = []

    def f(output):  # type: ignore[no-untyped-def]
        return len(output)

    def f_batch(rows):  # type: ignore[no-untyped-def]
        calls.append(len(rows))
        return [len(r["output"]) for r in rows]

    f.score_batch = f_batch  # type: ignore[attr-defined]
    out = as_scorer(f).score_batch([{"output": "a"}, {"output": "bb"}, {}])
    assert calls == [2]  # one call for the two complete items
    assert [getattr(o, "value", None) for o in out[:2]] == [1.0, 2.0] and isinstance(out[2], MissingField)

    class Flaky(Scorer):
        type = "flaky"

        def __init__(self) -> None:
            super().__init__()
            self._declare(["output"])

        def compute(self, output: str) -> float:
            if output == "bad":
                raise ValueError("bad item")
            return 1.0

        def compute_batch(self, rows: Any) -> list[Any]:
            raise RuntimeError("the batch path broke")

    res = Flaky().score_batch([{"output": "ok"}, {"output": "bad"}])
    assert res[0] == Score(1.0, name="flaky")  # fell back to one item at a time
    assert isinstance(res[1], ScorerError) and "bad item" in str(res[1])


def test_scorer_errors_are_podium_errors() -> None:
    assert issubclass(ScorerError, PodiumError)
    with pytest.raises(TypeError, match="unknown item field"):
        get_scorer("equals", value="x")(outptu="x")
