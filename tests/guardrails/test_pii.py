"""The ``pii`` scanner: the regex engine's formats and checksums, no false alarms on prose,
redaction and reversible restore through ``Guard``, and the Presidio engine running offline."""

from __future__ import annotations

import socket
import statistics
import sys
import time

import pytest

from podium.errors import ConfigurationError, ValidationFailed
from podium.guardrails import Context, Guard
from podium.guardrails.registry import build
from podium.guardrails.scanners import pii
from podium.guardrails.scanners.pii import iban_valid, luhn_valid, make_pii_scanner, regex_findings


def labels(text: str, **params: object) -> list[tuple[str, str]]:
    res = build("pii", dict(params)).scan(text, Context())
    return [(f.label, f.text) for f in res.findings]


# --- the regex engine ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "label", "value"), [
    ("Write to jane.doe+billing@example.co.uk today.", "EMAIL_ADDRESS", "jane.doe+billing@example.co.uk"),
    ("Reach me at (212) 555-0143 after five.", "PHONE_NUMBER", "(212) 555-0143"),
    ("Office 212-555-0143, ask for Ann.", "PHONE_NUMBER", "212-555-0143"),
    ("Her number is 212.555.0143.", "PHONE_NUMBER", "212.555.0143"),
    ("Toll free 1-800-555-0199", "PHONE_NUMBER", "1-800-555-0199"),
    ("London office: +44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958"),
    ("Paris +33 1 42 68 53 00 ou", "PHONE_NUMBER", "+33 1 42 68 53 00"),
    ("desk 001-202-555-0173x1234 ok", "PHONE_NUMBER", "001-202-555-0173x1234"),
    ("Call me on 020 7946 0958 tomorrow", "PHONE_NUMBER", "020 7946 0958"),
    ("8240084271 (office)", "PHONE_NUMBER", "8240084271"),
    ("Phone:\\n439 4166", "PHONE_NUMBER", "439 4166"),  # after a literal \\n escape, as in JSON logs
    ("Visa 4111 1111 1111 1111 exp 12/29", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("Amex 3782-822463-10005.", "CREDIT_CARD", "3782-822463-10005"),
    ("card=5555555555554444", "CREDIT_CARD", "5555555555554444"),
    ("IBAN DE89 3704 0044 0532 0130 00 for rent", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
    ("Pay GB82WEST12345698765432 NOW", "IBAN_CODE", "GB82WEST12345698765432"),
    ("FR1420041010050500013M02606", "IBAN_CODE", "FR1420041010050500013M02606"),
    ("SSN 078-05-1120 on file", "US_SSN", "078-05-1120"),
    ("from 203.0.113.42 at night", "IP_ADDRESS", "203.0.113.42"),
    ("v6 2001:db8:85a3::8a2e:370:7334 here", "IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334"),
])
def test_regex_finds_each_type(text: str, label: str, value: str) -> None:
    assert (label, value) in labels(text)


@pytest.mark.parametrize("text", [
    "Card 4111 1111 1111 1112 fails the Luhn check.",  # one digit off
    "IBAN DE89 3704 0044 0532 0130 01 has bad check digits.",
    "GB82WEST1234569876543 is one character short.",
    "SSN 000-12-3456 and 666-12-3456 and 900-12-3456 are never issued.",
    "Localhost 127.0.0.1 and ::1 and 0.0.0.0 identify nobody.",
])
def test_regex_rejects_invalid_checksums_and_ranges(text: str) -> None:
    assert labels(text) == []


