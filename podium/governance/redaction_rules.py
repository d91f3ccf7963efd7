"""Redaction rules: the document a project sets, its validation, and its compiled form.

A project's document (``PUT /api/v1/redaction-rules``, ``podium redaction set FILE.yaml``)::

    fail_closed: false          # true: an item that cannot be redacted is rejected, not stored
    rules:
      - preset: credit_card     # credit_card, email, phone, iban, api_key, ssn, ip_address
      - path: input.messages[*].content
      - path: attributes["http.request.header.authorization"]
        replacement: "[REDACTED:auth]"
      - pattern: "ACME-\\d{6}"  # a Python regular expression
        replacement: "[REDACTED:account]"
        fields: [input, output]
      - scanner: pii            # the guardrails' pii scanner (engine regex or presidio)
        engine: presidio
        entities: [PERSON]
      - scanner: secrets        # the guardrails' secrets scanner

Exactly one of ``preset``, ``path``, ``pattern`` or ``scanner`` per rule. ``fields`` limits a
text rule (preset, pattern, scanner) to some of the stored fields (:data:`FIELDS`); a path rule
names its field first. ``replacement`` is literal text (``{label}`` is the finding's kind for
presets and scanners). ``max_chars``: a longer value cannot be scanned by that rule (counts as
a failure: see ``fail_closed``). Validation errors name the rule and its key
(``rules[2].pattern``).

Path syntax (a small subset of JSONPath, no filters)::

    path    := FIELD segment*
    segment := "." NAME | "[" INDEX "]" | "[*]" | ".*" | ".**" | '["' KEY '"]' | "['" KEY "']"

``NAME`` is letters, digits, ``_`` and ``-``; ``[*]`` / ``.*`` is every item of a list or value
of an object; ``.**`` is any depth (zero or more levels); ``["http.request.header.authorization"]``
is a key with dots. A path that meets a string holding JSON (``"{...}"``) reads into it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.errors import ValidationFailed
from podium.guardrails.base import Context, Finding
from podium.guardrails.scanners.pii import make_pii_scanner, regex_findings
from podium.guardrails.scanners.secrets import SecretsScanner, secret_findings

__all__ = ["FIELDS", "MAX_RULES", "PRESETS", "PathRule", "RuleSet", "TextRule", "compile_rules", "parse_path",
           "validate_document"]

#: The stored fields redaction reads, by row: spans, traces, scores, and trace tags.
SPAN_FIELDS = ("name", "status_message", "input", "output", "metadata", "attributes", "model_parameters")
TRACE_FIELDS = ("name", "input", "output", "metadata")
SCORE_FIELDS = ("comment", "string_value", "metadata")
FIELDS: tuple[str, ...] = tuple(dict.fromkeys(SPAN_FIELDS + TRACE_FIELDS + SCORE_FIELDS + ("tags",)))
MAX_RULES = 100
#: Presidio's default ``max_chars``: spaCy on longer text takes more than a write batch's budget.
PRESIDIO_MAX_CHARS = 20_000

_HAS_DIGIT = re.compile(r"\d").search

Finder = Callable[[str], list[Finding]]


def _pii(entity: str, need: Callable[[str], Any]) -> Finder:
    def find(text: str) -> list[Finding]:
        return regex_findings(text, (entity,)) if need(text) else []

    return find


def _has_at(text: str) -> bool:
    return "@" in text


# Every credential the secrets scanner reports contains one of its formats' fixed parts, or a key
# name followed by an assignment or a long token: other text is not scanned. Plain substring tests
# first (one regular expression with all the alternatives costs ~4x more); the context expression
# runs only on text with a key name in it (prose that merely says "token" is not scanned).
_SECRET_FORMATS = ("private key", "akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "anpa", "anva", "apka",
                   "aroa", "asca", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "sk-", "xox",
                   "hooks.slack.com", "k_live_", "k_test_", "aiza", "eyj", "://", "aws")
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "api", "access", "auth", "private", "credential", "bearer")
_SECRET_CONTEXT = re.compile(
    r"(?i)(?:pass|pwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?key|private[_-]?key|credential)"
    r"[\w.-]{0,30}[\"']?[ \t]*(?:[:=]|[ \t]is)|(?:bearer|token)[ \t]+[A-Za-z0-9._~+/-]{20}").search


def _secret_hint(text: str) -> bool:
    """False only where the secrets scanner cannot find anything (a superset test)."""
    low = text.lower()
    for w in _SECRET_FORMATS:  # a loop, not any(genexpr): half the cost on short strings
        if w in low:
            return True
    for w in _SECRET_WORDS:
        if w in low:
            return _SECRET_CONTEXT(text) is not None
    return False


def _secrets(text: str) -> list[Finding]:
    return secret_findings(text) if _secret_hint(text) else []


#: Built-in presets: (default replacement, finder). Cards are Luhn-checked, IBANs mod-97 checked
#: (podium.guardrails.scanners.pii); api_key is the secrets scanner's formats and assignments.
PRESETS: dict[str, tuple[str, Finder]] = {
    "credit_card": ("[REDACTED:card]", _pii("CREDIT_CARD", _HAS_DIGIT)),
    "email": ("[REDACTED:email]", _pii("EMAIL_ADDRESS", _has_at)),
    "phone": ("[REDACTED:phone]", _pii("PHONE_NUMBER", _HAS_DIGIT)),
    "iban": ("[REDACTED:iban]", _pii("IBAN_CODE", _HAS_DIGIT)),
    "api_key": ("[REDACTED:secret]", _secrets),
    "ssn": ("[REDACTED:ssn]", _pii("US_SSN", _HAS_DIGIT)),
    "ip_address": ("[REDACTED:ip]", _pii("IP_ADDRESS", _HAS_DIGIT)),
}
#: The regex PII engine's entity of each PII preset: presets in a row with the same fields and
#: max_chars run as one pass of the engine.
_PII_PRESETS = {"credit_card": "CREDIT_CARD", "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER",
                "iban": "IBAN_CODE", "ssn": "US_SSN", "ip_address": "IP_ADDRESS"}

_KINDS = ("preset", "path", "pattern", "scanner")
_COMMON = {"fields", "replacement", "name", "max_chars"}
_KEYS = {
    "preset": {"preset"} | _COMMON,
    "path": {"path", "replacement", "name"},
    "pattern": {"pattern", "flags"} | _COMMON,
    "scanner": {"scanner", "engine", "entities", "score_threshold", "allow", "min_entropy", "labels"} | _COMMON,
}
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}

# --- paths -------------------------------------------------------------------------------------

#: One path segment: ("key", name) | ("index", n) | ("any", None) | ("deep", None).
Segment = tuple[str, Any]

_FIELD = re.compile(r"[A-Za-z_]\w*")
_SEG = re.compile(
    r"""\.(?P<deep>\*\*)|\.(?P<star>\*)|\.(?P<name>[A-Za-z_][\w-]*)|\[(?:(?P<idx>\d+)|(?P<wild>\*)"""
    r"""|"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)')\]""")
_UNESCAPE = re.compile(r"\\(.)")


def parse_path(path: str) -> tuple[str, tuple[Segment, ...]]:
    """``input.messages[*].content`` -> ("input", (("key", "messages"), ("any", None), ("key", "content"))).
    Raises ValueError with the fix."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError('a path such as input.messages[*].content or metadata.customer.email')
    path = path.strip()
    m = _FIELD.match(path)
    if m is None or m.group() not in FIELDS or m.group() == "tags":
        head = m.group() if m else path[:20]
        raise ValueError(f"a path starts with a stored field ({', '.join(f for f in FIELDS if f != 'tags')}), "
                         f"not {head!r}")
    fld, pos = m.group(), m.end()
    segs: list[Segment] = []
    while pos < len(path):
        s = _SEG.match(path, pos)
        if s is None:
            raise ValueError(f"unexpected {path[pos:pos + 10]!r} at character {pos + 1}; segments are .name, "
                             '[0], [*], .*, .** and ["key.with.dots"]')
        if s.group("deep"):
            segs.append(("deep", None))
        elif s.group("star") or s.group("wild"):
            segs.append(("any", None))
        elif s.group("name") is not None:
            segs.append(("key", s.group("name")))
        elif s.group("idx") is not None:
            segs.append(("index", int(s.group("idx"))))
        else:
            raw = s.group("dq") if s.group("dq") is not None else s.group("sq")
            segs.append(("key", _UNESCAPE.sub(r"\1", raw)))
        pos = s.end()
    return fld, tuple(segs)


# --- compiled rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRule:
    """Replace whatever a path reaches with ``replacement``."""

    index: int
    field: str
    segments: tuple[Segment, ...]
    replacement: str
    label: str


@dataclass(frozen=True)
class TextRule:
    """Rewrite every string (and long integer) of its fields: ``apply(text) -> text``.
    ``unavailable``: why it cannot run here (a scanner not installed): every value fails."""

    index: int
    label: str  # "preset credit_card", "pattern", "scanner pii (presidio)"
    fields: frozenset[str] | None
    max_chars: int | None
    apply: Callable[[str], str]
    unavailable: str | None = None


@dataclass(frozen=True)
class RuleSet:
    """One project's compiled rules (empty: nothing to do)."""

    fail_closed: bool = False
    paths: dict[str, tuple[PathRule, ...]] = field(default_factory=dict)  # by field
    texts: tuple[TextRule, ...] = ()
    warnings: tuple[str, ...] = ()
    _by_field: dict[str, tuple[TextRule, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.paths and not self.texts

    def texts_for(self, fld: str) -> tuple[TextRule, ...]:
        return self._by_field.get(fld, ())


def _replace(finder: Finder, replacement: str | dict[str, str]) -> Callable[[str], str]:
    """Replace what ``finder`` finds; ``replacement`` is one text or one per finding label."""

    def text_for(label: str) -> str:
        r = replacement if isinstance(replacement, str) else replacement.get(label, "[REDACTED]")
        return r.replace("{label}", label.lower()) if "{label}" in r else r

    def apply(text: str) -> str:
        found = finder(text)
        if not found:
            return text
        out, last = [], 0
        for f in sorted(found, key=lambda f: f.start):
            if f.start < last:  # overlaps one already replaced
                continue
            out.append(text[last:f.start])
            out.append(text_for(f.label))
            last = f.end
        out.append(text[last:])
        return "".join(out)

    return apply


def _sub(pattern: re.Pattern[str], replacement: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        return pattern.sub(lambda _m: replacement, text)

    return apply


def _unavailable(message: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        raise RuntimeError(message)

    return apply


# --- validation ------------------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def add(self, where: str, message: str) -> None:
        self.details.append({"field": where, "message": message})


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


def validate_document(doc: Any) -> dict[str, Any]:
    """The document normalised (``{"rules": [...], "fail_closed": bool}``), or ValidationFailed
    listing every problem as ``{"field": "rules[2].pattern", "message": ...}``."""
    errs = _Errors()
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict):
        raise ValidationFailed('send {"rules": [...], "fail_closed": false}',
                               details=[{"field": None, "message": "expected an object"}])
    for k in sorted(set(doc) - {"rules", "fail_closed"}):
        errs.add(k, "unknown field; the document has rules and fail_closed")
    rules = doc.get("rules", [])
    fail_closed = doc.get("fail_closed", False)
    if not isinstance(fail_closed, bool):
        errs.add("fail_closed", "true or false")
    if not isinstance(rules, list):
        errs.add("rules", "a list of rules")
        rules = []
    if len(rules) > MAX_RULES:
        errs.add("rules", f"at most {MAX_RULES} rules")
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(rules):
        out.append(_check_rule(i, rule, errs))
    if errs.details:
        first = errs.details[0]
        where = f"{first['field']}: " if first["field"] else ""
        raise ValidationFailed(f"invalid redaction rules: {where}{first['message']}", details=errs.details)
    return {"rules": out, "fail_closed": bool(fail_closed)}


def _check_rule(i: int, rule: Any, errs: _Errors) -> dict[str, Any]:
    at = f"rules[{i}]"
    if not isinstance(rule, dict):
        errs.add(at, "a rule is an object with one of preset, path, pattern, scanner")
        return {}
    kinds = [k for k in _KINDS if k in rule]
    if len(kinds) != 1:
        errs.add(at, "give exactly one of preset, path, pattern, scanner" + (f" (found {', '.join(kinds)})"
                                                                              if kinds else ""))
        return dict(rule)
    kind = kinds[0]
    for k in sorted(set(rule) - _KEYS[kind]):
        errs.add(f"{at}.{k}", f"unknown key for a {kind} rule; it takes {', '.join(sorted(_KEYS[kind]))}")
    v = rule[kind]
    if kind == "preset" and (not isinstance(v, str) or v not in PRESETS):
        errs.add(f"{at}.preset", f"unknown preset {v!r}; presets: {', '.join(PRESETS)}")
    elif kind == "path":
        try:
            parse_path(v)
        except ValueError as e:
            errs.add(f"{at}.path", str(e))
    elif kind == "pattern":
        flags = rule.get("flags", "")
        if not isinstance(flags, str) or set(flags) - set(_FLAGS):
            errs.add(f"{at}.flags", "letters among i (ignore case), m (multiline), s (dot matches newline), x")
        if not isinstance(v, str) or not v:
            errs.add(f"{at}.pattern", "a regular expression (Python syntax)")
        else:
            try:
                pat = re.compile(v)
                if pat.search(""):
                    errs.add(f"{at}.pattern", "matches the empty string; it would insert the replacement "
                                              "everywhere")
            except re.error as e:
                errs.add(f"{at}.pattern", f"not a valid regular expression: {e}")
    elif kind == "scanner":
        _check_scanner(at, rule, errs)
    if "replacement" in rule and (not isinstance(rule["replacement"], str) or len(rule["replacement"]) > 200):
        errs.add(f"{at}.replacement", "a string of at most 200 characters")
    if "name" in rule and (not isinstance(rule["name"], str) or len(rule["name"]) > 100):
        errs.add(f"{at}.name", "a string of at most 100 characters")
    if "fields" in rule:
        f = rule["fields"]
        if not _str_list(f) or not f:
            errs.add(f"{at}.fields", f"a non-empty list among {', '.join(FIELDS)}")
        elif set(f) - set(FIELDS):
            errs.add(f"{at}.fields", f"unknown {', '.join(sorted(set(f) - set(FIELDS)))}; fields: "
                                     f"{', '.join(FIELDS)}")
    if "max_chars" in rule:
        m = rule["max_chars"]
        if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= 100_000_000:
            errs.add(f"{at}.max_chars", "a whole number of characters between 1 and 100000000")
    return dict(rule)


def _check_scanner(at: str, rule: dict[str, Any], errs: _Errors) -> None:
    name = rule["scanner"]
    if not isinstance(name, str) or name not in ("pii", "secrets"):
        errs.add(f"{at}.scanner", f"unknown scanner {name!r}; redaction uses pii or secrets")
        return
    allowed = {"pii": {"engine", "entities", "score_threshold", "allow"},
               "secrets": {"min_entropy", "labels", "allow"}}[name]
    for k in sorted({"engine", "entities", "score_threshold", "min_entropy", "labels"} & set(rule) - allowed):
        errs.add(f"{at}.{k}", f"not a parameter of the {name} scanner; it takes {', '.join(sorted(allowed))}")
    if "allow" in rule and not _str_list(rule["allow"]):
        errs.add(f"{at}.allow", "a list of values never redacted")
    try:
        _scanner(rule)
    except Exception as e:  # the scanner's own check of its parameters
        msg = getattr(e, "message", None) or str(e)
        if "needs Presidio" in msg:
            return  # accepted; compile_rules warns, ingestion counts it as a failure
        key = msg.split(":", 1)[0] if ":" in msg and msg.split(":", 1)[0] in allowed else "scanner"
        errs.add(f"{at}.{key}", msg)


def _scanner(rule: dict[str, Any]) -> Any:
    if rule["scanner"] == "pii":
        return make_pii_scanner(engine=rule.get("engine", "regex"), entities=rule.get("entities"),
                                score_threshold=rule.get("score_threshold", 0.5), allow=rule.get("allow", ()))
    return SecretsScanner(min_entropy=rule.get("min_entropy", 3.5), allow=rule.get("allow", ()),
                          labels=rule.get("labels"))


# --- compiling -----------------------------------------------------------------------------------------


def compile_rules(doc: dict[str, Any] | None) -> RuleSet:
    """A validated document (or None: no rules) -> the rules ingestion applies."""
    if not doc or not doc.get("rules"):
        return RuleSet(fail_closed=bool(doc and doc.get("fail_closed")))
    paths: dict[str, list[PathRule]] = {}
    texts: list[TextRule] = []
    warnings: list[str] = []
    pii_groups: dict[int, dict[str, str]] = {}  # first rule index -> {preset: replacement}
    for i, rule in enumerate(doc["rules"]):
        fields = frozenset(rule["fields"]) if rule.get("fields") else None
        max_chars = rule.get("max_chars")
        if "path" in rule:
            fld, segs = parse_path(rule["path"])
            paths.setdefault(fld, []).append(PathRule(i, fld, segs, rule.get("replacement", "[REDACTED]"),
                                                      f"path {rule['path']}"))
        elif "preset" in rule:
            name = rule["preset"]
            default, finder = PRESETS[name]
            prev = texts[-1] if texts else None
            if name in _PII_PRESETS and prev is not None and prev.label.startswith("preset") and \
                    prev.fields == fields and prev.max_chars == max_chars and prev.index in pii_groups:
                group = pii_groups[prev.index]  # one pass of the PII engine for presets in a row
                group[name] = rule.get("replacement", default)
                texts[-1] = _pii_rule(prev.index, group, fields, max_chars)
            elif name in _PII_PRESETS:
                pii_groups[i] = {name: rule.get("replacement", default)}
                texts.append(_pii_rule(i, pii_groups[i], fields, max_chars))
            else:
                texts.append(TextRule(i, f"preset {name}", fields, max_chars,
                                      _replace(finder, rule.get("replacement", default))))
        elif "pattern" in rule:
            flags = 0
            for c in rule.get("flags", ""):
                flags |= _FLAGS[c]
            texts.append(TextRule(i, "pattern", fields, max_chars,
                                  _sub(re.compile(rule["pattern"], flags), rule.get("replacement", "[REDACTED]"))))
        else:
            texts.append(_compile_scanner(i, rule, fields, max_chars, warnings))
    by_field = {f: tuple(r for r in texts if r.fields is None or f in r.fields) for f in FIELDS}
    return RuleSet(bool(doc.get("fail_closed")), {f: tuple(v) for f, v in paths.items()}, tuple(texts),
                   tuple(warnings), {f: v for f, v in by_field.items() if v})


def _pii_rule(index: int, presets: dict[str, str], fields: frozenset[str] | None,
              max_chars: int | None) -> TextRule:
    entities = tuple(_PII_PRESETS[p] for p in presets)
    by_label = {_PII_PRESETS[p]: r for p, r in presets.items()}
    email_only = set(entities) == {"EMAIL_ADDRESS"}
    wants_email = "EMAIL_ADDRESS" in entities

    def finder(text: str) -> list[Finding]:
        if email_only:
            return regex_findings(text, entities) if "@" in text else []
        if _HAS_DIGIT(text) or (wants_email and "@" in text):
            return regex_findings(text, entities)
        return []

    label = ("preset " if len(presets) == 1 else "presets ") + ", ".join(presets)
    return TextRule(index, label, fields, max_chars, _replace(finder, by_label))


def _compile_scanner(i: int, rule: dict[str, Any], fields: frozenset[str] | None, max_chars: int | None,
                     warnings: list[str]) -> TextRule:
    name = rule["scanner"]
    engine = rule.get("engine", "regex") if name == "pii" else None
    label = f"scanner {name}" + (f" ({engine})" if engine and engine != "regex" else "")
    replacement = rule.get("replacement", "[REDACTED:{label}]")
    try:
        scanner = _scanner(rule)
    except Exception as e:
        msg = getattr(e, "message", None) or str(e)
        warnings.append(f"rules[{i}]: {msg}; until it is installed every value this rule should scan counts as "
                        "a redaction failure (fail_closed: the item is rejected)")
        return TextRule(i, label, fields, max_chars, _unavailable(msg), unavailable=msg)
    if name == "pii" and getattr(scanner, "cost", "fast") == "slow" and max_chars is None:
        max_chars = PRESIDIO_MAX_CHARS
    if name == "pii" and type(scanner).__name__ == "PiiScanner":
        # the regex engine: call its finder directly (no Result objects on the hot path)
        entities: Sequence[str] = scanner.entities
        keep = scanner._keep  # threshold and allow list

        def finder(text: str) -> list[Finding]:
            return keep(regex_findings(text, entities)) if (_HAS_DIGIT(text) or "@" in text) else []
    else:
        ctx = Context(kind="input")
        hint = _secret_hint if name == "secrets" else None

        def finder(text: str) -> list[Finding]:
            if hint is not None and not hint(text):
                return []
            return list(scanner.scan(text, ctx).findings)
    return TextRule(i, label, fields, max_chars, _replace(finder, replacement))
