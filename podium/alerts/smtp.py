"""The ``email`` channel: a plain-text + HTML message over SMTP (plain, STARTTLS or implicit
TLS; optional login), with the standard library's ``smtplib`` and ``email.message``. Messages of
one alert (firing, then resolved) share a ``References`` header so mail clients thread them."""

from __future__ import annotations

import hashlib
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from podium.alerts.base import Alert, Channel, DeliveryError, resolve_secret
from podium.alerts.webhook import headline

__all__ = ["EmailChannel", "email_message"]

Security = Literal["none", "starttls", "ssl"]
_DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _rows(alert: Alert) -> list[tuple[str, str]]:
    rows = [("Status", alert.status), ("Severity", alert.severity), ("Project", alert.project),
            ("Rule", alert.rule), ("Value", _num(alert.value)), ("Threshold", _num(alert.threshold)),
            ("Started", alert.started_at.isoformat(timespec="seconds"))]
    if alert.ended_at:
        rows.append(("Ended", alert.ended_at.isoformat(timespec="seconds")))
    rows += [(f"Label {k}", v) for k, v in sorted(alert.labels.items())]
    return rows


def email_message(alert: Alert, sender: str, to: list[str], subject_prefix: str = "[Podium]") -> EmailMessage:
    """The message for ``alert``: subject ``<prefix> [FIRING] critical: <title> (<project>)``."""
    msg = EmailMessage()
    msg["Subject"] = " ".join(f"{subject_prefix} {headline(alert)}".split())  # no line breaks in a header
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="podium.alerts")
    thread = f"<{hashlib.sha256(alert.key.encode()).hexdigest()[:24]}@podium.alerts>"
    msg["References"] = thread
    msg["X-Podium-Dedup-Key"] = alert.key
    rows = _rows(alert)
    plain = [headline(alert), ""]
    if alert.summary:
        plain += [alert.summary, ""]
    plain += [f"{k}: {v}" for k, v in rows]
    if alert.url:
        plain += ["", f"Open in Podium: {alert.url}"]
    msg.set_content("\n".join(plain) + "\n")
    e = html.escape
    table = "".join(f"<tr><th align=\"left\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    body = [f"<h2>{e(headline(alert))}</h2>"]
    if alert.summary:
        body.append(f"<p>{e(alert.summary)}</p>")
    body.append(f"<table>{table}</table>")
    if alert.url:
        body.append(f"<p><a href=\"{e(alert.url)}\">Open in Podium</a></p>")
    msg.add_alternative("<html><body>" + "".join(body) + "</body></html>", subtype="html")
    return msg


class EmailChannel(Channel):
    """Send the alert by e-mail through an SMTP server."""

    name = "email"
    description = "E-mail over SMTP (plain, STARTTLS or TLS; optional login): plain-text + HTML"

    def __init__(self, host: str, sender: str, to: list[str] | str, port: int | None = None,
                 security: Security = "starttls", username: str | None = None, password: str | None = None,
                 subject_prefix: str = "[Podium]", *, timeout_s: float = 10.0, retries: int = 2,
                 backoff_s: float = 0.5) -> None:
        super().__init__(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        if not isinstance(host, str) or not host.strip():
            raise ValueError("host must be the SMTP server's host name")
        if security not in _DEFAULT_PORTS:
            raise ValueError(f"security must be one of none, starttls, ssl, not {security!r}")
        recipients = [to] if isinstance(to, str) else to
        if not isinstance(recipients, list) or not recipients or not all(
                isinstance(a, str) and "@" in a for a in recipients):
            raise ValueError("to must be an e-mail address or a non-empty list of them")
        if not isinstance(sender, str) or "@" not in sender:
            raise ValueError("sender must be an e-mail address (the From of the alert mails)")
        if (username is None) != (password is None):
            raise ValueError("give both username and password (password may be env:NAME), or neither")
        self.host, self.security, self.sender, self.to = host, security, sender, recipients
        self.port = int(port) if port is not None else _DEFAULT_PORTS[security]
        self.username = username
        self.password = resolve_secret(password, "password") if password is not None else None
        self.subject_prefix = subject_prefix
        self.target = f"smtp://{host}:{self.port}"
        self._secrets = [self.password] if self.password else []

    def _deliver(self, alert: Alert) -> int | None:
        msg = email_message(alert, self.sender, self.to, self.subject_prefix)
        try:
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.username is not None and self.password is not None:
                    client.login(self.username, self.password)
                refused = client.send_message(msg, from_addr=self.sender, to_addrs=self.to)
        except smtplib.SMTPRecipientsRefused as e:
            raise DeliveryError(f"the SMTP server refused every recipient: {sorted(e.recipients)}") from e
        except smtplib.SMTPResponseException as e:
            text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
            raise DeliveryError(f"SMTP {e.smtp_code}: {text}", status=e.smtp_code,
                                retryable=400 <= e.smtp_code < 500) from e
        except (smtplib.SMTPServerDisconnected, TimeoutError, ConnectionError) as e:
            raise DeliveryError(f"cannot reach the SMTP server: {type(e).__name__}: {e}", retryable=True) from e
        except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
            raise DeliveryError(f"SMTP failed: {type(e).__name__}: {e}") from e
        if refused:
            raise DeliveryError(f"the SMTP server refused some recipients: {sorted(refused)}")
        return 250