@pytest.mark.parametrize("text", [
    "The quarterly report is due on 2024-05-12; we shipped version 3.10.12 to 1,234,567 users.",
    "Order 123456789 shipped 12/05/2024 and arrives 13.05.2024 at 10:30.",
    "Unix time 1700000000123, build 20240512, pi is 3.14159265358979, ISBN 978-3-16-148410-0.",
    "Python 3.11.7 on Linux 6.1.0-18-amd64; release 1.2.3.4 of the tool.",
    "Meet me at the usual place; bring the documents and the blue folder.",
    "Commit 3f786850e387550fdab836ed7e6dc881de23001b fixed issue #4521 (see PR 4522).",
    "The ratio was 0.1234567 and the total 98765.43 euros over 12 months.",
    "Timestamps: 12:30:45, 2024-01-02T03:04:05Z; coordinates 48.8566, 2.3522.",
    "My driver's license number is 2676749544 and the permit A52463588147.",
    "Our offices are located at 0583 283 Hickory Ridge Drive.",
    "Transfer from GB13AGCC29442027106418 (not an IBAN) to account 4111.",
])
def test_no_false_positives_on_ordinary_text(text: str) -> None:
    assert labels(text) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert luhn_valid("378282246310005") and not luhn_valid("37828224631000x")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and iban_valid("gb82west12345698765432")
    assert not iban_valid("DE89 3704 0044 0532 0130 01")
    assert not iban_valid("ZZ89370400440532013000")  # no such country


def test_params_entities_allow_threshold() -> None:
    text = "Mail support@example.com or jane@example.org, phone +1-202-555-0173."
    assert [lb for lb, _ in labels(text, entities=["email_address"])] == ["EMAIL_ADDRESS", "EMAIL_ADDRESS"]
    assert ("EMAIL_ADDRESS", "support@example.com") not in labels(text, allow=["Support@Example.com"])
    # phone numbers score 0.75: a stricter score_threshold drops them
    assert [lb for lb, _ in labels(text, score_threshold=0.8)] == ["EMAIL_ADDRESS", "EMAIL_ADDRESS"]


