"""Reports of a red-team run: JSON (everything), JUnit XML (a test case per probe attempt,
failed when the attack succeeded; one per gate) and a self-contained HTML page (inline CSS and
SVG, as ``podium eval run``'s report; nothing loaded from outside the file).

``write_report(result, path)`` picks the format from the suffix: ``.json``, ``.xml``, ``.html``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from podium.core.reporting import badge as _badge
from podium.core.reporting import bar_chart, close_suite, gate_cases, junit_document
from podium.core.reporting import clean as _clean
from podium.core.reporting import cut as _cut
from podium.core.reporting import esc as _e

__all__ = ["REPORT_SUFFIXES", "render_html", "render_json", "render_junit", "write_report"]

REPORT_SUFFIXES = (".json", ".xml", ".html", ".htm")


def render_json(result: Mapping[str, Any]) -> str:
    return json.dumps(_clean(result), indent=2, ensure_ascii=False, default=str) + "\n"


def _case_name(r: Mapping[str, Any]) -> str:
    rep = f" #{r['repetition'] + 1}" if r.get("repetition") else ""
    return f"{r['probe_id']}{rep}"


def _conversation(r: Mapping[str, Any]) -> str:
    parts = []
    for i, turn in enumerate(r.get("turns") or []):
        parts.append(f"user: {turn}")
        if i < len(r.get("answers") or []):
            parts.append(f"assistant: {r['answers'][i]}")
    return "\n\n".join(parts)


def render_junit(result: Mapping[str, Any]) -> str:
    """One ``<testsuite>`` per family; a failure is an attack that succeeded (after the guard,
    when the run had one), an error an attempt the target could not answer."""
    guarded = result.get("guard") is not None
    root = ET.Element("testsuites", name=f"podium redteam: {result['name']}")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    by_family: dict[str, list[Mapping[str, Any]]] = {}
    for r in result["results"]:
        by_family.setdefault(r["family"], []).append(r)
    for fam, rs in by_family.items():
        suite = ET.SubElement(root, "testsuite", name=fam, timestamp=str(result.get("started_at", "")))
        props = ET.SubElement(suite, "properties")
        s = result["families"][fam]
        for k in ("asr", "low", "high", "asr_after_guard"):
            if k in s:
                ET.SubElement(props, "property", name=k, value=str(s[k]))
        n = fails = errs = 0
        secs_total = 0.0
        for r in rs:
            n += 1
            secs = (r.get("latency_ms") or 0.0) / 1000
            secs_total += secs
            case = ET.SubElement(suite, "testcase", classname=f"redteam.{fam}", name=_case_name(r), time=f"{secs:.3f}")
            won = r.get("success_after_guard") if guarded else r.get("success")
            if r.get("error"):
                errs += 1
                el = ET.SubElement(case, "error", message=_cut(r["error"], 500), type="target_error")
                el.text = r["error"]
            elif won:
                fails += 1
                el = ET.SubElement(case, "failure", message=_cut(f"attack succeeded: {r.get('reason')}", 500),
                                   type="attack_succeeded")
                el.text = _cut(_conversation(r), 10_000)
            out = ET.SubElement(case, "system-out")
            g = r.get("guard")
            extra = f"\n\nguard: {g}" if g else ""
            out.text = _cut(_conversation(r), 10_000) + f"\n\nverdict: {r.get('reason')}" + extra
        close_suite(suite, n, fails, errs, secs_total)
        for k, v in (("tests", n), ("failures", fails), ("errors", errs)):
            totals[k] += v
    gates = ET.SubElement(root, "testsuite", name="gates", tests=str(len(result["gates"])))
    gfails = gate_cases(gates, result["gates"], "redteam.gates")
    gates.set("failures", str(gfails))
    gates.set("errors", "0")
    totals["tests"] += len(result["gates"])
    totals["failures"] += gfails
    return junit_document(root, totals, result.get("duration_s", 0.0))


# --- HTML ---------------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1d232a;--muted:#5d6975;--bg:#fff;--card:#f6f8fa;--line:#d8dee4;--ok:#1a7f37;--bad:#cf222e;
--skip:#9a6700;--bar:#cf222e;--bar2:#0969da;--ci:#1d232a}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9aa7b2;--bg:#0d1117;--card:#161b22;--line:#30363d;
--ok:#3fb950;--bad:#f85149;--skip:#d29922;--bar:#f85149;--bar2:#4493f8;--ci:#e6edf3}}
*{box-sizing:border-box}body{margin:0;padding:24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
color:var(--fg);background:var(--bg)}h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.muted{color:var(--muted)}.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;
margin:10px 0}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.pass{background:var(--ok)}.fail{background:var(--bad)}.skip{background:var(--skip)}table{border-collapse:collapse;
width:100%;margin:6px 0}th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted)}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
.ok{color:var(--ok)}.bad{color:var(--bad)}details summary{cursor:pointer}svg text{fill:var(--fg);font:12px system-ui,sans-serif}
"""


