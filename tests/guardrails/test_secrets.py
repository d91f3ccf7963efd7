"""The ``secrets`` scanner: credentials by format, key-like assignments with an entropy check,
no false alarms on prose, UUIDs, commit hashes or placeholders, and redaction through ``Guard``."""

from __future__ import annotations

import statistics
import time

import pytest

from podium.errors import ValidationFailed
from podium.guardrails import Context, Guard
from podium.guardrails.registry import build
from podium.guardrails.scanners.secrets import SecretsScanner, shannon_entropy

# Made-up credentials in each provider's format (none is a real key).
GITHUB = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789abc_" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW"
OPENAI = "sk-proj-" + "Xy7Qp2Lm9Rt4Vb8Nc1Zd6Fg3Hj5Kk0Ww" + "T3BlbkFJ" + "a1B2c3D4e5F6g7H8"
OPENAI_LEGACY = "sk-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4"
ANTHROPIC = "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe" * 3 + "-AbCdEfAA"
SLACK = "xoxb-" + "1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
GOOGLE = "AIza" + "SyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"
AWS_ID = "AKIA" + "Z7QP2LM9RT4VB8NC"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Q3v9Lm2Xa8"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAuZ5c0m1X\nq3N8xYb2Vv==\n-----END RSA PRIVATE KEY-----"


def found(text: str, **params: object) -> list[tuple[str, str]]:
    res = build("secrets", dict(params)).scan(text, Context())
    return [(f.label, f.text) for f in res.findings]


@pytest.mark.parametrize(("text", "label", "value"), [
    (f"my token is {GITHUB} thanks", "github_token", GITHUB),
    (f"GH_TOKEN={GITHUB_PAT}", "github_token", GITHUB_PAT),
    (f"client = OpenAI(api_key='{OPENAI}')", "openai_api_key", OPENAI),
    (f"OPENAI_API_KEY={OPENAI_LEGACY}", "openai_api_key", OPENAI_LEGACY),
    (f"use {ANTHROPIC} for claude", "anthropic_api_key", ANTHROPIC),
    (f"slack bot {SLACK}", "slack_token", SLACK),
    (f"stripe.api_key = '{STRIPE}'", "stripe_key", STRIPE),
    (f"maps key {GOOGLE}.", "google_api_key", GOOGLE),
    (f"aws_access_key_id = {AWS_ID}", "aws_access_key_id", AWS_ID),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key", AWS_SECRET),
    (f"Cookie: session={JWT}", "jwt", JWT),
    (f"here is my key:\n{PEM}\nthanks", "private_key", PEM),
    ("DATABASE_URL=postgres://admin:S3cr3t-Pa55@db.internal:5432/app", "url_password", "S3cr3t-Pa55"),
    ("Slack hook https://hooks.slack.com/services/T0000ABCD/B0000EFGH/XXXXXXXXXXXXXXXXXXXXXXXX ok",
     "slack_webhook", "https://hooks.slack.com/services/T0000ABCD/B0000EFGH/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ('db:\n  password: "Tr0ub4dor&3"\n', "password", "Tr0ub4dor&3"),
    ("my password is hunter22, don't tell", "password", "hunter22"),
    ('{"api_key": "a8f5f167f44f4964e6c998dee827110c9a"}', "generic_secret", "a8f5f167f44f4964e6c998dee827110c9a"),
    ("export INTERNAL_SERVICE_TOKEN=q8Zr2LmXv7Tn4Kp1Wd9Sb6Hc", "generic_secret", "q8Zr2LmXv7Tn4Kp1Wd9Sb6Hc"),
    ("Authorization: Bearer abCDef123456GHIjkl789012MNOpqr", "bearer_token", "abCDef123456GHIjkl789012MNOpqr"),
])
def test_finds_each_kind(text: str, label: str, value: str) -> None:
    assert (label, value) in found(text)


def test_truncated_private_key_still_found() -> None:
    # a streamed answer may stop in the middle of the block
    (label, value), = found("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE")
    assert label == "private_key" and value.startswith("-----BEGIN OPENSSH")


@pytest.mark.parametrize("text", [
    "The secret is that we ship on Fridays. My password is important to me. The token is expired.",
    "Reset your password: click the link we sent. Tokens are counted per request.",
    "Commit 3f786850e387550fdab836ed7e6dc881de23001b fixed request 123e4567-e89b-12d3-a456-426614174000.",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 matches the download.",
    "integrity=\"sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC\"",
    "api_key=YOUR_API_KEY password=<password> token=${GITHUB_TOKEN} secret = os.environ['SECRET']",
    "def login(password: str, token: str | None = None) -> bool: api_key = get_key()",
    "postgres://user:${DB_PASSWORD}@localhost/app and https://user:<password>@example.com/",
    "Use sk-... or sk_test_... style keys in the examples; see https://platform.example.com/api-keys.",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "The password field must be at least 12 characters; secrets rotate every 90 days.",
])
def test_no_false_positives(text: str) -> None:
    assert found(text) == []


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaaaaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert shannon_entropy("q8Zr2LmXv7Tn4Kp1Wd9Sb6Hc") > 4.0
    # a long random value after a key-like name needs min_entropy: raise it and a hex value passes
    text = "session_secret = 0123456789abcdef0123456789abcdef"
    assert found(text) == [("generic_secret", "0123456789abcdef0123456789abcdef")]
    assert found("session_secret = aaaaaaaaaaaabbbbbbbbbbbb") == []


def test_params() -> None:
    text = f"keys: {GITHUB} and {STRIPE}"
    assert [lb for lb, _ in found(text, labels=["stripe_key"])] == ["stripe_key"]
    assert [lb for lb, _ in found(text, allow=[GITHUB])] == ["stripe_key"]
    with pytest.raises(ValidationFailed, match="labels: unknown nope"):
        build("secrets", {"labels": ["nope"]})
    with pytest.raises(ValidationFailed, match="min_entropy"):
        build("secrets", {"min_entropy": 12})


def test_redaction_through_guard_replaces_only_values() -> None:
    guard = Guard({"input": [{"type": "secrets", "action": "redact"}],
                   "output": [{"type": "secrets", "action": "block"}]})
    d = guard.scan(f"deploy with GITHUB_TOKEN={GITHUB} and password='Tr0ub4dor&3'", "input")
    assert d.action == "redact"
    assert d.text == "deploy with GITHUB_TOKEN=<GITHUB_TOKEN_1> and password='<PASSWORD_1>'"
    assert d.redactions == {}  # secrets are never put back
    out = guard.scan(f"Sure, your key is {OPENAI}", "output")
    assert out.blocked and "openai_api_key" in out.reason()
    assert guard.scan("Nothing secret in here.", "output").action == "allow"


def test_is_fast() -> None:
    text = ("Deploy notes: run the migration, restart the workers, and check the dashboard. Commit "
            "3f786850e387550fdab836ed7e6dc881de23001b; the password policy needs 12 characters. ") * 6
    text = text[:1000]
    scanner = SecretsScanner()
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        scanner.scan(text, Context())
        times.append((time.perf_counter() - t0) * 1000)
    assert statistics.median(times) < 5.0, f"p50 {statistics.median(times):.3f} ms on 1,000 chars"
