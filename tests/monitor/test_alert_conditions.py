"""Alert conditions and the rule state machine, pure: threshold / change / anomaly, windows,
min samples, and decide()'s fire / cooldown / mute / renotify / resolve rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podium.core.metrics import MetricQuery
from podium.monitor.alerting.conditions import Outcome, anomaly, change, compare, threshold, windows, zscore
from podium.monitor.alerting.evaluator import alert_for, decide, dedup_key, manual_resolve, measure

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def rule(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(project_id="p1", id="r1", name="errors", severity="critical",
                                condition={"metric": "error_rate", "agg": "rate", "filters": {}},
                                kind="threshold", op=">", threshold=0.1, params={}, window_s=300, min_samples=0,
                                cooldown_s=600, renotify_s=0, eval_interval_s=10, channels=[], muted_until=None,
                                state="ok", episode=0, notified_episode=0, fired_at=None, last_notified_at=None,
                                last_value=None)
    base.update(kw)
    return base


def test_compare_and_threshold() -> None:
    assert compare(2, ">", 1) and compare(1, ">=", 1) and compare(0, "<", 1) and compare(1, "<=", 1)
    assert not compare(1, ">", 1)
    with pytest.raises(ValueError):
        compare(1, "==", 1)
    assert threshold(0.2, ">", 0.1).breached is True
    assert threshold(0.05, ">", 0.1).breached is False
    assert threshold(None, ">", 0.1).breached is None
    assert threshold(math.nan, ">", 0.1).breached is None


def test_change_relative_and_absolute() -> None:
    up = change(150, 100, ">", 0.4)
    assert up.breached is True and up.value == pytest.approx(0.5) and up.baseline == 100
    assert change(120, 100, ">", 0.4).breached is False
    assert change(50, 100, "<", -0.4).breached is True  # a 50% drop
    assert change(130, 100, ">=", 30, "absolute").breached is True
    assert change(100, 0, ">", 0.1).breached is None  # relative to zero: undefined
    assert change(100, None, ">", 0.1).breached is None
    with pytest.raises(ValueError):
        change(1, 1, ">", 0, "weird")


def test_anomaly_zscore() -> None:
    hist = [10.0, 11.0, 9.0, 10.0, 10.0, 11.0, 9.0]
    z = zscore(20, hist)
    assert z is not None and z > 10
    assert anomaly(20, hist, ">", 3).breached is True
    assert anomaly(10.5, hist, ">", 3).breached is False
    assert anomaly(0, hist, ">", 3).breached is False
    assert anomaly(0, hist, ">", 3, two_sided=True).breached is True
    assert anomaly(20, [10.0, None, 10.0], ">", 3).breached is None  # too little history
    assert zscore(5, [5.0, 5.0, 5.0]) == 0
    assert zscore(6, [5.0, 5.0, 5.0]) == math.inf


def test_windows() -> None:
    (cur,) = windows("threshold", NOW, 300, {})
    assert cur == (NOW - timedelta(seconds=300), NOW)
    cur, base = windows("change", NOW, 300, {"baseline_offset_s": 86400})
    assert base == (NOW - timedelta(seconds=86400 + 300), NOW - timedelta(seconds=86400))
    ws = windows("anomaly", NOW, 60, {"anomaly_windows": 5})
    assert len(ws) == 6 and ws[1] == (NOW - timedelta(seconds=120), NOW - timedelta(seconds=60))
    assert ws[-1] == (NOW - timedelta(seconds=360), NOW - timedelta(seconds=300))


class FakeSource:
    def __init__(self, values: dict[tuple[str, datetime], float | None], drift: float | None = None) -> None:
        self.values = values
        self.calls: list[tuple[str, datetime, datetime]] = []
        self.drift_value = drift

    def metric(self, project_id: str, q: MetricQuery, start: datetime, end: datetime) -> float | None:
        self.calls.append((q.metric, start, end))
        return self.values.get((q.metric, end))

    def drift(self, project_id: str, monitor: str, statistic: str) -> float | None:
        return self.drift_value


def test_measure_kinds_and_min_samples() -> None:
    src = FakeSource({("error_rate", NOW): 0.3, ("traces", NOW): 4})
    out, win = measure(rule(), NOW, src)
    assert out.breached is True and out.observed == 0.3 and win == (NOW - timedelta(seconds=300), NOW)
    out, _ = measure(rule(min_samples=10), NOW, src)
    assert out.breached is None and "needs 10" in out.reason
    day = NOW - timedelta(days=1)
    src = FakeSource({("latency", NOW): 300.0, ("latency", day): 100.0})
    r = rule(condition={"metric": "latency", "agg": "p95"}, kind="change", threshold=1.0,
             params={"baseline_offset_s": 86400, "change_mode": "relative"})
    out, _ = measure(r, NOW, src)
    assert out.breached is True and out.value == pytest.approx(2.0)
    vals: dict[tuple[str, datetime], float | None] = {("cost", NOW - timedelta(seconds=60 * i)): 1.0 + (i % 2) * 0.1
                                                      for i in range(1, 13)}
    vals[("cost", NOW)] = 5.0
    r = rule(condition={"metric": "cost", "agg": "sum"}, kind="anomaly", threshold=3, window_s=60,
             params={"anomaly_windows": 12})
    out, _ = measure(r, NOW, FakeSource(vals))
    assert out.breached is True and out.value is not None and out.value > 3
    r = rule(condition={"drift": "inputs", "statistic": "p_value"}, op="<", threshold=0.01)
    assert measure(r, NOW, FakeSource({}, drift=0.001))[0].breached is True
    assert measure(r, NOW, FakeSource({}, drift=0.5))[0].breached is False


HIT = Outcome(True, 0.3, 0.3, reason="value 0.3 > 0.1")
CLEAR = Outcome(False, 0.01, 0.01, reason="value 0.01 not > 0.1")
NODATA = Outcome(None, reason="no data")


def test_fire_then_resolve() -> None:
    d = decide(rule(), HIT, NOW)
    assert (d.event, d.send) == ("fired", "firing")
    assert d.changes["state"] == "firing" and d.changes["episode"] == 1 and d.changes["notified_episode"] == 1
    firing = rule(**{**d.changes})
    assert decide(firing, HIT, NOW + timedelta(seconds=10)).event is None  # still firing: quiet
    assert decide(firing, NODATA, NOW + timedelta(seconds=10)).event is None  # no data: keep the state
    r = decide(firing, CLEAR, NOW + timedelta(seconds=20))
    assert (r.event, r.send) == ("resolved", "resolved") and r.changes["state"] == "ok"
    assert decide(rule(), CLEAR, NOW).event is None
    broken = Outcome(None, error="RuntimeError: no drift monitor 'gone'")
    e = decide(rule(), broken, NOW)
    assert (e.event, e.send) == ("error", None) and e.changes["last_error"] == broken.error
    assert decide(rule(last_error=broken.error), broken, NOW).event is None  # once per run of failures
    assert decide(rule(last_error=broken.error), CLEAR, NOW).changes["last_error"] is None


def test_cooldown_holds_back_a_refiring_then_sends_it() -> None:
    last = NOW - timedelta(seconds=100)
    r = rule(episode=1, notified_episode=1, last_notified_at=last, cooldown_s=600)
    d = decide(r, HIT, NOW)
    assert (d.event, d.send) == ("suppressed", None) and "cooldown" in d.message
    held = rule(**{**r, **d.changes})
    assert held["state"] == "firing" and held["episode"] == 2 and held["notified_episode"] == 1
    assert decide(held, HIT, NOW + timedelta(seconds=60)).event is None
    later = decide(held, HIT, last + timedelta(seconds=601))
    assert (later.event, later.send) == ("fired", "firing")
    # a held-back episode that clears before the cooldown ends resolves without a message
    res = decide(held, CLEAR, NOW + timedelta(seconds=30))
    assert (res.event, res.send) == ("resolved", None)


def test_mute_suppresses_and_unmute_sends() -> None:
    r = rule(muted_until=NOW + timedelta(hours=1))
    d = decide(r, HIT, NOW)
    assert (d.event, d.send) == ("suppressed", None) and "muted" in d.message
    muted_firing = rule(**{**r, **d.changes})
    assert decide(muted_firing, HIT, NOW + timedelta(minutes=5)).event is None
    unmuted = rule(**{**muted_firing, "muted_until": None})
    assert decide(unmuted, HIT, NOW + timedelta(minutes=6)).send == "firing"
    # muted while firing: the resolution is recorded, not sent
    firing = rule(state="firing", episode=3, notified_episode=3, last_notified_at=NOW,
                  muted_until=NOW + timedelta(hours=1))
    assert (decide(firing, CLEAR, NOW).event, decide(firing, CLEAR, NOW).send) == ("resolved", None)


def test_renotify() -> None:
    firing = rule(state="firing", episode=1, notified_episode=1, last_notified_at=NOW, renotify_s=3600)
    assert decide(firing, HIT, NOW + timedelta(minutes=30)).event is None
    d = decide(firing, HIT, NOW + timedelta(hours=1))
    assert (d.event, d.send) == ("renotified", "firing") and d.changes["last_notified_at"] == NOW + timedelta(hours=1)


def test_manual_resolve_and_alert_payload() -> None:
    firing = rule(state="firing", episode=2, notified_episode=2, fired_at=NOW, last_value=0.3)
    d = manual_resolve(firing, NOW, "pk-1")
    assert (d.event, d.send, d.changes["state"]) == ("resolved", "resolved", "ok")
    assert manual_resolve(rule(state="firing", episode=2, notified_episode=1), NOW, "x").send is None
    a = alert_for(firing, "shop", "firing", value=0.3, message="value 0.3 > 0.1", base_url="http://h:1/", now=NOW)
    assert a.key == dedup_key(firing) == "podium/p1/r1/2"
    assert a.url == "http://h:1/alerts/r1" and a.severity == "critical" and a.threshold == 0.1
    assert a.title == "errors: rate(error_rate) > 0.1"
    res = alert_for(firing, "shop", "resolved", value=0.0, message="ok", base_url="http://h:1", now=NOW)
    assert res.status == "resolved" and res.key == a.key and res.ended_at == NOW
