"""Deterministic checks: equals, contains family, regex, starts-with, JSON, length, latency, cost, python."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from podium.evals import MissingDependency, MissingField, ScorerConfigError, ScorerError, get_scorer


def verdict(type_name: str, item: dict, **params) -> bool | None:  # type: ignore[no-untyped-def,type-arg]
    return get_scorer(type_name, **params).score(item).passed


def test_equals() -> None:
    assert verdict("equals", {"output": "Paris"}, value="Paris") is True
    assert verdict("equals", {"output": "Paris "}, value="Paris") is False
    assert verdict("equals", {"output": "Paris "}, value="paris", strip=True, ignore_case=True) is True
    assert verdict("equals", {"output": "4", "expected": "4"}) is True  # expected when no value
    assert verdict("equals", {"output": '{"b": 2, "a": 1}'}, value={"a": 1, "b": 2}) is True  # JSON compare
    assert verdict("equals", {"output": {"a": 1}, "expected": {"a": 1}}) is True
    assert verdict("equals", {"output": "not json"}, value={"a": 1}) is False
    r = get_scorer("equals", value="x")(output="y")
    assert r.explanation == "expected 'x', got 'y'"
    with pytest.raises(MissingField, match="`expected`"):
        get_scorer("equals")(output="x")


def test_contains_family() -> None:
    assert verdict("contains", {"output": "The capital is Paris."}, value="Paris") is True
    assert verdict("contains", {"output": "The capital is paris."}, value="Paris") is False
    assert verdict("icontains", {"output": "The capital is PARIS."}, value="paris") is True
    assert verdict("icontains", {"output": "STRASSE"}, value="straße") is True  # casefold, not lower
    assert verdict("contains", {"output": "a Paris b", "expected": "Paris"}) is True
    assert verdict("contains-any", {"output": "red fish"}, value=["blue", "red"]) is True
    assert verdict("contains-any", {"output": "green fish"}, value=["blue", "red"]) is False
    assert verdict("contains-any", {"output": "green fish"}, value="blue, green") is True  # "a,b" form
    assert verdict("contains-all", {"output": "red and blue"}, value=["blue", "red"]) is True
    assert verdict("contains-all", {"output": "red only"}, value=["blue", "red"]) is False
    assert verdict("icontains-any", {"output": "RED"}, value=["red", "x"]) is True
    assert verdict("icontains-all", {"output": "Red BLUE"}, value=["red", "blue"]) is True
    assert verdict("icontains-all", {"output": "Red"}, value=["red", "blue"]) is False
    r = get_scorer("contains-all", value=["a", "zz", "yy"])(output="a")
    assert r.explanation == "missing ['zz', 'yy']"
    assert verdict("contains", {"output": 12345}, value=234) is True  # non-strings as text
    with pytest.raises(ScorerConfigError, match="list of strings"):
        get_scorer("contains-any")
    with pytest.raises(ScorerConfigError, match="use contains-any"):
        get_scorer("contains", value=["a", "b"])


def test_starts_with_and_regex() -> None:
    assert verdict("starts-with", {"output": "Yes, indeed"}, value="Yes") is True
    assert verdict("starts-with", {"output": "  Yes"}, value="Yes") is False
    assert verdict("starts-with", {"output": "  Yes"}, value="Yes", strip=True) is True
    assert verdict("regex", {"output": "Order #12345 shipped"}, value=r"#\d{5}\b") is True
    assert verdict("regex", {"output": "ORDER"}, value="order") is False
    assert verdict("regex", {"output": "ORDER"}, value="order", flags="i") is True
    assert verdict("regex", {"output": "abc123"}, value=r"[a-z]+", fullmatch=True) is False
    r = get_scorer("regex", value=r"\d+")(output="call 911 now")
    assert r.explanation == "matched '911'"
    with pytest.raises(ScorerConfigError, match="not a valid regular expression"):
        get_scorer("regex", value="(unclosed")
    with pytest.raises(ScorerConfigError, match="unknown flag"):
        get_scorer("regex", value="x", flags="q")


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def test_is_json_contains_json_and_schema() -> None:
    assert verdict("is-json", {"output": '{"a": [1, 2]}'}) is True
    assert verdict("is-json", {"output": 'Sure! {"a": 1}'}) is False
    assert verdict("is-json", {"output": {"already": "structured"}}) is True
    assert verdict("contains-json", {"output": 'Sure! ```json\n{"a": 1}\n``` done'}) is True
    assert verdict("contains-json", {"output": 'Here: {"a": 1} and more'}) is True
    assert verdict("contains-json", {"output": "no json here {"}) is False
    assert verdict("json-schema", {"output": '{"name": "Ada", "age": 36}'}, value=SCHEMA) is True
    r = get_scorer("json-schema", value=SCHEMA)(output='{"name": "Ada", "age": -1}')
    assert r.passed is False and r.explanation == "JSON does not match the schema at age: -1 is less than the minimum of 0"
    r2 = get_scorer("json-schema", value=SCHEMA)(output='{"name": 5}')
    assert r2.passed is False and "(and 1 more)" in (r2.explanation or "")
    assert verdict("json-schema", {"output": "nope"}, value=SCHEMA) is False
    assert verdict("is-json", {"output": '{"name": "A", "age": 1}'}, value=SCHEMA) is True  # is-json + schema
    assert verdict("contains-json", {"output": 'x {"name": "A"} y'}, value=SCHEMA) is False
    assert verdict("json-schema", {"output": '{"name": "Ada", "age": 36}'}, value='{"type": "object"}') is True
    with pytest.raises(ScorerConfigError, match="not valid"):
        get_scorer("json-schema", value={"type": "no-such-type"})
    with pytest.raises(ScorerConfigError, match="give the schema"):
        get_scorer("json-schema", value=None)


def test_json_schema_without_the_library_is_a_clear_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import fails as if not installed
    with pytest.raises(MissingDependency) as ei:
        get_scorer("json-schema", value=SCHEMA)
    assert "jsonschema>=4.20,<5" in str(ei.value) and "podium[eval]" in str(ei.value)


def test_length_bounds() -> None:
    s = get_scorer("length", min=2, max=5)
    assert [s(output=o).passed for o in ("a", "ab", "abcde", "abcdef")] == [False, True, True, False]
    assert s(output="abc").value == 3.0
    w = get_scorer("length", max=3, unit="words")
    assert w(output="one two  three").passed is True and w(output="one two three four").passed is False
    with pytest.raises(ScorerConfigError, match="give `min`, `max` or both"):
        get_scorer("length")
    with pytest.raises(ScorerConfigError, match="above `max`"):
        get_scorer("length", min=5, max=2)
    with pytest.raises(ScorerConfigError, match="'chars' or 'words'"):
        get_scorer("length", max=2, unit="tokens")


def test_latency_and_cost_thresholds_from_metadata_or_trace() -> None:
    lat = get_scorer("latency", threshold=500)
    assert lat.score({"metadata": {"latency_ms": 420}}).passed is True
    assert lat.score({"metadata": {"latency_ms": 501}}).passed is False
    assert lat.score({"trace": {"latency_ms": 100.0}}).value == 100.0
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    r = lat.score({"trace": {"start_time": t0.isoformat(), "end_time": (t0 + timedelta(milliseconds=750)).isoformat()}})
    assert (r.value, r.passed) == (750.0, False)
    cost = get_scorer("cost", threshold=0.01)
    assert cost.score({"metadata": {"cost": 0.002}}).passed is True
    assert cost.score({"trace": {"total_cost": Decimal("0.0125")}}).passed is False
    assert cost.score({"trace": {"cost": {"total": 0.001}}}).value == 0.001
    results = lat.score_batch([{"metadata": {"other": 1}}, {"output": "x"}])
    assert all(isinstance(x, MissingField) for x in results)
    assert "metadata.latency_ms" in str(results[0])
    with pytest.raises(ScorerConfigError, match="give `threshold`"):
        get_scorer("latency")
    assert get_scorer("not-latency", threshold=100).score({"metadata": {"latency_ms": 150}}).passed is True


def test_custom_python_callable_module_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = get_scorer("python", value=lambda output, expected: output.lower() == expected.lower())
    assert s(output="A", expected="a").passed is True

    pkg = tmp_path / "mychecks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        def polite(output, input=None):
            return {"score": 1.0 if "please" in output else 0.0, "reason": "looked for please"}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    m = get_scorer("python", value="mychecks:polite", threshold=0.5)
    r = m(output="please sit")
    assert (r.value, r.passed, r.name) == (1.0, True, "polite")
    assert r.explanation == "looked for please (1 >= threshold 0.5)"

    f = tmp_path / "score_file.py"
    f.write_text("def short(output):\n    return len(output) < 5\n")
    assert get_scorer("python", value=f"{f}:short")(output="abc").passed is True

    with pytest.raises(ScorerConfigError, match="cannot import"):
        get_scorer("python", value="no_such_module_xyz:f")
    with pytest.raises(ScorerConfigError, match="has no attribute"):
        get_scorer("python", value="mychecks:nope")
    # not a module:function reference: promptfoo's inline form, an expression over `output`
    inline = get_scorer("python", value="mychecks")(output="x")
    assert inline.passed is False and "NameError" in (inline.explanation or "")
    with pytest.raises(ScorerConfigError, match="invalid Python"):
        get_scorer("python", value="len(output) >")
    with pytest.raises(ScorerConfigError, match="not an item field"):
        get_scorer("python", value="os.path:join")

    def broken(output):  # type: ignore[no-untyped-def]
        raise KeyError("missing key")

    res = get_scorer("python", value=broken).score_batch([{"output": "x"}])
    assert isinstance(res[0], ScorerError) and "KeyError" in str(res[0])