@pytest.mark.parametrize(("params", "message"), [
    ({"engine": "magic"}, "engine"),
    ({"entities": ["PERSON"]}, "use engine: presidio"),
    ({"score_threshold": 2}, "score_threshold"),
    ({"colour": "red"}, "it accepts engine, entities, score_threshold, allow"),
])
def test_bad_params_are_400s(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        Guard({"input": [{"type": "pii", "params": params}]})


def test_result_shape_and_scores() -> None:
    res = make_pii_scanner().scan("jane@example.com, 212-555-0143", Context())
    assert res.score == 1.0  # the highest finding's
    assert res.metadata == {"engine": "regex", "entities": {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}}
    assert res.detail == "personal data: 1 EMAIL_ADDRESS, 1 PHONE_NUMBER"
    assert make_pii_scanner().scan("nothing here", Context()).score == 0.0


def test_regex_engine_is_fast() -> None:
    text = ("Hello team, please review the attached notes from Tuesday's meeting about the Q3 roadmap. "
            "Contact jane.doe@example.com or +1-202-555-0173 with questions; invoice 2024-0042 is paid. ") * 6
    text = text[:1000]
    scanner = make_pii_scanner()
    assert scanner.cost == "fast"
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        scanner.scan(text, Context())
        times.append((time.perf_counter() - t0) * 1000)
    assert statistics.median(times) < 5.0, f"p50 {statistics.median(times):.3f} ms on 1,000 chars"


# --- redaction through the engine ------------------------------------------------------------


def test_redact_reversible_and_restore_through_guard() -> None:
    guard = Guard({"name": "t", "input": [{"type": "pii", "action": "redact", "reversible": True}]})
    prompt = "Email jane.doe@example.com and bob@example.org, call 212-555-0143, card 4111 1111 1111 1111."
    d = guard.scan(prompt, "input")
    assert d.action == "redact"
    assert d.text == ("Email <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>, call <PHONE_NUMBER_1>, "
                      "card <CREDIT_CARD_1>.")
    assert "jane.doe@example.com" not in d.text
    # the model answers with the placeholders; restore puts the originals back
    answer = "I wrote to <EMAIL_ADDRESS_1> and will phone <PHONE_NUMBER_1>; <EMAIL_ADDRESS_2> is cc'd."
    assert d.restore(answer) == ("I wrote to jane.doe@example.com and will phone 212-555-0143; "
                                 "bob@example.org is cc'd.")


def test_redact_not_reversible_keeps_no_originals() -> None:
    guard = Guard({"input": [{"type": "pii", "action": "redact"}]})
    d = guard.scan("my IBAN is DE89 3704 0044 0532 0130 00", "input")
    assert d.text == "my IBAN is <IBAN_CODE_1>"
    assert d.redactions == {}
    assert d.restore("send to <IBAN_CODE_1>") == "send to <IBAN_CODE_1>"


def test_flag_leaves_text_alone_and_output_kind() -> None:
    guard = Guard({"output": [{"type": "pii", "action": "flag"}]})
    d = guard.scan("The customer's SSN is 078-05-1120.", "output")
    assert d.action == "flag" and d.text == "The customer's SSN is 078-05-1120."
    assert d.fired[0].findings[0].label == "US_SSN"
    assert guard.scan("The weather is nice today.", "output").action == "allow"


# --- the Presidio engine ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def presidio_offline() -> pii.PresidioPiiScanner:
    """Load Presidio from scratch with every network call refused, and fail if any was tried."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def refuse_connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network refused by the test")
        real_connect(self, address)  # unix sockets pass through

    def refuse_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        attempts.append(host)
        raise socket.gaierror("network refused by the test")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", refuse_connect)
    mp.setattr(socket, "getaddrinfo", refuse_getaddrinfo)
    mp.setattr(pii, "_ANALYZER", None)
    try:
        scanner = make_pii_scanner(engine="presidio")
        assert isinstance(scanner, pii.PresidioPiiScanner)
        scanner.warm()
        # an e-mail makes Presidio ask tldextract about the domain
        scanner.scan("Write to someone@example.org", Context())
    finally:
        mp.undo()
    assert attempts == [], f"Presidio tried the network: {attempts}"
    return scanner


def test_presidio_runs_offline_and_finds_names(presidio_offline: pii.PresidioPiiScanner) -> None:
    assert presidio_offline.cost == "slow"
    text = ("Hi, I'm Maria Gonzalez from Madrid. Mail maria.gonzalez@example.com, phone +34 912 345 678, "
            "IBAN ES91 2100 0418 4502 0005 1332.")
    res = presidio_offline.scan(text, Context())
    found = {(f.label, f.text) for f in res.findings}
    assert ("PERSON", "Maria Gonzalez") in found
    assert ("LOCATION", "Madrid") in found
    assert ("EMAIL_ADDRESS", "maria.gonzalez@example.com") in found
    assert ("IBAN_CODE", "ES91 2100 0418 4502 0005 1332") in found
    assert res.metadata["engine"] == "presidio"
    # spaCy's NER spans never swallow a format match ("Mail maria..." is not a PERSON)
    assert not any(f.label == "PERSON" and "@" in f.text for f in res.findings)


def test_presidio_entities_and_unknown_entity(presidio_offline: pii.PresidioPiiScanner) -> None:
    only = make_pii_scanner(engine="presidio", entities=["PERSON"])
    res = only.scan("John Smith wrote from john@example.com", Context())
    assert [f.label for f in res.findings] == ["PERSON"]
    with pytest.raises(ValueError, match="Presidio does not know NOT_A_THING"):
        make_pii_scanner(engine="presidio", entities=["NOT_A_THING"]).warm()


async def test_presidio_redacts_through_guard(presidio_offline: pii.PresidioPiiScanner) -> None:
    guard = Guard({"input": [{"type": "pii", "params": {"engine": "presidio"}, "action": "redact",
                              "reversible": True, "timeout_ms": 5000}]})
    guard.warm()
    d = await guard.ascan("Please email Robert Johnson at robert.johnson@example.com.", "input")
    assert d.text == "Please email <PERSON_1> at <EMAIL_ADDRESS_1>."
    assert d.outcomes[0].verdict == "fail"
    assert d.restore("Dear <PERSON_1>,") == "Dear Robert Johnson,"


def test_presidio_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # as if not installed
    assert not pii.presidio_available()
    with pytest.raises(ConfigurationError, match=r"pip install 'podium\[guard\]'"):
        make_pii_scanner(engine="presidio")
    assert type(make_pii_scanner(engine="auto")) is pii.PiiScanner


def test_auto_picks_presidio_when_installed() -> None:
    assert isinstance(make_pii_scanner(engine="auto"), pii.PresidioPiiScanner)


def test_regex_findings_used_as_presidio_fallback() -> None:
    # the regex engine on its own reports what Presidio's recognisers often miss (national formats)
    assert [f.label for f in regex_findings("phone: 020 7946 0958")] == ["PHONE_NUMBER"]