def _f(v: Any, digits: int = 3) -> str:
    return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else _e(v))


def _chart(families: Mapping[str, Mapping[str, Any]], key: str, width: int = 640) -> str:
    """Horizontal bars of the attack-success rate per family with 95% CI whiskers (inline SVG)."""
    suffix = key.removeprefix("asr")
    rows = [(f, s[key], s.get("low" + suffix), s.get("high" + suffix)) for f, s in families.items()
            if s.get(key) is not None]
    return bar_chart(rows, label_w=190, name_chars=30, width=width)


def render_html(result: Mapping[str, Any]) -> str:
    guarded = result.get("guard") is not None
    status = "passed" if result["passed"] else "failed"
    t = result["target"]
    target = " · ".join(f"{k} {v}" for k, v in t.items() if v is not None)
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>red team {_e(result['name'])}: {status}</title><style>{_CSS}</style></head><body>",
           f"<h1>Red team: {_e(result['name'])} {_badge(status)}</h1>",
           f'<div class="muted">{_e(target)} · {_e(result.get("started_at", ""))} · '
           f'{float(result.get("duration_s") or 0):.1f} s · grader: {_e(result["grader"]["refusal"])}'
           f'{" + judge " + _e(result["grader"]["judge"]) if result["grader"].get("judge") else ""}'
           f'{" · guard policy " + _e(result["guard"]) if guarded else ""}</div>',
           "<h2>Gates</h2><table><tr><th>gate</th><th>status</th><th>detail</th></tr>"]
    for g in result["gates"]:
        out.append(f"<tr><td>{_e(g['gate'])}</td><td>{_badge(g['status'])}</td><td>{_e(g['detail'])}</td></tr>")
    out.append("</table><h2>Attack-success rate per family (95% Wilson CI)</h2>")
    out.append(f'<div class="card">{_chart(result["families"], "asr")}</div>')
    if guarded:
        out.append(f"<h2>After the guard policy {_e(result['guard'])}</h2>")
        out.append(f'<div class="card">{_chart(result["families"], "asr_after_guard")}</div>')
    head = ["family", "probes", "attempts", "successes", "ASR", "95% CI", "errors"]
    if guarded:
        head += ["blocked (input)", "blocked (output)", "successes blocked", "ASR after guard"]
    out.append("<table><tr>" + "".join(f"<th{' class=num' if i else ''}>{_e(h)}</th>" for i, h in enumerate(head))
               + "</tr>")
    for fam, s in [*result["families"].items(), ("overall", result["overall"])]:
        ci = f"{_f(s.get('low'))} – {_f(s.get('high'))}" if s.get("low") is not None else "–"
        cells = [s["probes"], s["attempts"], s["successes"], _f(s.get("asr")), ci, s["errors"]]
        if guarded:
            cells += [s["blocked_input"], s["blocked_output"], s["successes_blocked"], _f(s.get("asr_after_guard"))]
        name = f"<b>{_e(fam)}</b>" if fam == "overall" else _e(fam)
        out.append(f"<tr><td>{name}</td>" + "".join(f"<td class=num>{c}</td>" for c in cells) + "</tr>")
    out.append("</table><h2>Attempts</h2><table><tr><th>probe</th><th>conversation</th><th>verdict</th>"
               "<th>result</th></tr>")
    for r in result["results"]:
        won = r.get("success_after_guard") if guarded else r.get("success")
        res = "error" if r.get("error") else ("failed" if won else "passed")
        label = {"failed": "ATTACK SUCCEEDED", "passed": "DEFENDED", "error": "ERROR"}[res]
        cls = {"failed": "fail", "passed": "pass"}.get(res, "skip")
        why = r.get("error") or r.get("reason") or ""
        if guarded and r.get("guard") and r["guard"].get("blocked_by"):
            why += f" · guard blocked ({r['guard']['blocked_by']})"
        rep = f" #{r['repetition'] + 1}" if r.get("repetition") else ""
        out.append(f"<tr><td>{_e(r['probe_id'])}{rep}<div class=muted>{_e(r['family'])}"
                   f"{' · ' + _e(r['strategy']) if r.get('strategy') else ''}</div></td>"
                   f"<td><details><summary>{_e(_cut(r['turns'][-1], 120))}</summary><pre>"
                   f"{_e(_cut(_conversation(r), 6000))}</pre></details></td><td>{_e(why)}</td>"
                   f'<td><span class="badge {cls}">{label}</span></td></tr>')
    out.append("</table></body></html>\n")
    return "\n".join(out)


def write_report(result: Mapping[str, Any], path: str | Path) -> str:
    """Write ``result`` as JSON, JUnit XML or HTML (by suffix); returns the format's name."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        text, fmt = render_json(result), "json"
    elif suffix == ".xml":
        text, fmt = render_junit(result), "junit"
    elif suffix in (".html", ".htm"):
        text, fmt = render_html(result), "html"
    else:
        raise ValueError(f"{p.name}: name the report .json, .xml (JUnit) or .html")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return fmt
