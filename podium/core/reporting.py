"""Pieces of the file reports that ``podium eval run`` (``podium.experiments.report``) and
``podium redteam run`` (``podium.redteam.report``) both write: JSON cleaning, text cutting,
HTML escaping and badges, the inline-SVG bar chart with CI whiskers, and the JUnit XML gate
cases and closing totals. The two report modules sit side by side (neither may import the
other), so what they share lives here; standard library only.
"""

from __future__ import annotations

import html
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["badge", "bar_chart", "clean", "close_suite", "cut", "esc", "gate_cases", "junit_document"]


def clean(obj: Any) -> Any:
    """``obj`` with non-finite floats as ``None`` and mapping keys as strings (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


def cut(v: Any, n: int) -> str:
    """``v`` as text (JSON unless a string), at most ``n`` characters, ending in … when cut."""
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= n else s[: n - 1] + "…"


def esc(v: Any) -> str:
    """``str(v)`` escaped for HTML text and attribute values."""
    return html.escape(str(v), quote=True)


def badge(status: str) -> str:
    """A coloured ``passed`` / ``failed`` / other (skip-coloured) badge."""
    cls = {"passed": "pass", "failed": "fail"}.get(status, "skip")
    return f'<span class="badge {cls}">{esc(status.upper())}</span>'


def bar_chart(rows: Sequence[tuple[str, float, float | None, float | None]], *, label_w: int, name_chars: int,
              width: int = 640) -> str:
    """Horizontal bars (0..1) with 95% CI whiskers as inline SVG; a row is (name, mean, low, high).
    Callers filter and clamp the rows; none gives an empty string."""
    if not rows:
        return ""
    bar_w, row_h = width - label_w - 60, 24
    h = row_h * len(rows) + 24
    parts = [f'<svg role="img" width="{width}" height="{h}" viewBox="0 0 {width} {h}">']
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + t * bar_w
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{h - 18}" stroke="currentColor" '
                     f'stroke-opacity="0.15"/><text x="{x:.1f}" y="{h - 4}" text-anchor="middle">{t:g}</text>')
    for i, (name, m, lo, hi) in enumerate(rows):
        y = i * row_h + 4
        parts.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{esc(name[:name_chars])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{m * bar_w:.1f}" height="{row_h - 8}" rx="3" '
                     f'fill="var(--bar)"><title>{esc(name)}: {m:.3f}</title></rect>')
        if lo is not None and hi is not None:
            x1, x2, yc = label_w + lo * bar_w, label_w + hi * bar_w, y + row_h / 2 - 1
            parts.append(f'<line x1="{x1:.1f}" y1="{yc:.1f}" x2="{x2:.1f}" y2="{yc:.1f}" stroke="var(--ci)" '
                         f'stroke-width="1.5"/><line x1="{x1:.1f}" y1="{yc - 5:.1f}" x2="{x1:.1f}" y2="{yc + 5:.1f}" '
                         f'stroke="var(--ci)"/><line x1="{x2:.1f}" y1="{yc - 5:.1f}" x2="{x2:.1f}" y2="{yc + 5:.1f}" '
                         f'stroke="var(--ci)"/>')
        parts.append(f'<text x="{width - 52}" y="{y + 14}">{m:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def gate_cases(suite: ET.Element, gates: Iterable[Mapping[str, Any]], classname: str) -> int:
    """A JUnit ``<testcase>`` per gate under ``suite`` (failed / skipped by its status); returns the failures."""
    fails = 0
    for g in gates:
        case = ET.SubElement(suite, "testcase", classname=classname, name=g["gate"], time="0")
        if g["status"] == "failed":
            fails += 1
            el = ET.SubElement(case, "failure", message=cut(g["detail"], 500), type="gate")
            el.text = g["detail"]
        elif g["status"] == "skipped":
            ET.SubElement(case, "skipped", message=cut(g["detail"], 500))
    return fails


def close_suite(suite: ET.Element, tests: int, failures: int, errors: int, seconds: float) -> None:
    """Set a ``<testsuite>``'s counts and time."""
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("time", f"{seconds:.3f}")


def junit_document(root: ET.Element, totals: Mapping[str, int], duration_s: float) -> str:
    """The ``<testsuites>`` document as text: ``totals`` and the run's time on the root, indented."""
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{duration_s:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
