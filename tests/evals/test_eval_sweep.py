"""The sweep engine (podium.experiments.sweep) and its HTML report on a fake priced upstream: the
grid covers the product, an Optuna search finds a deterministic fake's front, a dominated
configuration stops early, a sweep budget stops cleanly, the report shows the scatter and the
front table. Offline (no Podium server): the trials are recorded in memory; the CLI test
(test_eval_sweep_cli.py) runs them through a real server and gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.errors import ConfigurationError
from podium.evals.pareto import hypervolume, pareto_front
from podium.experiments.suite import Suite, parse_suite
from podium.experiments.sweep import TrialConfig, grid, parse_space, run_sweep
from podium.experiments.sweep_report import compare_with_best, render_sweep_html, write_sweep_report
from tests.gateway.fake_upstream import FakeUpstream, Reply

N_ITEMS = 20


def suite(n: int = N_ITEMS) -> Suite:
    tests = "".join(f"  - vars: {{n: {i}}}\n" for i in range(n))
    return parse_suite(f"""
description: Sweep
prompts: ["Question {{{{n}}}}: what is the capital of France?"]
providers: [gateway:gpt-4o-mini]
defaultTest:
  assert: [{{type: icontains, value: paris}}]
tests:
{tests}""")


def behaviour(body: dict[str, Any]) -> Reply:
    """Deterministic per configuration: gpt-4o always right but pricey and slower; gpt-4o-mini
    right on even questions only (cold) or never (hot); a 'wrong' model always wrong, expensive
    and slow. Longer answers with larger max_tokens (more output tokens, more cost)."""
    model, t = body["model"], float(body.get("temperature") or 0.0)
    n = int(re.findall(r"Question (\d+)", body["messages"][-1]["content"])[0])
    right = {"gpt-4o": True, "gpt-4o-mini": n % 2 == 0 and t < 0.5}.get(model, False)
    words = max(1, int(body.get("max_tokens") or 8) // 4)
    delay = {"gpt-4o": 0.004, "gpt-4": 0.02}.get(model, 0.0)
    return Reply(("Paris" if right else "Lyon") + " so" * words, delay=delay, prompt_tokens=40)


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    u = FakeUpstream().start()
    for m in ("gpt-4o", "gpt-4o-mini", "gpt-4"):
        u.respond(m, behaviour)
    yield u
    u.stop()


def sweep(up: FakeUpstream, space: dict[str, Any], **kw: Any) -> Any:
    return run_sweep(suite(), space, base_url=up.url, check=False, **kw)


def test_space_errors_say_what_to_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"models is required|models must be"):
        parse_space({"params": {"temperature": [0]}})
    with pytest.raises(ConfigurationError, match="unknown parameter 'temp'"):
        parse_space({"models": ["local"], "params": {"temp": [0]}})
    with pytest.raises(ConfigurationError, match="grid or optuna"):
        parse_space({"models": ["local"], "search": {"method": "random"}})
    sp = parse_space({"models": ["a", "b"], "params": {"temperature": [0, 0.7], "max_tokens": [8, 16, 32]},
                      "system": {"terse": "Be terse."}, "few_shot": [0, 2]})
    assert sp.size == 2 * 2 * 3 * 1 * 2 == len(grid(sp)) == len(set(grid(sp)))


def test_grid_covers_the_product_and_marks_the_front(up: FakeUpstream, tmp_path: Path) -> None:
    space = {"models": ["gpt-4o", "gpt-4o-mini"], "params": {"temperature": [0, 0.7], "max_tokens": [8, 32]},
             "system": {"terse": "Answer in one word.", "plain": "You are helpful."}, "few_shot": [0, 2]}
    res = sweep(up, space)
    configs = {t.config for t in res.trials}
    assert len(res.trials) == 32 and configs == set(grid(parse_space(space)))
    assert res.status == "completed" and res.summary["complete"] == 32 and res.summary["grid_size"] == 32
    by = {t.config: t for t in res.trials}
    big = by[TrialConfig("gpt-4o", params=(("temperature", 0), ("max_tokens", 8)), system_variant="terse")]
    small = by[TrialConfig("gpt-4o-mini", params=(("temperature", 0), ("max_tokens", 8)), system_variant="terse")]
    assert big.metrics["score_mean"] == 1.0 and big.items == N_ITEMS - 2  # the 2 few-shot examples are held out
    assert small.metrics["score_mean"] == pytest.approx(0.5) and small.metrics["score_ci"][0] < 0.5
    assert 0 < small.metrics["cost_per_1k"] < big.metrics["cost_per_1k"]
    assert big.metrics["cost_total"] == pytest.approx(big.metrics["cost_per_1k"] * big.items / 1000)
    assert big.metrics["p95_ms"] >= big.metrics["latency_mean_ms"] * 0.5 > 0
    # the few-shot examples and system variant reach the model
    body = next(b for b in up.bodies("gpt-4o") if len(b["messages"]) == 6)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    front = [t for t in res.trials if t.front]
    assert front and all(not t.dominated for t in front)
    assert {t.number for t in front} == set(res.summary["front"])
    # the best score at the lowest cost (some gpt-4o, max_tokens 8 variant) and the cheapest are on it
    assert any(t.config.model == "gpt-4o" and dict(t.config.params)["max_tokens"] == 8 for t in front)
    cheapest = min(t.metrics["cost_per_1k"] for t in res.trials)
    assert any(t.metrics["cost_per_1k"] == cheapest for t in front)
    # the report: the scatter, the front table, and the cheap model significantly worse than the best
    sig = compare_with_best(res)
    assert any(v["significant"] for v in sig.values()) and not all(v["significant"] for v in sig.values())
    html = render_sweep_html(res)
    assert '<svg class="scatter"' in html and html.count('class="pt front"') == len(front)
    assert 'class="pt dominated"' in html and "cost per 1,000 items" in html
    assert 'class="front-table"' in html and "significantly worse than the best" in html and "best score" in html
    assert "p95" in html and "<script" not in html
    write_sweep_report(res, tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == html


def test_optuna_finds_the_front_with_fewer_trials_and_stops_dominated_ones(up: FakeUpstream) -> None:
    space = {"models": ["gpt-4o", "gpt-4o-mini", "gpt-4"],
             "params": {"temperature": [0, 0.3, 0.7, 1.0], "max_tokens": [8, 16, 32]}}
    full = sweep(up, space)
    assert len(full.trials) == 36
    res = sweep(up, {**space, "search": {"method": "optuna", "trials": 18, "seed": 1}})
    assert res.status == "completed" and len(res.trials) == 18 and len({t.config for t in res.trials}) == 18
    # score and cost are deterministic here (latency is noise): compare the fronts on those two
    ref = [0.0, max(t.metrics["cost_per_1k"] for t in full.trials) * 1.1]

    def hv(trials: list[Any]) -> float:
        pts = [t.objectives[:2] for t in trials if t.status == "complete"]
        return hypervolume([pts[i] for i in pareto_front(pts, ["max", "min"])], ["max", "min"], ref)

    assert hv(res.trials) >= 0.95 * hv(full.trials)
    # the always-wrong, expensive, slow model stopped after its prefix once a front existed
    stopped = [t for t in res.trials if t.status == "stopped"]
    assert any(t.config.model == "gpt-4" for t in stopped)
    assert all(t.items == 5 and t.experiment_id for t in stopped)  # 20% of 20 items, at least 5
    assert all(t.items == N_ITEMS for t in res.trials if t.status == "complete")
    assert res.summary["stopped"] == len(stopped)


def test_budget_stops_cleanly_and_reports_what_completed(up: FakeUpstream) -> None:
    space = {"models": ["gpt-4o"], "params": {"temperature": [0, 0.5, 1.0]}}
    one = sweep(up, {**space, "params": {"temperature": [0]}}).spent_usd
    assert one > 0
    res = sweep(up, space, budget_usd=one * 1.5)
    assert res.status == "stopped" and len(res.trials) == 1 and res.trials[0].status == "complete"
    assert "budget" in res.summary["reason"] and res.spent_usd <= one * 1.5
    assert res.summary["front"] == [1]


def test_context_size_limits_each_items_context(up: FakeUpstream) -> None:
    """context_size keeps a list context's first k entries and a string context's first k tokens; the
    item ids stay, so the trials are paired; the grid multiplies by the sizes."""
    from podium.core.datasets import DatasetItem
    from podium.core.tokens import count_tokens, first_tokens
    from podium.experiments.sweep import limit_context

    item = DatasetItem(id="a", input={"q": "x", "context": ["p1", "p2", "p3"]}, context=["p1", "p2", "p3"])
    cut = limit_context(item, 2)
    assert cut.id == "a" and cut.context == ["p1", "p2"] and cut.input["context"] == ["p1", "p2"]
    text = "Paris is the capital and most populous city of France, on the Seine."
    short = limit_context(DatasetItem(id="b", input={"q": "x"}, context=text), 5)
    assert short.context == first_tokens(text, 5) and count_tokens(short.context) == 5
    assert text.startswith(short.context) and limit_context(DatasetItem(id="c", context=text), 500).context == text
    with pytest.raises(ConfigurationError, match="context_size"):
        parse_space({"models": ["a"], "context_size": [0]})
    sp = parse_space({"models": ["a"], "context_size": [1, 3, None]})
    assert sp.size == 3 and [c.context_size for c in grid(sp)] == [1, 3, None]

    st = parse_suite("""
