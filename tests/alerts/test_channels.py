"""The built-in alert channels against real local servers: the webhook and PagerDuty channels POST
to a threaded ``http.server`` (exact bodies, headers, retries on 5xx and timeouts, a failed
Delivery when nothing listens), the e-mail channel talks SMTP to an ``aiosmtpd`` server on
127.0.0.1 (subject, recipients, both bodies, login, 4xx retry, 5xx failure); plus the registry's
400s and the ``env:NAME`` secrets, which never reach an error message or a log line."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from podium.alerts import Alert, Delivery, build, channel_specs
from podium.alerts.pagerduty import DEFAULT_URL, PagerDutyChannel
from podium.errors import ValidationFailed

STARTED = datetime(2026, 12, 6, 12, 30, 0, tzinfo=UTC)


def alert(**kw: Any) -> Alert:
    base: dict[str, Any] = dict(rule="error-rate", project="demo", title="Error rate above 5%", severity="critical",
                                summary="8.0% of 1,250 traces failed in the last 5 min", value=0.08, threshold=0.05,
                                labels={"model": "gpt-4o", "env": "prod"}, started_at=STARTED,
                                url="http://podium.local/projects/demo/alerts/7")
    base.update(kw)
    return Alert(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HttpSink:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script:
    each entry is a status code, or ``("sleep", seconds)`` to stall before answering 200."""

    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    state = HttpSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                           json.loads(raw)))
            step = state.script.pop(0) if state.script else 202
            if isinstance(step, tuple):
                time.sleep(step[1])
                step = 200
            body = b'{"status":"success"}' if step < 400 else b'{"error":"try later"}'
            try:
                self.send_response(step)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout test)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield state
    server.shutdown()
    server.server_close()


# -- webhook ---------------------------------------------------------------------------------------

EXPECTED_BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "[FIRING] critical: Error rate above 5% (demo)"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "8.0% of 1,250 traces failed in the last 5 min"}},
    {"type": "section", "fields": [
        {"type": "mrkdwn", "text": "*Project*\ndemo"},
        {"type": "mrkdwn", "text": "*Rule*\nerror-rate"},
        {"type": "mrkdwn", "text": "*Value*\n0.08"},
        {"type": "mrkdwn", "text": "*Threshold*\n0.05"},
        {"type": "mrkdwn", "text": "*Severity*\ncritical"},
        {"type": "mrkdwn", "text": "*Started*\n2026-12-06T12:30:00+00:00"},
    ]},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "env=prod · model=gpt-4o"}]},
    {"type": "section", "text": {"type": "mrkdwn", "text": "<http://podium.local/projects/demo/alerts/7|Open in Podium>"}},
]


