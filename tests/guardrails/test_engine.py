"""The engine on its own: thresholds, actions, redaction and restore, fail-open/closed, time
budgets, and stream windows. Scanners here are tiny real scanners registered for the test."""

from __future__ import annotations

import re
import time

import pytest

from podium.errors import ValidationFailed
from podium.guardrails import Context, Finding, Guard, Result, Scanner
from podium.guardrails.registry import register_scanner


class Word(Scanner):
    """Fires on a word; the finding's label is the word in upper case."""

    name = "t-word"

    def __init__(self, word: str = "bad", score: float = 1.0):
        self.word = word
        self.score = score

    def scan(self, text: str, ctx: Context) -> Result:
        found = [Finding(m.start(), m.end(), self.word.upper(), m.group())
                 for m in re.finditer(re.escape(self.word), text)]
        return Result(score=self.score if found else 0.0, findings=found, detail=f"{len(found)} x {self.word}")


class Boom(Scanner):
    name = "t-boom"

    def scan(self, text: str, ctx: Context) -> Result:
        raise RuntimeError("model file missing")


class Sleepy(Scanner):
    name = "t-sleepy"
    cost = "slow"

    def scan(self, text: str, ctx: Context) -> Result:
        time.sleep(0.5)
        return Result(score=0.0)


class OutputOnly(Scanner):
    name = "t-output-only"
    kinds = frozenset({"output"})

    def scan(self, text: str, ctx: Context) -> Result:
        return Result(score=0.0)


@pytest.fixture(autouse=True, scope="module")
def _scanners() -> None:
    for cls in (Word, Boom, Sleepy, OutputOnly):
        register_scanner(cls.name, cls, replace_existing=True)


def test_threshold_and_strongest_action_wins() -> None:
    g = Guard({"name": "p", "input": [
        {"type": "t-word", "params": {"word": "meh", "score": 0.4}, "action": "block"},  # below 0.5
        {"type": "t-word", "params": {"word": "bad"}, "action": "flag"},
        {"type": "t-word", "params": {"word": "worse"}, "action": "warn"},
    ]})
    d = g.scan("meh, bad and worse", "input")
    assert d.action == "flag"
    assert [o.verdict for o in d.outcomes] == ["pass", "fail", "fail"]
    assert [o.action for o in d.outcomes] == ["none", "flag", "warn"]
    assert d.text == "meh, bad and worse"
    assert g.scan("fine", "input").action == "allow"


def test_block_fails_fast_and_names_the_rule() -> None:
    g = Guard({"input": [{"type": "t-word", "name": "no-bad", "action": "block"},
                         {"type": "t-word", "params": {"word": "x"}, "action": "flag"}]})
    d = g.scan("bad x", "input")
    assert d.blocked and d.blocked_by is not None and d.blocked_by.rule == "no-bad"
    assert len(d.outcomes) == 1  # fail_fast
    assert "no-bad" in d.reason() and "1 x bad" in d.reason()


def test_redact_numbers_placeholders_and_restores_reversible_ones() -> None:
    g = Guard({"input": [
        {"type": "t-word", "params": {"word": "alice"}, "action": "redact", "reversible": True},
        {"type": "t-word", "params": {"word": "secret"}, "action": "redact"},
    ]})
    d = g.scan("alice told alice the secret", "input")
    assert d.action == "redact"
    assert d.text == "<ALICE_1> told <ALICE_2> the <SECRET_1>"
    assert d.restore("Hi <ALICE_1>, about <SECRET_1>") == "Hi alice, about <SECRET_1>"


def test_errors_fail_open_or_closed_and_are_counted() -> None:
    open_ = Guard({"input": [{"type": "t-boom"}]}).scan("x", "input")
    assert open_.action == "allow" and open_.errors[0].verdict == "error"
    assert "model file missing" in (open_.errors[0].error or "")
    closed = Guard({"on_error": "closed", "input": [{"type": "t-boom"}]}).scan("x", "input")
    assert closed.blocked and "scanner error" in closed.reason()
    per_rule = Guard({"input": [{"type": "t-boom", "on_error": "closed"}]}).scan("x", "input")
    assert per_rule.blocked


def test_slow_scanner_past_its_budget_times_out() -> None:
    g = Guard({"timeout_ms": 50, "input": [{"type": "t-sleepy"}]})
    t0 = time.perf_counter()
    d = g.scan("x", "input")
    assert time.perf_counter() - t0 < 0.4
    assert d.outcomes[0].verdict == "timeout" and d.action == "allow"


async def test_ascan_matches_scan_and_enforces_budget() -> None:
    g = Guard({"timeout_ms": 50, "on_error": "closed",
               "input": [{"type": "t-word", "action": "flag"}, {"type": "t-sleepy"}]})
    d = await g.ascan("bad", "input")
    assert [o.verdict for o in d.outcomes] == ["fail", "timeout"]
    assert d.blocked


def test_bad_policies_are_400s_that_say_what_to_do() -> None:
    with pytest.raises(ValidationFailed, match="unknown scanner 'nope'"):
        Guard({"input": [{"type": "nope"}]})
    with pytest.raises(ValidationFailed, match="output text only"):
        Guard({"input": [{"type": "t-output-only"}]})
    with pytest.raises(ValidationFailed, match="bad params for guardrail scanner 't-word'"):
        Guard({"input": [{"type": "t-word", "params": {"colour": "red"}}]})
    with pytest.raises(ValidationFailed, match="unknown guardrail policy"):
        Guard("no-such-policy")
    with pytest.raises(ValidationFailed, match="action"):
        Guard({"input": [{"type": "t-word", "action": "explode"}]})


def test_observer_sees_every_decision_and_cannot_break_a_scan() -> None:
    seen: list[str] = []

    def observer(d):  # type: ignore[no-untyped-def]  # test callback
        seen.append(d.action)
        raise RuntimeError("metrics down")

    g = Guard({"input": [{"type": "t-word", "action": "flag"}]}, observer=observer)
    assert g.scan("bad", "input").action == "flag"
    assert seen == ["flag"]


def test_stream_releases_only_scanned_windows_and_stops_on_block() -> None:
    g = Guard({"stream_window": 16, "output": [{"type": "t-word", "params": {"word": "FORBIDDEN"}}]})
    s = g.stream()
    text = "a" * 40 + "FORBIDDEN" + "b" * 40
    released = ""
    for i in range(0, len(text), 3):
        released += s.feed(text[i:i + 3])
        if s.blocked:
            break
    released += s.finish()
    assert s.blocked and s.decision is not None and s.decision.blocked
    assert "FORBIDDEN" not in released
    # Nothing past the window that held the match was released.
    assert len(released) <= text.index("FORBIDDEN") + 16


def test_stream_catches_a_match_split_across_windows() -> None:
    g = Guard({"stream_window": 16, "output": [{"type": "t-word", "params": {"word": "FORBIDDEN"}}]})
    s = g.stream()
    text = "x" * 12 + "FORBIDDEN" + "y" * 30  # straddles the first window boundary
    released = "".join(s.feed(c) for c in text) + s.finish()
    assert s.blocked
    assert len(released) < len(text)


def test_stream_passes_clean_text_whole() -> None:
    g = Guard({"stream_window": 16, "output": [{"type": "t-word", "params": {"word": "FORBIDDEN"}}]})
    s = g.stream()
    text = "hello world, " * 10
    released = "".join(s.feed(text[i:i + 5]) for i in range(0, len(text), 5)) + s.finish()
    assert released == text and not s.blocked
    assert s.summary().action == "allow"
