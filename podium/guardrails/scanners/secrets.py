"""Secrets in prompts and answers: API keys, tokens, private keys, passwords.

Two kinds of evidence. **Formats** that only a credential has (an AWS key id starts ``AKIA``,
a GitHub token ``ghp_``, a PEM block says ``PRIVATE KEY``) are reported wherever they appear.
**Context**: a value assigned to a key-like name (``password=``, ``"api_key": "..."``,
``Authorization: Bearer ...``) is reported when it looks like a secret: random-looking (Shannon
entropy per character at or above ``min_entropy``, or letters mixed with digits) and not a
placeholder (``<token>``, ``${API_KEY}``, ``xxxx``, ``None``, ``os.environ[...]``).

Random-looking strings **without** such a context (UUIDs, git commit hashes, checksums, base64
data) are not reported: they are common in ordinary text and code, and a format or a key name
is what makes a string a credential. Findings are labelled by kind (``openai_api_key``,
``private_key``...), so a ``redact`` rule writes ``<OPENAI_API_KEY_1>``; in assignments only the
value is replaced (``password=<PASSWORD_1>``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from podium.guardrails.base import Context, Finding, Result, Scanner

__all__ = ["PATTERNS", "SecretsScanner", "secret_findings", "shannon_entropy"]


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` (0 for one repeated character; ~4 for hex, ~5-6 for base64)."""
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    n = len(s)
    return -sum(k / n * math.log2(k / n) for k in counts.values())


# (label, pattern, score, group holding the secret): credentials by their format.
PATTERNS: list[tuple[str, re.Pattern[str], float, int]] = [
    ("private_key", re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,16384}?"
                               r"(?:-----END \1PRIVATE KEY(?: BLOCK)?-----|\Z)"), 1.0, 0),
    ("aws_access_key_id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|"
                                     r"ASCA)[A-Z0-9]{16}(?![A-Z0-9])"), 1.0, 0),
    ("aws_secret_access_key", re.compile(r"(?i)aws.{0,20}?(?:secret|private).{0,20}?[\"']?\s*[:=]\s*[\"']?"
                                         r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"), 1.0, 1),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,240})\b"), 1.0, 0),
    ("anthropic_api_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{32,}"), 1.0, 0),
    ("openai_api_key", re.compile(r"\bsk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{32,}"), 1.0, 0),
    ("slack_token", re.compile(r"\bxox[abposre]-(?:\d+-)?[A-Za-z0-9-]{10,}"), 1.0, 0),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}"), 1.0, 0),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), 1.0, 0),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), 1.0, 0),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), 0.9, 0),
    # scheme://user:password@host: only the password is the secret.
    ("url_password", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@]{1,128}:([^\s@/]{1,256})@[\w.-]+"), 0.9, 1),
]

# A value assigned to a key-like name: key, separator, optional quote, value.
_ASSIGN = re.compile(
    r"(?i)(?P<key>\b[\w.-]{0,40}?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|auth[_-]?key|private[_-]?key|client[_-]?secret|credentials?)[\w.-]{0,20})"
    r"[\"']?[ \t]*(?::=|=>|[:=]|[ \t]is)[ \t]*(?P<q>[\"'`]?)(?P<value>[^\s\"'`,;]{6,512})")
_BEARER = re.compile(r"(?i)\b(?:bearer|token)[ \t]+(?P<value>[A-Za-z0-9._~+/-]{20,}=*)")
_PASSWORD_KEY = re.compile(r"(?i)pass|pwd")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>?|\$\{?[\w.]*\}?|\{\{.*\}\}?|%\w+%?|\[.*\]|\*+|x+|\.+|-+|_+|none|null|nil|true|false|"
    r"undefined|required|optional|str|string|bytes|int|changeme|your[_-]?\w*|my[_-]?\w*|example\w*|"
    r"placeholder|redacted|dummy|secret|password|token|test|\w*\(.*|\w+\[.*|(?:os|process|self|env|"
    r"config|settings|cfg)\.[\w.]*)$")


def _looks_secret(value: str, key: str, min_entropy: float) -> bool:
    """Whether a value assigned to a key-like name is plausibly a real secret."""
    if _PLACEHOLDER.match(value) or len(set(value)) < 4:
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if _PASSWORD_KEY.search(key):
        # Passwords are short and chosen by people: anything that is not a plain lowercase word.
        return not value.isalpha() or not value.islower()
    if len(value) < 12:
        return False
    return shannon_entropy(value) >= min_entropy or (has_digit and has_alpha and len(value) >= 16)


def secret_findings(text: str, *, min_entropy: float = 3.5) -> list[Finding]:
    """Every credential-shaped match in ``text`` (overlaps resolved: the specific format wins)."""
    found: list[Finding] = []
    for label, pat, score, group in PATTERNS:
        for m in pat.finditer(text):
            s, e = m.span(group)
            value = m.group(group)
            if label == "url_password" and _PLACEHOLDER.match(value):
                continue
            found.append(Finding(s, e, label, value, score))
    for m in _ASSIGN.finditer(text):
        value, key = m.group("value"), m.group("key")
        if m.group("q"):
            value = value.rstrip("\"'`")
        value = value.rstrip(".)")
        if _looks_secret(value, key, min_entropy):
            label = "password" if _PASSWORD_KEY.search(key) else "generic_secret"
            s = m.start("value")
            found.append(Finding(s, s + len(value), label, value, 0.8))
    for m in _BEARER.finditer(text):
        value = m.group("value")
        if shannon_entropy(value) >= min_entropy and not _PLACEHOLDER.match(value):
            found.append(Finding(m.start("value"), m.end("value"), "bearer_token", value, 0.8))
    return _resolve(found)


def _resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Keep the strongest of overlapping findings (score, then the longer span)."""
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (-(f.score or 0), -(f.end - f.start), f.start)):
        if not any(f.start < k.end and k.start < f.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


class SecretsScanner(Scanner):
    """Secrets: API keys and tokens by format, private keys, passwords and key-like assignments."""

    name = "secrets"
    cost = "fast"
    description = "Secrets: API keys (AWS, GitHub, OpenAI, Anthropic, Slack, Stripe, Google), JWTs, private keys, passwords"

    def __init__(self, *, min_entropy: float = 3.5, allow: Sequence[str] = (),
                 labels: Sequence[str] | None = None) -> None:
        if not 0 <= min_entropy <= 8:
            raise ValueError("min_entropy: bits per character, between 0 and 8 (default 3.5)")
        known = {p[0] for p in PATTERNS} | {"password", "generic_secret", "bearer_token"}
        if labels is not None:
            unknown = sorted(set(labels) - known)
            if unknown:
                raise ValueError(f"labels: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        self.min_entropy = float(min_entropy)
        self.allow = frozenset(allow)
        self.labels = frozenset(labels) if labels is not None else None

    def scan(self, text: str, ctx: Context) -> Result:
        findings = [f for f in secret_findings(text, min_entropy=self.min_entropy)
                    if f.text not in self.allow and (self.labels is None or f.label in self.labels)]
        if not findings:
            return Result(score=0.0)
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.label] = counts.get(f.label, 0) + 1
        meta: dict[str, Any] = {"secrets": counts}
        return Result(score=max(f.score or 0.0 for f in findings), findings=findings,
                      detail="secrets: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), metadata=meta)