def test_webhook_posts_the_exact_slack_compatible_body_and_headers(sink: HttpSink,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_TEST_HOOK_TOKEN", "s3cret-token")
    ch = build("webhook", {"url": sink.url + "/services/T00/B00/XYZ",
                           "headers": {"Authorization": "env:PODIUM_TEST_HOOK_TOKEN", "X-Team": "ml"}})
    d = ch.send(alert())
    assert d == Delivery(channel="webhook", ok=True, status=202, error=None, latency_ms=d.latency_ms, attempts=1,
                         target=sink.url)
    assert d.latency_ms > 0
    [req] = sink.requests
    assert req.path == "/services/T00/B00/XYZ"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["authorization"] == "s3cret-token" and req.headers["x-team"] == "ml"
    assert req.headers["user-agent"] == "podium-alerts"
    assert req.body == {
        "text": "[FIRING] critical: Error rate above 5% (demo): 8.0% of 1,250 traces failed in the last 5 min",
        "blocks": EXPECTED_BLOCKS,
        "podium": {"version": 1, "alert": {
            "rule": "error-rate", "project": "demo", "title": "Error rate above 5%", "severity": "critical",
            "status": "firing", "summary": "8.0% of 1,250 traces failed in the last 5 min", "value": 0.08,
            "threshold": 0.05, "labels": {"model": "gpt-4o", "env": "prod"},
            "started_at": "2026-12-06T12:30:00+00:00", "ended_at": None,
            "url": "http://podium.local/projects/demo/alerts/7", "dedup_key": alert().key}},
    }


def test_webhook_escapes_slack_markup_and_skips_empty_parts(sink: HttpSink) -> None:
    ch = build("webhook", {"url": sink.url})
    assert ch.send(alert(summary="p95 <5s> & rising", labels={}, url=None, status="resolved",
                         value=None, threshold=None)).ok
    body = sink.requests[0].body
    assert body["text"] == "[RESOLVED] critical: Error rate above 5% (demo): p95 <5s> & rising"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    assert body["blocks"][1]["text"]["text"] == "p95 &lt;5s&gt; &amp; rising"
    assert body["blocks"][2]["fields"][2]["text"] == "*Value*\n-"


def test_webhook_retries_a_500_then_succeeds(sink: HttpSink) -> None:
    sink.script = [500, 503, 200]
    d = build("webhook", {"url": sink.url, "retries": 2, "backoff_s": 0.01}).send(alert())
    assert d.ok and d.status == 200 and d.attempts == 3
    assert len(sink.requests) == 3 and sink.requests[0].body == sink.requests[2].body


def test_webhook_retries_a_timeout_then_succeeds(sink: HttpSink) -> None:
    sink.script = [("sleep", 1.0), 200]
    d = build("webhook", {"url": sink.url, "timeout_s": 0.3, "retries": 1, "backoff_s": 0}).send(alert())
    assert d.ok and d.attempts == 2


def test_webhook_gives_up_after_the_retries_and_does_not_retry_a_4xx(sink: HttpSink) -> None:
    sink.script = [500, 500, 500]
    d = build("webhook", {"url": sink.url, "retries": 2, "backoff_s": 0}).send(alert())
    assert not d.ok and d.status == 500 and d.attempts == 3 and d.error == 'HTTP 500: {"error":"try later"}'
    sink.script = [403]
    d = build("webhook", {"url": sink.url, "retries": 2, "backoff_s": 0}).send(alert())
    assert not d.ok and d.status == 403 and d.attempts == 1


def test_a_server_that_is_down_is_a_failed_delivery_without_secrets(caplog: pytest.LogCaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens here
    monkeypatch.setenv("PODIUM_TEST_HOOK_URL", f"http://127.0.0.1:{port}/hooks/SECRETPATH")
    ch = build("webhook", {"url": "env:PODIUM_TEST_HOOK_URL", "retries": 1, "backoff_s": 0})
    with caplog.at_level(logging.INFO, logger="podium.alerts"):
        d = ch.send(alert())
    assert not d.ok and d.status is None and d.attempts == 2
    assert d.error and d.error.startswith("cannot reach the destination: ConnectError")
    assert d.target == f"http://127.0.0.1:{port}"
    assert "SECRETPATH" not in d.error and "SECRETPATH" not in caplog.text and "SECRETPATH" not in repr(ch)
    assert "failed after 2 attempt(s)" in caplog.text


def test_asend_runs_send_in_a_thread(sink: HttpSink) -> None:
    d = asyncio.run(build("webhook", {"url": sink.url}).asend(alert()))
    assert d.ok and len(sink.requests) == 1


# -- pagerduty -------------------------------------------------------------------------------------


def test_pagerduty_trigger_then_resolve_share_the_dedup_key(sink: HttpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_TEST_PD_KEY", "R0UT1NGKEY0123456789abcdefabcdef")
    ch = build("pagerduty", {"routing_key": "env:PODIUM_TEST_PD_KEY", "url": sink.url + "/v2/enqueue",
                             "component": "gateway"})
    fired = alert()
    assert ch.send(fired).ok
    assert ch.send(alert(status="resolved", ended_at=datetime(2026, 12, 6, 12, 45, tzinfo=UTC))).ok
    trigger, resolve = (r.body for r in sink.requests)
    assert all(r.path == "/v2/enqueue" for r in sink.requests)
    assert trigger == {
        "routing_key": "R0UT1NGKEY0123456789abcdefabcdef", "event_action": "trigger", "dedup_key": fired.key,
        "payload": {
            "summary": "Error rate above 5%: 8.0% of 1,250 traces failed in the last 5 min",
            "source": "podium/demo", "severity": "critical", "timestamp": "2026-12-06T12:30:00+00:00",
            "class": "error-rate", "component": "gateway", "group": "demo",
            "custom_details": {"project": "demo", "rule": "error-rate", "value": 0.08, "threshold": 0.05,
                               "labels": {"model": "gpt-4o", "env": "prod"},
                               "summary": "8.0% of 1,250 traces failed in the last 5 min"}},
        "client": "Podium", "client_url": "http://podium.local/projects/demo/alerts/7",
        "links": [{"href": "http://podium.local/projects/demo/alerts/7", "text": "Open in Podium"}],
    }
    assert resolve == {"routing_key": "R0UT1NGKEY0123456789abcdefabcdef", "event_action": "resolve",
                       "dedup_key": fired.key}
    assert fired.key.startswith("podium/demo/error-rate/") and len(fired.key) == len("podium/demo/error-rate/") + 12


def test_pagerduty_uses_an_explicit_dedup_key_and_never_shows_the_routing_key(sink: HttpSink) -> None:
    sink.script = [400]
    ch = build("pagerduty", {"routing_key": "KEY-NOT-TO-LEAK", "url": sink.url, "source": "podium-prod"})
    d = ch.send(alert(dedup_key="incident-42", severity="info"))
    assert not d.ok and d.status == 400 and d.attempts == 1
    body = sink.requests[0].body
    assert body["dedup_key"] == "incident-42" and body["payload"]["source"] == "podium-prod"
    assert body["payload"]["severity"] == "info"
    assert "KEY-NOT-TO-LEAK" not in (d.error or "") and "KEY-NOT-TO-LEAK" not in repr(ch)


def test_pagerduty_defaults_to_the_events_endpoint_without_calling_it() -> None:
    ch = build("pagerduty", {"routing_key": "k"})
    assert isinstance(ch, PagerDutyChannel) and ch.url == DEFAULT_URL == "https://events.pagerduty.com/v2/enqueue"
    assert ch.target == "https://events.pagerduty.com"


# -- email -----------------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps each message and answers DATA from a script of replies."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.replies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return reply


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"alerts", b"pa55word")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    yield box, port
    controller.stop()


def _email(port: int, **kw: Any) -> Any:
    params: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "none", "sender": "podium@example.com",
                              "to": ["oncall@example.com", "ml-team@example.com"], "backoff_s": 0}
    params.update(kw)
    return build("email", params)


def test_email_sends_plain_text_and_html_over_smtp(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    d = _email(port).send(alert())
    assert d.ok and d.status == 250 and d.target == f"smtp://127.0.0.1:{port}"
    [(mail_from, rcpts, msg)] = box.messages
    assert mail_from == "podium@example.com" and rcpts == ["oncall@example.com", "ml-team@example.com"]
    assert msg["Subject"] == "[Podium] [FIRING] critical: Error rate above 5% (demo)"
    assert msg["To"] == "oncall@example.com, ml-team@example.com" and msg["From"] == "podium@example.com"
    assert msg["X-Podium-Dedup-Key"] == alert().key
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    text = plain.get_content().replace("\r\n", "\n")
    assert "8.0% of 1,250 traces failed in the last 5 min" in text
    assert "Value: 0.08\nThreshold: 0.05" in text and "Label env: prod" in text
    assert "Open in Podium: http://podium.local/projects/demo/alerts/7" in text
    markup = html.get_content()
    assert "<h2>[FIRING] critical: Error rate above 5% (demo)</h2>" in markup
    assert '<a href="http://podium.local/projects/demo/alerts/7">Open in Podium</a>' in markup


def test_email_logs_in_with_a_password_from_the_environment_and_threads_resolve(
        smtp: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    box, port = smtp
    monkeypatch.setenv("PODIUM_TEST_SMTP_PASSWORD", "pa55word")
    ch = _email(port, username="alerts", password="env:PODIUM_TEST_SMTP_PASSWORD", to="oncall@example.com",
                subject_prefix="[prod]")
    assert ch.send(alert()).ok and ch.send(alert(status="resolved", summary="")).ok
    (_, _, fired), (_, rcpts, resolved) = box.messages
    assert rcpts == ["oncall@example.com"] and resolved["Subject"] == "[prod] [RESOLVED] critical: Error rate above 5% (demo)"
    assert fired["References"] == resolved["References"] and fired["Message-ID"] != resolved["Message-ID"]
    monkeypatch.setenv("PODIUM_TEST_SMTP_PASSWORD", "wrong-pass")
    d = _email(port, username="alerts", password="env:PODIUM_TEST_SMTP_PASSWORD").send(alert())
    assert not d.ok and d.status == 535 and d.attempts == 1 and "wrong-pass" not in (d.error or "")


def test_email_retries_a_4xx_and_fails_on_a_5xx(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    box.replies = ["451 Try again later"]
    d = _email(port, retries=1).send(alert())
    assert d.ok and d.attempts == 2 and len(box.messages) == 1
    box.replies = ["554 Message rejected"]
    d = _email(port, retries=2).send(alert())
    assert not d.ok and d.status == 554 and d.attempts == 1 and d.error == "SMTP 554: Message rejected"
    assert _email(port).send(alert(title="Error rate\nabove 5%")).ok  # no header injection
    assert box.messages[-1][2]["Subject"] == "[Podium] [FIRING] critical: Error rate above 5% (demo)"


def test_email_to_a_server_that_is_down_is_a_failed_delivery() -> None:
    d = _email(free_port(), retries=1).send(alert())
    assert not d.ok and d.attempts == 2 and (d.error or "").startswith("cannot reach the SMTP server")


# -- registry and the contract ---------------------------------------------------------------------


def test_the_builtins_register_through_the_plugin_hook() -> None:
    specs = channel_specs()
    assert {"webhook", "email", "pagerduty"} <= set(specs)
    assert specs["webhook"].plugin == "podium.alerts.builtins" and "Slack" in specs["webhook"].description


@pytest.mark.parametrize(("type_", "params", "match"), [
    ("sms", {}, r"unknown alert channel type 'sms'; use one of .*email, file, pagerduty, webhook"),
    ("webhook", {}, r"bad params for alert channel 'webhook': .*url.*; it accepts url, headers, timeout_s"),
    ("webhook", {"url": "ftp://x"}, r"url must be an http\(s\) URL"),
    ("webhook", {"url": "http://x", "bogus": 1}, r"unexpected keyword argument 'bogus'"),
    ("webhook", {"url": "http://x", "headers": {"A": 1}}, r"headers must be a mapping"),
    ("webhook", {"url": "env:PODIUM_TEST_UNSET_VAR"}, r"environment variable 'PODIUM_TEST_UNSET_VAR'.*not set"),
    ("webhook", {"url": "http://x", "retries": -1}, r"retries must be an integer from 0 to 10"),
    ("webhook", "http://x", r"must be a mapping"),
    ("email", {"host": "h", "sender": "a@b", "to": []}, r"to must be an e-mail address"),
    ("email", {"host": "h", "sender": "a@b", "to": "c@d", "security": "tls"}, r"security must be one of"),
    ("email", {"host": "h", "sender": "a@b", "to": "c@d", "username": "u"}, r"give both username and password"),
    ("pagerduty", {"routing_key": " "}, r"routing_key must be"),
])
def test_bad_channel_configs_are_400s_that_say_how_to_fix_them(type_: str, params: Any, match: str) -> None:
    with pytest.raises(ValidationFailed, match=match) as e:
        build(type_, params, where="alerts.channels[0]")
    assert e.value.status_code == 400 and e.value.details[0]["loc"] == "alerts.channels[0]"


def test_an_alert_checks_its_fields_and_round_trips() -> None:
    with pytest.raises(ValueError, match="severity must be one of info, warning, critical"):
        alert(severity="page")
    with pytest.raises(ValueError, match="status must be one of firing, resolved"):
        alert(status="open")
    a = alert(dedup_key="")
    back = Alert.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back.to_dict() == a.to_dict() and back.started_at == STARTED
    assert alert(labels={"env": "prod", "model": "gpt-4o"}).key == a.key  # label order does not matter
    assert alert(labels={}).key == "podium/demo/error-rate"