description: Retrieval
prompts: ["Context: {{context}} Question {{n}}: what is the capital of France?"]
providers: [gateway:gpt-4o]
defaultTest:
  assert: [{type: icontains, value: paris}]
tests:
""" + "".join(f"  - vars: {{n: {i}, context: [doc-{i}-a, doc-{i}-b, doc-{i}-c]}}\n" for i in range(6)))
    res = run_sweep(st, {"models": ["gpt-4o"], "context_size": [1, 3]}, base_url=up.url, check=False)
    assert [t.config.context_size for t in res.trials] == [1, 3] and res.summary["complete"] == 2
    assert [t.config.to_dict()["context_size"] for t in res.trials] == [1, 3]
    assert "ctx=1" in res.trials[0].config.label()
    sent = [b["messages"][-1]["content"] for b in up.bodies("gpt-4o") if "doc-0-" in b["messages"][-1]["content"]]
    assert any("doc-0-a" in s and "doc-0-b" not in s for s in sent)  # k=1
    assert any("doc-0-c" in s for s in sent)  # k=3
    assert set(res.trials[0].scores) == set(res.trials[1].scores)  # same items: paired


def test_few_shot_trials_record_the_examples_they_sent(up: FakeUpstream) -> None:
    res = sweep(up, {"models": ["gpt-4o"], "few_shot": [0, 2], "system": {"terse": "One word."}})
    by = {t.config.few_shot: t for t in res.trials}
    assert by[0].examples == [] and "examples" not in by[0].to_dict()["config"]
    ex = by[2].to_dict()["config"]["examples"]
    assert [m["role"] for m in ex] == ["user", "assistant", "user", "assistant"]
    assert ex[0]["content"] == "Question 0: what is the capital of France?"
    body = next(b for b in up.bodies("gpt-4o") if len(b["messages"]) == 6)
    assert body["messages"][1:5] == ex  # exactly what the trial sent
