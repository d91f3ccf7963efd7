"""Redaction rules without a server: validation (errors name the rule and key), the path syntax,
the presets (Luhn-checked cards, mod-97 IBANs), copy-on-write rewriting, fail-open vs fail-closed,
and batches (rejected items leave the others)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from podium.errors import ConfigurationError, ValidationFailed
from podium.governance import redaction_rules
from podium.governance.redaction import Redactor, preview
from podium.governance.redaction_rules import compile_rules, parse_path, validate_document
from podium.store.repos.ingest import IngestBatch

CARD = "4111 1111 1111 1111"
EMAIL = "ana.secret@example.org"
KEY = "sk-proj-" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7j"


def _rs(*rules: dict[str, Any], fail_closed: bool = False) -> redaction_rules.RuleSet:
    return compile_rules(validate_document({"rules": list(rules), "fail_closed": fail_closed}))


@pytest.mark.parametrize(("rule", "field", "fragment"), [
    ({"preset": "nope"}, "rules[1].preset", "unknown preset"),
    ({"preset": ["x"]}, "rules[1].preset", "unknown preset"),
    ({"pattern": "("}, "rules[1].pattern", "not a valid regular expression"),
    ({"pattern": "x*"}, "rules[1].pattern", "empty string"),
    ({"pattern": "x", "flags": "q"}, "rules[1].flags", "letters"),
    ({"path": "secret.x"}, "rules[1].path", "starts with a stored field"),
    ({"path": "input..x"}, "rules[1].path", "unexpected"),
    ({"path": "input.x", "fields": ["input"]}, "rules[1].fields", "unknown key"),
    ({"preset": "email", "fields": ["nope"]}, "rules[1].fields", "unknown nope"),
    ({"preset": "email", "max_chars": 0}, "rules[1].max_chars", "whole number"),
    ({"preset": "email", "colour": 1}, "rules[1].colour", "unknown key"),
    ({"preset": "email", "path": "input"}, "rules[1]", "exactly one"),
    ({"scanner": "toxicity"}, "rules[1].scanner", "pii or secrets"),
    ({"scanner": "pii", "entities": ["PERSON"]}, "rules[1].entities", "regex engine does not know"),
    ({"scanner": "secrets", "min_entropy": 99}, "rules[1].min_entropy", "between 0 and 8"),
    ({"scanner": "secrets", "engine": "regex"}, "rules[1].engine", "not a parameter"),
    ("email", "rules[1]", "an object"),
])
def test_validation_names_the_rule_and_key(rule: Any, field: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as e:
        validate_document({"rules": [{"preset": "email"}, rule]})
    fields = [d["field"] for d in e.value.details]
    assert field in fields, e.value.details
    assert any(fragment in d["message"] for d in e.value.details), e.value.details
    assert e.value.message.startswith(f"invalid redaction rules: {field}")


def test_document_shape_errors() -> None:
    with pytest.raises(ValidationFailed) as e:
        validate_document({"rules": {}, "fail_closed": "yes", "extra": 1})
    assert {d["field"] for d in e.value.details} == {"rules", "fail_closed", "extra"}
    assert validate_document([{"preset": "email"}]) == {"rules": [{"preset": "email"}], "fail_closed": False}


def test_path_syntax() -> None:
    assert parse_path("input.messages[*].content") == ("input", (("key", "messages"), ("any", None),
                                                                 ("key", "content")))
    assert parse_path('attributes["http.request.header.authorization"]') == (
        "attributes", (("key", "http.request.header.authorization"),))
    assert parse_path("metadata.**.password") == ("metadata", (("deep", None), ("key", "password")))
    assert parse_path("output.choices[0].message.*") == ("output", (("key", "choices"), ("index", 0),
                                                                    ("key", "message"), ("any", None)))
    assert parse_path("metadata['a\\'b']") == ("metadata", (("key", "a'b"),))


def test_paths_replace_what_they_reach_copy_on_write() -> None:
    rs = _rs({"path": "input.messages[*].content"}, {"path": "metadata.customer.email", "replacement": "[E]"},
             {"path": 'attributes["http.request.header.authorization"]'}, {"path": "metadata.**.password"},
             {"path": "output.choices[1]"})
    original = {
        "input": {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": {"x": 1}}],
                  "keep": "me"},
        "metadata": {"customer": {"email": EMAIL, "id": 7}, "deep": [{"password": "p1"}, {"n": {"password": 2}}],
                     "password": "top"},
        "attributes": {"http.request.header.authorization": "Bearer zzz", "http.method": "POST"},
        "output": {"choices": ["a", "b"]},
    }
    sample = copy.deepcopy(original)
    out = preview(rs, sample)
    assert sample == original  # the input is never changed in place
    red = out["redacted"]
    assert [m["content"] for m in red["input"]["messages"]] == ["[REDACTED]", "[REDACTED]"]
    assert red["input"]["keep"] == "me" and red["input"]["messages"][0]["role"] == "user"
    assert red["metadata"]["customer"] == {"email": "[E]", "id": 7}
    assert red["metadata"]["deep"] == [{"password": "[REDACTED]"}, {"n": {"password": "[REDACTED]"}}]
    assert red["metadata"]["password"] == "[REDACTED]"
    assert red["attributes"] == {"http.request.header.authorization": "[REDACTED]", "http.method": "POST"}
    assert red["output"] == {"choices": ["a", "[REDACTED]"]}
    assert out["changes"] == 8 and out["failures"] == [] and out["rejected"] is None


def test_path_reads_into_json_strings() -> None:
    rs = _rs({"path": "input.messages[*].content"})
    out = preview(rs, {"input": '{"messages": [{"role": "user", "content": "secret"}]}'})
    assert out["redacted"]["input"] == '{"messages": [{"role": "user", "content": "[REDACTED]"}]}'


def test_presets_find_checked_values_only() -> None:
    rs = _rs({"preset": "credit_card"}, {"preset": "email"}, {"preset": "api_key"}, {"preset": "iban"},
             {"preset": "phone"})
    text = (f"card {CARD} and 4111111111111112 (not Luhn), mail {EMAIL}, key {KEY}, "
            "iban GB82 WEST 1234 5698 7654 32, bad iban GB00 WEST 1234 5698 7654 32, call +44 20 7946 0958, "
            "version 1.2.3")
    red = preview(rs, {"input": text})["redacted"]["input"]
    assert CARD not in red and EMAIL not in red and KEY not in red and "GB82 WEST" not in red
    assert "[REDACTED:card]" in red and "[REDACTED:email]" in red and "[REDACTED:secret]" in red
    assert "[REDACTED:iban]" in red and "[REDACTED:phone]" in red
    assert "4111111111111112" in red and "GB00 WEST" in red and "version 1.2.3" in red


def test_text_rules_reach_every_string_and_long_integers_but_not_keys_or_ids() -> None:
    rs = _rs({"preset": "credit_card"}, {"pattern": r"ACME-\d{6}", "replacement": "[REDACTED:account]",
                                         "fields": ["metadata"]})
    out = preview(rs, {"metadata": {"n": 4111111111111111, "small": 42, "flag": True, "acct": "ACME-123456",
                                    "list": [CARD, 1.5]},
                       "input": "ACME-123456", "user_id": CARD})
    red = out["redacted"]
    assert red["metadata"] == {"n": "[REDACTED:card]", "small": 42, "flag": True, "acct": "[REDACTED:account]",
                               "list": ["[REDACTED:card]", 1.5]}
    assert red["input"] == "ACME-123456"  # the pattern rule is limited to metadata
    assert red["user_id"] == CARD and out["ignored_fields"] == ["user_id"]


def test_scanners_are_the_guardrails_scanners() -> None:
    rs = _rs({"scanner": "pii", "entities": ["EMAIL_ADDRESS"]}, {"scanner": "secrets", "labels": ["password"]})
    red = preview(rs, {"input": f"write to {EMAIL}; password=Hunter2Hunter2"})["redacted"]["input"]
    assert red == "write to [REDACTED:email_address]; password=[REDACTED:password]"


def test_fail_open_counts_and_fail_closed_rejects() -> None:
    rules = [{"preset": "email", "max_chars": 40}, {"preset": "credit_card"}]
    long_text = f"{EMAIL} " + "x" * 60 + f" {CARD}"
    open_ = preview(compile_rules(validate_document({"rules": rules})), {"input": long_text})
    assert open_["rejected"] is None
    assert open_["failures"] == [{"rule": 0, "field": "input", "reason": "skips values over max_chars 40 "
                                                                           f"(this one has {len(long_text)})"}]
    assert EMAIL in open_["redacted"]["input"] and CARD not in open_["redacted"]["input"]  # other rules still ran
    closed = preview(compile_rules(validate_document({"rules": rules, "fail_closed": True})), {"input": long_text})
    assert closed["redacted"] is None
    assert closed["rejected"].startswith("could not redact input: rules[0] (preset email) skips values over")
    assert EMAIL not in closed["rejected"] and "fail-closed" in closed["rejected"]


def test_a_missing_scanner_is_accepted_with_a_warning_and_fails_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(**_kw: Any) -> Any:
        raise ConfigurationError("the pii scanner's presidio engine needs Presidio and spaCy's English model: pip")

    monkeypatch.setattr(redaction_rules, "make_pii_scanner", missing)
    doc = validate_document({"rules": [{"scanner": "pii", "engine": "presidio"}], "fail_closed": True})
    rs = compile_rules(doc)
    assert rs.warnings and "needs Presidio" in rs.warnings[0]
    out = preview(rs, {"input": "hello"})
    assert out["rejected"] is not None and "needs Presidio" in out["rejected"]


class _Repo:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.loads = 0

    def get(self, project_id: str) -> dict[str, Any] | None:
        self.loads += 1
        return self.docs.get(project_id)


def _span(pid: str, tid: str, sid: str, text: str) -> Any:
    return {"project_id": pid, "trace_id": tid, "id": sid, "name": "s", "input": text, "output": None,
            "metadata": None, "attributes": None, "status_message": None, "model_parameters": None}


def test_batches_reject_items_not_the_batch_and_cache_rules() -> None:
    repo = _Repo({"p1": {"rules": [{"preset": "email", "max_chars": 30}], "fail_closed": True},
                  "p2": {"rules": [], "fail_closed": False}})
    red = Redactor(repo)  # type: ignore[arg-type]
    score = {"project_id": "p1", "id": "sc1", "comment": f"mail {EMAIL}", "string_value": None, "metadata": None,
             "timestamp": datetime.now(UTC)}
    trace = {"project_id": "p1", "id": "t2", "name": None, "input": "y" * 40, "output": None, "metadata": None}
    batch = IngestBatch(
        spans=[_span("p1", "t1", "ok", f"hi {EMAIL}"), _span("p1", "t1", "long", "x" * 40 + EMAIL),
               _span("p1", "t2", "orphan", "fine"), _span("p2", "t3", "other", f"hi {EMAIL}")],
        traces=[trace],  # type: ignore[list-item]
        tags=[("p1", "t1", f"user {EMAIL}")],
        scores=[score],  # type: ignore[list-item]
    )
    assert red.needed(batch)
    out, rejected = red.redact_batch(batch)
    keys = sorted(k for k, _ in rejected)
    assert keys == [("span", "t1", "long"), ("span", "t2", "orphan"), ("trace", "t2")]
    assert all(EMAIL not in m and "fail-closed" in m for _, m in rejected)
    assert [s["id"] for s in out.spans] == ["ok", "other"]
    assert out.spans[0]["input"] == "hi [REDACTED:email]" and out.spans[1]["input"] == f"hi {EMAIL}"
    assert out.tags == [("p1", "t1", "user [REDACTED:email]")] and out.traces == []
    assert out.scores[0]["comment"] == "mail [REDACTED:email]"
    assert red.stats()["rejected_items"] == 3 and red.stats()["redacted_values"] == 3
    loads = repo.loads
    red.redact_batch(IngestBatch(spans=[_span("p2", "t4", "again", "x")]))
    assert repo.loads == loads  # cached
    assert not red.needed(IngestBatch(spans=[_span("p2", "t4", "again", "x")]))  # p2 is known to have no rules
    red.invalidate("p2")
    assert red.needed(IngestBatch(spans=[_span("p2", "t4", "again", "x")]))


@pytest.mark.parametrize("secret", [
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "sk-ant-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "xoxb-123456789012-abcdefghijklmnop",
    "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "sk_live_" + "a1B2c3D4e5F6g7H8i9J0",
    "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "postgres://admin:S3cr3tPw@db.example.com/app",
    "PASSWORD: Tr0ub4dor!",
    "client_secret=q8Zr2Lm5Xw9Tn3Kv7Bp1",
    "Authorization: Bearer q8Zr2Lm5Xw9Tn3Kv7Bp1Yh6Dc4Fg0Js2",
])
def test_api_key_preset_finds_what_the_secrets_scanner_finds(secret: str) -> None:
    from podium.guardrails.scanners.secrets import secret_findings

    text = f"config: {secret} end"
    assert secret_findings(text), secret  # the scanner itself reports it
    red = preview(_rs({"preset": "api_key"}), {"input": text})["redacted"]["input"]
    assert "[REDACTED:secret]" in red and red != text


def test_pii_presets_in_a_row_run_as_one_pass_with_their_own_replacements() -> None:
    rs = _rs({"preset": "credit_card"}, {"preset": "email", "replacement": "<mail>"}, {"preset": "iban"})
    assert [r.label for r in rs.texts] == ["presets credit_card, email, iban"]
    out = preview(rs, {"input": f"{CARD} {EMAIL} GB82 WEST 1234 5698 7654 32"})["redacted"]["input"]
    assert out == "[REDACTED:card] <mail> [REDACTED:iban]"
