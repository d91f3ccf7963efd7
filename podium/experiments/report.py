"""Reports of a suite run: JSON (everything), YAML (the same), JUnit XML (CI test tabs), CSV (a row
per item, as promptfoo's ``outputPath: output.csv``) and a self-contained HTML page (inline CSS
and SVG charts; no scripts, fonts, images or links to anything outside the file).

``write_report(result, path)`` picks the format from the file name: ``.json``, ``.yaml``/``.yml``,
``.xml`` (JUnit), ``.csv`` or ``.html``.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podium.core.reporting import badge as _badge
from podium.core.reporting import bar_chart, close_suite, cut, gate_cases, junit_document
from podium.core.reporting import clean as _clean
from podium.core.reporting import esc as _e
from podium.experiments.fairness import render_html as fairness_html
from podium.experiments.results import ItemResult, SuiteResult

__all__ = ["REPORT_SUFFIXES", "render_csv", "render_html", "render_json", "render_junit", "write_report"]

REPORT_SUFFIXES = (".json", ".yaml", ".yml", ".xml", ".csv", ".html", ".htm")


def _dumps(obj: Any) -> str:
    def default(o: Any) -> Any:
        if hasattr(o, "isoformat"):
            return o.isoformat()
        return str(o)

    return json.dumps(obj, indent=2, ensure_ascii=False, default=default, allow_nan=False)


def render_json(result: SuiteResult) -> str:
    return _dumps(_clean(result)) + "\n"


def _text(v: Any, n: int = 2000) -> str:
    return cut(v, n)


def _case_name(item: ItemResult) -> str:
    meta = item.get("metadata") or {}
    base = meta.get("description") or _text(item.get("input"), 80)
    rep = f" #{item['repetition'] + 1}" if item.get("repetition") else ""
    return f"{base} [{item['item_id']}]{rep}"


def _failures(item: ItemResult) -> list[str]:
    out = []
    for name, s in (item.get("scores") or {}).items():
        if s.get("error"):
            out.append(f"{name}: error: {s['error']}")
        elif s.get("passed") is False:
            out.append(f"{name}: failed" + (f": {s['explanation']}" if s.get("explanation") else ""))
    return out


def render_csv(result: SuiteResult) -> str:
    """A row per (variant, item, repetition): prompt, provider, description, vars, output, verdict, reasons."""
    names: list[str] = []
    for exp in result["experiments"]:
        for it in exp["items"]:
            inp = it.get("input")
            for k in (inp if isinstance(inp, Mapping) else {}):
                if k not in names:
                    names.append(str(k))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["prompt", "provider", "description", *names, "output", "pass", "score", "latency_ms", "reason"])
    for exp in result["experiments"]:
        for it in exp["items"]:
            inp = it.get("input") if isinstance(it.get("input"), Mapping) else {}
            verdict = "ERROR" if it.get("error") and it.get("passed") is None else (
                "PASS" if it.get("passed") else "FAIL")
            out = it.get("output")
            ws, ms = it.get("weighted_score"), it.get("latency_ms")
            w.writerow([exp["variant"]["prompt"], exp["variant"]["provider"],
                        (it.get("metadata") or {}).get("description", ""),
                        *[_text(inp.get(k), 10_000) if k in inp else "" for k in names],
                        "" if out is None else _text(out, 100_000), verdict,
                        "" if ws is None else round(ws, 4),
                        "" if ms is None else round(ms, 1),
                        "; ".join(_failures(it)) or (it.get("error") or "")])
    return buf.getvalue()


def render_junit(result: SuiteResult) -> str:
    """One ``<testsuite>`` per experiment (a test case per item and repetition, one per gate)."""
    root = ET.Element("testsuites", name=f"podium eval: {result['suite']['name']}")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for exp in result["experiments"]:
        e = exp["experiment"]
        items = exp["items"]
        suite = ET.SubElement(root, "testsuite", name=exp["variant"]["name"], timestamp=str(e.get("created_at", "")))
        props = ET.SubElement(suite, "properties")
        for k, v in (("experiment_id", e.get("id")), ("run_group", result.get("run_group")),
                     ("dataset", f"{result['dataset']['name']}@{result['dataset']['version']}"),
                     ("prompt", exp["variant"]["prompt"]), ("provider", exp["variant"]["provider"])):
            ET.SubElement(props, "property", name=k, value=str(v))
        n = fails = errs = 0
        total_time = 0.0
        for it in items:
            n += 1
            secs = (it.get("latency_ms") or 0.0) / 1000.0
            total_time += secs
            case = ET.SubElement(suite, "testcase", classname=exp["variant"]["name"], name=_case_name(it),
                                 time=f"{secs:.3f}")
            if it.get("error_type") in ("task_error", "timeout", "rate_limited", "upstream_error", "cancelled"):
                errs += 1
                el = ET.SubElement(case, "error", message=_text(it.get("error") or "", 500), type=str(it["error_type"]))
                el.text = it.get("error") or ""
            elif it.get("passed") is False:
                fails += 1
                reasons = _failures(it) or [it.get("error") or "the weighted score is under the test's threshold"]
                el = ET.SubElement(case, "failure", message=_text(reasons[0], 500),
                                   type=it.get("error_type") or "assertion")
                el.text = "\n".join(reasons)
            out = ET.SubElement(case, "system-out")
            out.text = _text(it.get("output"), 10_000) if it.get("output") is not None else ""
        n += len(exp["gates"])
        fails += gate_cases(suite, exp["gates"], f"{exp['variant']['name']} gates")
        close_suite(suite, n, fails, errs, total_time)
        totals["tests"] += n
        totals["failures"] += fails
        totals["errors"] += errs
    return junit_document(root, totals, result.get("duration_s", 0.0))


# --- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1d232a;--muted:#5d6975;--bg:#fff;--card:#f6f8fa;--line:#d8dee4;--ok:#1a7f37;--bad:#cf222e;
--skip:#9a6700;--bar:#0969da;--ci:#1d232a}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9aa7b2;--bg:#0d1117;--card:#161b22;--line:#30363d;
--ok:#3fb950;--bad:#f85149;--skip:#d29922;--bar:#4493f8;--ci:#e6edf3}}
*{box-sizing:border-box}body{margin:0;padding:24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:var(--muted)}.card{background:var(--card);border:1px solid var(--line);
border-radius:8px;padding:12px 16px;margin:10px 0}.badge{display:inline-block;padding:1px 8px;border-radius:10px;
font-weight:600;font-size:12px;color:#fff}.pass{background:var(--ok)}.fail{background:var(--bad)}
.skip{background:var(--skip)}table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border-bottom:1px solid
var(--line);padding:5px 8px;text-align:left;vertical-align:top}th{font-weight:600;color:var(--muted)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}pre{margin:0;white-space:pre-wrap;word-break:break-word;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}.ok{color:var(--ok)}.bad{color:var(--bad)}
details summary{cursor:pointer}svg text{fill:var(--fg);font:12px system-ui,sans-serif}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    return _e(v)


def _chart(rows: list[tuple[str, float | None, float | None, float | None]], width: int = 640) -> str:
    """Horizontal bars (0..1) with 95% CI whiskers (clamped to the axis), as inline SVG."""
    bars = [(name, float(mean), None if lo is None else max(0.0, lo), None if hi is None else min(1.0, hi))
            for name, mean, lo, hi in rows if mean is not None and 0.0 <= float(mean) <= 1.0]
    return bar_chart(bars, label_w=180, name_chars=28, width=width)


def _metric_rows(summary: Mapping[str, Any]) -> list[tuple[str, float | None, float | None, float | None]]:
    rows = []
    for key in ("pass_rate", "score"):
        s = summary.get(key) or {}
        rows.append((key, s.get("mean"), s.get("low"), s.get("high")))
    for name, s in (summary.get("scorers") or {}).items():
        rows.append((name, s.get("mean"), s.get("low"), s.get("high")))
    return rows


def render_html(result: SuiteResult) -> str:
    suite = result["suite"]
    status = "passed" if result["passed"] else "failed"
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(suite['name'])}: {_e(status)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{_e(suite['name'])} {_badge(status)}</h1>",
           f'<div class="muted">run {_e(result.get("run_group"))} · dataset {_e(result["dataset"]["name"])} '
           f'v{_e(result["dataset"]["version"])} · {_e(result.get("started_at", ""))} · '
           f'{float(result.get("duration_s") or 0):.1f} s · {len(result["experiments"])} experiment(s)</div>']
    if len(result["experiments"]) > 1:
        out.append("<h2>Variants</h2><table><tr><th>experiment</th><th>gates</th><th class=num>pass rate</th>"
                   "<th class=num>score</th><th class=num>errors</th></tr>")
        for exp in result["experiments"]:
            s = exp["experiment"].get("summary") or {}
            out.append(f"<tr><td>{_e(exp['variant']['name'])}</td><td>{_badge('passed' if exp['passed'] else 'failed')}"
                       f"</td><td class=num>{_fmt((s.get('pass_rate') or {}).get('mean'))}</td>"
                       f"<td class=num>{_fmt((s.get('score') or {}).get('mean'))}</td>"
                       f"<td class=num>{_fmt(s.get('errors'))}</td></tr>")
        out.append("</table>")
    for exp in result["experiments"]:
        e = exp["experiment"]
        s = e.get("summary") or {}
        out.append(f"<h2>{_e(exp['variant']['name'])} {_badge('passed' if exp['passed'] else 'failed')}</h2>")
        out.append(f'<div class="muted">experiment {_e(e.get("id"))} · prompt {_e(exp["variant"]["prompt"])} · '
                   f'provider {_e(exp["variant"]["provider"])} · {s.get("items", 0)} items · '
                   f'{s.get("repetitions", 1)} repetition(s) · {s.get("errors", 0)} task errors</div>')
        prompt = exp["variant"].get("prompt_text")
        if prompt is not None:
            out.append(f'<details><summary>prompt</summary><pre>{_e(_text(prompt, 20_000))}</pre></details>')
        out.append("<h3>Gates</h3><table><tr><th>gate</th><th>status</th><th>detail</th></tr>")
        for g in exp["gates"]:
            out.append(f"<tr><td>{_e(g['gate'])}</td><td>{_badge(g['status'])}</td><td>{_e(g['detail'])}</td></tr>")
        out.append("</table>")
        if exp.get("fairness"):
            out.append(fairness_html(exp["fairness"]))
        out.append("<h3>Scores (mean, 95% CI)</h3>")
        out.append(f'<div class="card">{_chart(_metric_rows(s))}</div>')
        out.append("<table><tr><th>metric</th><th class=num>mean</th><th class=num>95% CI</th><th class=num>n</th>"
                   "<th class=num>pass rate</th><th class=num>errors</th></tr>")
        for name, m in (s.get("scorers") or {}).items():
            ci = f"{_fmt(m.get('low'))} – {_fmt(m.get('high'))}" if m.get("low") is not None else "–"
            out.append(f"<tr><td>{_e(name)}</td><td class=num>{_fmt(m.get('mean'))}</td><td class=num>{ci}</td>"
                       f"<td class=num>{_fmt(m.get('n'))}</td><td class=num>{_fmt(m.get('pass_rate'))}</td>"
                       f"<td class=num>{_fmt(m.get('errors'))}</td></tr>")
        lat = s.get("latency_ms") or {}
        out.append(f"</table><div class=muted>latency p50 {_fmt(lat.get('p50'), 0)} ms · p95 {_fmt(lat.get('p95'), 0)}"
                   f" ms · tokens {_fmt((s.get('tokens') or {}).get('total_tokens'))} · cost "
                   f"{_fmt(s.get('cost'), 6)} USD</div>")
        for g in exp["gates"]:
            cmp = g.get("comparison")
            if not cmp:
                continue
            out.append(f"<h3>Against the baseline ({_e(g.get('baseline'))})</h3><table><tr><th>metric</th>"
                       "<th class=num>baseline</th><th class=num>this run</th><th class=num>difference (95% CI)</th>"
                       "<th class=num>improved / regressed / same items</th><th>verdict</th></tr>")
            for name, m in cmp["metrics"].items():
                verdict = "regressed" if m.get("regressed") else "improved" if m.get("improved") else "no significant change"
                cls = "bad" if m.get("regressed") else "ok" if m.get("improved") else ""
                diff = (f"{m['diff']:+.3f} ({m['low']:+.3f} to {m['high']:+.3f})" if m.get("diff") is not None
                        else "–")
                c = m.get("items") or {}
                out.append(f"<tr><td>{_e(name)}</td><td class=num>{_fmt(m.get('baseline_mean'))}</td><td class=num>"
                           f"{_fmt(m.get('candidate_mean'))}</td><td class=num>{diff}</td><td class=num>"
                           f"{c.get('improved', 0)} / {c.get('regressed', 0)} / {c.get('unchanged', 0)}</td>"
                           f'<td class="{cls}">{verdict}</td></tr>')
            out.append("</table>")
        out.append("<h3>Items</h3><table><tr><th>test</th><th>output</th><th>checks</th><th>result</th></tr>")
        for it in exp["items"]:
            checks = []
            for name, sc in (it.get("scores") or {}).items():
                if sc.get("error"):
                    checks.append(f'<div class="bad">✗ {_e(name)}: {_e(sc["error"])}</div>')
                else:
                    mark = "✓" if sc.get("passed") else ("✗" if sc.get("passed") is False else "·")
                    cls = "ok" if sc.get("passed") else ("bad" if sc.get("passed") is False else "muted")
                    val = _fmt(sc.get("value")) if not isinstance(sc.get("value"), str) else _e(_text(sc["value"], 60))
                    why = f" – {_e(_text(sc['explanation'], 300))}" if sc.get("explanation") else ""
                    checks.append(f'<div class="{cls}">{mark} {_e(name)} = {val}{why}</div>')
            if it.get("error") and not it.get("scores"):
                checks.append(f'<div class="bad">{_e(it["error"])}</div>')
            res = "passed" if it.get("passed") else ("failed" if it.get("passed") is False else "skipped")
            desc = (it.get("metadata") or {}).get("description")
            rep = f" #{it['repetition'] + 1}" if it.get("repetition") else ""
            name = f"{_e(desc)} <span class=muted>{_e(it['item_id'])}{rep}</span>" if desc else \
                f"<span class=muted>{_e(it['item_id'])}{rep}</span>"
            out.append(f"<tr><td>{name}<pre>{_e(_text(it.get('input'), 400))}</pre></td>"
                       f"<td><pre>{_e(_text(it.get('output'), 2000)) if it.get('output') is not None else '–'}</pre></td>"
                       f"<td>{''.join(checks)}</td><td>{_badge(res)}</td></tr>")
        out.append("</table>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(result: SuiteResult, path: str | Path) -> str:
    """Write ``result`` to ``path`` as JSON, YAML, JUnit XML, CSV or HTML (by suffix); returns the format."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        text, fmt = render_json(result), "json"
    elif suffix in (".yaml", ".yml"):
        import yaml

        text, fmt = yaml.safe_dump(json.loads(render_json(result)), sort_keys=False, allow_unicode=True), "yaml"
    elif suffix == ".csv":
        text, fmt = render_csv(result), "csv"
    elif suffix == ".xml":
        text, fmt = render_junit(result), "junit"
    elif suffix in (".html", ".htm"):
        text, fmt = render_html(result), "html"
    else:
        raise ValueError(f"{p.name}: name the report .json, .yaml, .xml (JUnit), .csv or .html")
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return fmt
