"""``urls``: links in the text, checked against allowed and blocked domains.

Finds ``http(s)://``, ``ftp://`` and ``www.`` links, and ``javascript:``/``data:`` URLs (always
offending: a model answer has no business emitting them). A link offends when its domain is
in ``blocked_domains``, or when ``allowed_domains`` is given and the domain is not in it; a
domain entry covers its subdomains (``example.com`` allows ``docs.example.com``). With neither
list, every link offends (``no links``). ``require_in_context`` also fails links that appear
neither in the prompt nor in the request's documents (a model that invents URLs).

Score 1.0 when a link offends, 0.0 otherwise; each offending link is a finding (label
``URL``), so ``action: redact`` replaces it with ``<URL_1>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from podium.guardrails.base import Context, Finding, Result, Scanner

__all__ = ["Urls", "find_urls"]

_URL = re.compile(
    r"""(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>"'`{}|\\^\[\]]+|\b(?:javascript|data):[^\s<>"'`]+""",
    re.IGNORECASE)
_TRAIL = ".,;:!?)]}'\""


def find_urls(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, url)`` for each link, trailing punctuation trimmed (a closing bracket is
    kept when the link opened one: Wikipedia-style ``..._(film)``)."""
    out = []
    for m in _URL.finditer(text):
        url = m.group()
        while url and url[-1] in _TRAIL:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url = url[:-1]
        if len(url) > 4:
            out.append((m.start(), m.start() + len(url), url))
    return out


def _host(url: str) -> str:
    if re.match(r"(?i)www\.", url):
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def _covers(domains: Sequence[str], host: str) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _domains(value: Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out = []
    for d in value:
        h = _host(d) if "://" in d else d.strip().lstrip("*.").rstrip(".").lower()
        if not h or " " in h:
            raise ValueError(f"{what}: {d!r} is not a domain (such as example.com)")
        out.append(h)
    return out


class Urls(Scanner):
    """Links, checked against ``allowed_domains`` / ``blocked_domains`` (see the module docstring)."""

    name = "urls"
    kinds = frozenset({"input", "output"})
    description = "Links in the text, against allowed or blocked domains"

    def __init__(self, allowed_domains: Sequence[str] | None = None, blocked_domains: Sequence[str] | None = None,
                 require_in_context: bool = False) -> None:
        self.allowed = _domains(allowed_domains, "allowed_domains")
        self.blocked = _domains(blocked_domains, "blocked_domains")
        self.require_in_context = require_in_context

    def _why(self, url: str, host: str, ctx: Context) -> str | None:
        if re.match(r"(?i)(javascript|data):", url):
            return "script or data URL"
        if not host:
            return "no host"
        if _covers(self.blocked, host):
            return f"blocked domain {host}"
        if self.allowed and not _covers(self.allowed, host):
            return f"domain {host} not allowed"
        if not self.allowed and not self.blocked and not self.require_in_context:
            return "links are not allowed"
        if self.require_in_context:
            sources = [ctx.prompt or "", *ctx.documents]
            bare = url.rstrip("/")
            if not any(bare in s for s in sources):
                return "not in the prompt or documents"
        return None

    def scan(self, text: str, ctx: Context) -> Result:
        findings: list[Finding] = []
        reasons: list[str] = []
        for start, end, url in find_urls(text):
            why = self._why(url, _host(url), ctx)
            if why is not None:
                findings.append(Finding(start, end, "URL", url, 1.0))
                reasons.append(f"{url} ({why})")
        if not findings:
            return Result(score=0.0)
        more = f" and {len(reasons) - 3} more" if len(reasons) > 3 else ""
        return Result(score=1.0, findings=findings, detail="; ".join(reasons[:3]) + more,
                      metadata={"urls": [f.text for f in findings]})
