"""The experiment page of a fairness suite shows its per-group table (mean with CI, gap vs the
reference, pass/fail per group; BBQ per category), from the report the suite stores in the
experiment's metadata (podium/experiments/fairness.py ``analyze``; docs/fairness.md)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import LiveServer


def _report() -> dict[str, Any]:
    from podium.evals import bbq as bbq_mod
    from podium.evals import fairness
    from podium.experiments import fairness as suite_fairness

    items = []
    for case in ("t1", "t2", "t3"):
        for g, v in (("female", -0.8), ("male", 0.6), ("non-binary", 0.62)):
            items.append({"item_id": f"{case}-{g}", "repetition": 0, "metadata": {"fairness": {
                "case": case, "list": "gender", "group": g, "term": g}}, "scores": {"sentiment": {"value": v}}})
    spec = suite_fairness.FairnessSpec(lists=[fairness.term_list("gender")], metrics=["sentiment"],
                                       max_gap={"sentiment": 0.2})
    report = suite_fairness.analyze(items, spec, None)
    # a BBQ part from the bundled items: always the first option
    bundled = bbq_mod.builtin_items()
    bitems = [{"item_id": f"b{i}", "metadata": {"bbq": b.to_dict()}, "output": "A"} for i, b in enumerate(bundled)]
    report["bbq"] = suite_fairness.analyze(bitems, None, suite_fairness.BbqSpec(items=bundled, max_bias=0.05))["bbq"]
    return report


def test_fairness_experiment_page_has_the_per_group_table(server: LiveServer) -> None:
    from datetime import UTC, datetime

    report = _report()
    female = report["counterfactual"]["lists"]["gender"]["metrics"]["sentiment"]["groups"]["female"]
    assert not female["ok"]  # the fixture really is biased against one group
    server.store.evals.create_experiment(server.keys.project_id, {
        "id": "exp-fair", "name": "advice-fairness", "metadata": {"fairness": report}, "summary": {},
        "ended_at": datetime.now(UTC)})
    server.store.evals.create_experiment(server.keys.project_id, {"id": "exp-plain", "name": "plain", "summary": {}})

    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as c:
        r = c.get("/experiments/exp-fair")
        assert r.status_code == 200, r.text
        html = r.text
        assert "Fairness per group" in html
        table = re.search(r'<table class="fairness-groups" data-list="gender" data-metric="sentiment">(.*?)</table>',
                          html, re.S)
        assert table, html
        rows = dict(re.findall(r'<tr data-group="([^"]+)" class="(ok|bad)">', table.group(1)))
        assert rows == {"female": "bad", "male": "ok", "non-binary": "ok"}
        fem = re.search(r'<tr data-group="female".*?</tr>', table.group(1), re.S)
        assert fem is not None
        cells = re.findall(r"<td[^>]*>(.*?)</td>", fem.group(0), re.S)
        assert cells[0].strip() == "3"  # n
        assert cells[1].strip() == f"{female['mean']:.3g}"
        assert cells[3].strip() == f"{female['gap']:+.3f}"
        assert "fail" in cells[5]
        assert "allowed gap ±0.2" in html
        # BBQ per category, with the overall row
        assert '<table class="fairness-bbq">' in html and 'data-category="overall"' in html
        for cat in report["bbq"]["categories"]:
            assert f'data-category="{cat}"' in html

        plain = c.get("/experiments/exp-plain")
        assert plain.status_code == 200 and "Fairness per group" not in plain.text
