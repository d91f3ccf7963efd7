"""The HTML report of a sweep (``podium eval sweep --report out.html``): a scatter of mean score
(with its 95% CI whiskers) against cost per 1,000 items, p95 latency in each point's hover
title, dominated and stopped configurations greyed; then the non-dominated configurations in a
table, each compared with the best-scoring one by the paired bootstrap (``podium.evals.stats``)
and marked "significantly worse" when the whole CI of the difference is below 0; then every
trial.

Self-contained like the suite report (``report.py``, whose stylesheet it reuses): inline CSS and
SVG, no scripts, fonts or links outside the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podium.core.reporting import badge as _badge
from podium.core.reporting import esc as _e
from podium.evals import stats
from podium.experiments.report import _CSS
from podium.experiments.sweep import SweepResult, Trial

__all__ = ["compare_with_best", "render_sweep_html", "scatter_svg", "write_sweep_report"]


def compare_with_best(result: SweepResult, *, confidence: float = 0.95, seed: int = 0) -> dict[int, dict[str, Any]]:
    """Per front trial: ``{"diff", "ci": [lo, hi], "significant"}`` of its per-item scores minus the
    best-scoring front member's (the best score of the sweep; paired over the items both ran); the
    best compares with itself as 0."""
    done = result.front
    if not done:
        return {}
    best = max(done, key=lambda t: (t.objectives[0], -t.objectives[1], -t.number))
    out: dict[int, dict[str, Any]] = {}
    for t in result.front:
        if t.number == best.number or not t.scores or not best.scores:
            out[t.number] = {"best": best.number, "diff": 0.0, "ci": [0.0, 0.0], "significant": False}
            continue
        d = stats.paired_bootstrap_diff(t.scores, best.scores, confidence=confidence, n_resamples=4000, seed=seed)
        out[t.number] = {"best": best.number, "diff": d.diff, "ci": [d.low, d.high], "significant": d.high < 0}
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{float(v):.{digits}f}"


def _hover(t: Trial) -> str:
    m = t.metrics
    ci = m.get("score_ci") or [None, None]
    return (f"#{t.number} {t.config.label()} ({t.status})\nscore {_fmt(m.get('score_mean'))} "
            f"[{_fmt(ci[0])}, {_fmt(ci[1])}]\ncost per 1k ${_fmt(m.get('cost_per_1k'), 4)}\n"
            f"p95 {_fmt(m.get('p95_ms'), 0)} ms")


def scatter_svg(trials: list[Trial], *, width: int = 720, height: int = 360) -> str:
    """Mean score (y, with CI whiskers) against cost per 1,000 items (x); front points coloured
    and joined in cost order, dominated points grey, stopped ones hollow."""
    pts = [t for t in trials if t.metrics and t.status != "failed"]
    left, right, top, bottom = 56, 16, 12, 40
    w, h = width - left - right, height - top - bottom
    costs = [float(t.metrics.get("cost_per_1k") or 0.0) for t in pts] or [0.0]
    lows = [float((t.metrics.get("score_ci") or [0, 0])[0]) for t in pts] or [0.0]
    highs = [float((t.metrics.get("score_ci") or [1, 1])[1]) for t in pts] or [1.0]
    x0, x1 = 0.0, max(costs) * 1.05 or 1.0
    y0, y1 = min(0.0, min(lows)), max(1.0, max(highs))

    def px(c: float) -> float:
        return left + (c - x0) / (x1 - x0) * w

    def py(s: float) -> float:
        return top + (1 - (s - y0) / (y1 - y0)) * h

    out = [f'<svg class="scatter" role="img" aria-label="score against cost per 1,000 items" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):  # axes and ticks
        yv = y0 + (y1 - y0) * k / 4
        xv = x0 + (x1 - x0) * k / 4
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" stroke="var(--line)"/>'
                   f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.2f}</text>'
                   f'<text x="{px(xv):.1f}" y="{top + h + 16}" text-anchor="middle">${xv:.4g}</text>')
    out.append(f'<text x="{left + w / 2:.0f}" y="{height - 4}" text-anchor="middle">cost per 1,000 items (USD)</text>'
               f'<text transform="translate(12 {top + h / 2:.0f}) rotate(-90)" text-anchor="middle">mean score</text>')
    front = sorted((t for t in pts if t.front), key=lambda t: float(t.metrics.get("cost_per_1k") or 0.0))
    if len(front) > 1:
        path = " ".join(f"{px(float(t.metrics.get('cost_per_1k') or 0.0)):.1f},"
                        f"{py(float(t.metrics.get('score_mean') or 0.0)):.1f}" for t in front)
        out.append(f'<polyline class="front-line" points="{path}" fill="none" stroke="var(--bar)" '
                   'stroke-dasharray="4 3"/>')
    for t in sorted(pts, key=lambda t: t.front):  # the front drawn last, on top
        m = t.metrics
        x, y = px(float(m.get("cost_per_1k") or 0.0)), py(float(m.get("score_mean") or 0.0))
        lo, hi = (m.get("score_ci") or [None, None])[:2]
        colour = "var(--bar)" if t.front else "#9aa0a6"
        cls = "front" if t.front else ("stopped" if t.status == "stopped" else "dominated")
        out.append(f'<g class="pt {cls}"><title>{_e(_hover(t))}</title>')
        if lo is not None and hi is not None:
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py(float(lo)):.1f}" y2="{py(float(hi)):.1f}" '
                       f'stroke="{colour}" opacity="{1 if t.front else 0.5}"/>')
        fill = "none" if t.status == "stopped" else colour
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{5 if t.front else 4}" fill="{fill}" stroke="{colour}" '
                   f'opacity="{1 if t.front else 0.55}"/></g>')
    out.append("</svg>")
    return "".join(out)


def render_sweep_html(result: SweepResult) -> str:
    """The whole report page (see the module docstring)."""
    sig = compare_with_best(result)
    s = result.summary
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(result.suite)}: sweep</title><style>{_CSS}</style></head><body>",
           f"<h1>{_e(result.suite)}: cost and quality sweep {_badge(result.status)}</h1>",
           f'<div class="muted">{_e(result.space.method)} search · {s.get("trials", 0)} trials '
           f'({s.get("complete", 0)} complete, {s.get("stopped", 0)} stopped, {s.get("failed", 0)} failed) of a '
           f'{s.get("grid_size", "?")}-configuration space · spent ${result.spent_usd:.4f} · '
           f'{result.duration_s:.1f} s · run {_e(result.run_group)}'
           + (f" · sweep {_e(result.sweep_id)}" if result.sweep_id else "") + "</div>"]
    if s.get("reason"):
        out.append(f'<div class="card bad">{_e(s["reason"])}</div>')
    out.append("<h2>Score against cost</h2><div class=muted>Each point is a configuration: mean score with its 95% "
               "CI, cost per 1,000 items; hover for the configuration and p95 latency. Coloured: the Pareto front "
               "(score up, cost down, p95 down); grey: dominated; hollow: stopped early.</div>")
    out.append(f'<div class="card">{scatter_svg(result.trials)}</div>')
    out.append('<h2>The front</h2><table class="front-table"><tr><th>#</th><th>configuration</th>'
               "<th class=num>score (95% CI)</th><th class=num>pass rate</th><th class=num>$ per 1k</th>"
               "<th class=num>p95 ms</th><th class=num>vs best (95% CI)</th><th>verdict</th></tr>")
    for t in sorted(result.front, key=lambda t: -t.objectives[0]):
        m, c = t.metrics, sig.get(t.number, {})
        ci = m.get("score_ci") or [None, None]
        if c.get("best") == t.number:
            verdict, cls = "best score", "ok"
        elif c.get("significant"):
            verdict, cls = "significantly worse than the best", "bad"
        else:
            verdict, cls = "not significantly worse", ""
        diff = f"{c['diff']:+.3f} ({c['ci'][0]:+.3f} to {c['ci'][1]:+.3f})" if c else "–"
        out.append(f"<tr><td>{t.number}</td><td>{_e(t.config.label())}</td><td class=num>{_fmt(m.get('score_mean'))}"
                   f" ({_fmt(ci[0])} – {_fmt(ci[1])})</td><td class=num>{_fmt(m.get('pass_rate'))}</td>"
                   f"<td class=num>{_fmt(m.get('cost_per_1k'), 4)}</td><td class=num>{_fmt(m.get('p95_ms'), 0)}</td>"
                   f'<td class=num>{diff}</td><td class="{cls}">{verdict}</td></tr>')
    out.append("</table><h2>Every trial</h2><table><tr><th>#</th><th>configuration</th><th>status</th>"
               "<th class=num>items</th><th class=num>score</th><th class=num>$ per 1k</th><th class=num>p95 ms</th>"
               "<th>experiment</th></tr>")
    for t in result.trials:
        m = t.metrics
        status = "front" if t.front else t.status
        out.append(f'<tr class="{"" if t.front else "muted"}"><td>{t.number}</td><td>{_e(t.config.label())}'
                   + (f'<div class="bad">{_e(t.error)}</div>' if t.error else "")
                   + f"</td><td>{_e(status)}</td><td class=num>{t.items}</td><td class=num>"
                   f"{_fmt(m.get('score_mean'))}</td><td class=num>{_fmt(m.get('cost_per_1k'), 4)}</td>"
                   f"<td class=num>{_fmt(m.get('p95_ms'), 0)}</td><td>{_e(t.experiment_id or '–')}</td></tr>")
    out.append("</table></body></html>\n")
    return "\n".join(out)


def write_sweep_report(result: SweepResult, path: str | Path) -> None:
    """Write the HTML report to ``path``."""
    Path(path).write_text(render_sweep_html(result), encoding="utf-8")
