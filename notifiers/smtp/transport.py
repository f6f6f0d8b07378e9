"""Email delivery over SMTP, on the standard library only.

One connection per send: reminders go out a few at a time, so a pooled connection would only add
failure modes (idle disconnects, half-dead sockets) for no measurable gain.

Classification follows the notifier contract: a refused recipient (5xx) is PERMANENT, anything
that looks like our own configuration or the network (auth, sender refused, relay denied, TLS,
DNS, timeouts) is TRANSIENT, so a bad setting delays mail instead of burning every outbox row.
"""

from __future__ import annotations

import hashlib
import html
import math
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus

TLS_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
AUTH_HINT = "authentication failed: check PERMIT_SMTP_USER/PERMIT_SMTP_PASSWORD"

_FONT = "-apple-system,'PingFang SC','Hiragino Sans GB','Microsoft YaHei','Noto Sans CJK SC',sans-serif"
_BODY_STYLE = "margin:0;padding:24px 12px;background:#f5f6f8;"
_CARD_STYLE = (
    "max-width:600px;margin:0 auto;padding:24px 28px;background:#ffffff;border-radius:8px;"
    f"font-family:{_FONT};font-size:16px;line-height:1.7;color:#1f2328;"
)
_P_STYLE = "margin:0 0 16px 0;"
_UL_STYLE = "margin:0 0 16px 0;padding-left:24px;"


def text_to_html(text: str, lang: str) -> str:
    """Render a plain-text reminder as a small, readable HTML document.

    Everything is escaped first: bodies carry holder names and free text from a roster import.
    Blank lines separate paragraphs; runs of lines starting with "- " become a list; other line
    breaks become <br>.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(f'<p style="{_P_STYLE}">' + "<br>\n".join(paragraph) + "</p>")
            paragraph.clear()

    def flush_items() -> None:
        if items:
            lis = "".join(f'<li style="margin:0 0 4px 0;">{item}</li>' for item in items)
            blocks.append(f'<ul style="{_UL_STYLE}">{lis}</ul>')
            items.clear()

    for raw in lines:
        line = raw.rstrip()
        if not line.strip():
            flush_paragraph()
            flush_items()
        elif line.startswith("- "):
            flush_paragraph()
            items.append(html.escape(line[2:].strip()))
        else:
            flush_items()
            paragraph.append(html.escape(line))
    flush_paragraph()
    flush_items()

    content = "\n".join(blocks)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(lang or "zh-CN")}">\n'
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"></head>\n'
        f'<body style="{_BODY_STYLE}">\n<div style="{_CARD_STYLE}">\n{content}\n</div>\n</body>\n</html>\n'
    )


def _clean(env: Mapping[str, str], name: str, *, strip: bool = True) -> str | None:
    """An environment value, or None when unset or empty (empty counts as unset)."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip() if strip else value
    return value or None


def _split_address(value: str) -> tuple[str, str]:
    if "\r" in value or "\n" in value:  # header injection
        raise ValueError(value)
    name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in addr):
        raise ValueError(value)
    return name, addr


class SmtpEmailNotifier:
    name = "smtp"
    channels = frozenset({"email"})

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        tls: str = "starttls",
        from_address: str,
        timeout_seconds: float = 15.0,
        unsubscribe: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Errors name the environment variable: that is what an operator has to fix.
        host = (host or "").strip()
        if not host or any(c.isspace() for c in host):
            raise NotifierConfigError(
                "PERMIT_SMTP_HOST is not set" if not host else f"PERMIT_SMTP_HOST is not a host name: {host!r}"
            )
        tls = (tls or "").strip().lower()
        if tls not in TLS_MODES:
            raise NotifierConfigError(f"PERMIT_SMTP_TLS must be one of {', '.join(TLS_MODES)} (got {tls!r})")
        if port is None:
            port = DEFAULT_PORTS[tls]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise NotifierConfigError(f"PERMIT_SMTP_PORT must be a port number 1-65535 (got {port!r})")
        if bool(user) != bool(password):
            missing = "PERMIT_SMTP_PASSWORD" if user else "PERMIT_SMTP_USER"
            raise NotifierConfigError(f"{missing} is not set: PERMIT_SMTP_USER and PERMIT_SMTP_PASSWORD go together")
        if not all(part.isascii() for part in (user or "", password or "")):
            # smtplib sends AUTH credentials as ASCII only: fail at start-up, not at every send.
            raise NotifierConfigError(
                "PERMIT_SMTP_USER and PERMIT_SMTP_PASSWORD must be ASCII (a limitation of smtplib)"
            )
        if not from_address or not from_address.strip():
            raise NotifierConfigError("PERMIT_EMAIL_FROM is not set")
        try:
            display_name, addr = _split_address(from_address.strip())
        except ValueError:
            raise NotifierConfigError(f"PERMIT_EMAIL_FROM is not an email address: {from_address!r}") from None
        if (
            isinstance(timeout_seconds, bool)
            or not isinstance(timeout_seconds, (int, float))
            or not (math.isfinite(timeout_seconds) and timeout_seconds > 0)
        ):
            raise NotifierConfigError(
                f"PERMIT_SMTP_TIMEOUT_SECONDS must be a positive number (got {timeout_seconds!r})"
            )
        if unsubscribe is None:
            unsubscribe = f"mailto:{addr}?subject=unsubscribe"
        unsubscribe = unsubscribe.strip()
        if not unsubscribe.lower().startswith(("mailto:", "https:")) or any(
            c.isspace() or c in "<>," for c in unsubscribe
        ):
            raise NotifierConfigError(f"PERMIT_EMAIL_UNSUBSCRIBE must be a mailto: or https: URI (got {unsubscribe!r})")

        self.host = host
        self.port = port
        self.tls = tls
        self.user = user or None
        self._password = password or None
        self.from_address = addr
        self.from_name = display_name
        self.timeout_seconds = float(timeout_seconds)
        self.unsubscribe = unsubscribe
        self._ssl_context = ssl_context
        self._domain = addr.rpartition("@")[2]

    def __repr__(self) -> str:  # never the password
        return (f"SmtpEmailNotifier(host={self.host!r}, port={self.port}, tls={self.tls!r}, "
                f"user={self.user!r}, from={self.from_address!r})")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpEmailNotifier:
        host = _clean(env, "PERMIT_SMTP_HOST")
        if host is None:
            raise NotifierConfigError("PERMIT_SMTP_HOST is not set")
        from_address = _clean(env, "PERMIT_EMAIL_FROM")
        if from_address is None:
            raise NotifierConfigError("PERMIT_EMAIL_FROM is not set")
        port: int | None = None
        if (raw_port := _clean(env, "PERMIT_SMTP_PORT")) is not None:
            try:
                port = int(raw_port)
            except ValueError:
                raise NotifierConfigError(
                    f"PERMIT_SMTP_PORT must be a port number 1-65535 (got {raw_port!r})"
                ) from None
        timeout = 15.0
        if (raw_timeout := _clean(env, "PERMIT_SMTP_TIMEOUT_SECONDS")) is not None:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                raise NotifierConfigError(
                    f"PERMIT_SMTP_TIMEOUT_SECONDS must be a positive number (got {raw_timeout!r})"
                ) from None
        return cls(
            host=host,
            port=port,
            user=_clean(env, "PERMIT_SMTP_USER"),
            password=_clean(env, "PERMIT_SMTP_PASSWORD", strip=False),  # spaces may be part of it
            tls=_clean(env, "PERMIT_SMTP_TLS") or "starttls",
            from_address=from_address,
            timeout_seconds=timeout,
            unsubscribe=_clean(env, "PERMIT_EMAIL_UNSUBSCRIBE"),
        )

    # -- building -----------------------------------------------------------------------------

    def message_id(self, idempotency_key: str) -> str:
        """The same outbox row always gets the same Message-ID, so a resend can be recognised."""
        if not idempotency_key:
            return make_msgid(domain=self._domain)
        digest = hashlib.sha256(f"permit-worker:{idempotency_key}".encode()).hexdigest()[:40]
        return f"<{digest}@{self._domain}>"

    def build(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        subject = message.subject or next((ln.strip() for ln in message.body.splitlines() if ln.strip()), "")
        email["Subject"] = " ".join(subject.split())  # a stray newline from a template must not break the header
        email["From"] = Address(display_name=self.from_name, addr_spec=self.from_address)
        email["To"] = message.to
        email["Date"] = formatdate(localtime=True)
        email["Message-ID"] = self.message_id(message.idempotency_key)
        email["List-Unsubscribe"] = f"<{self.unsubscribe}>"
        email["Auto-Submitted"] = "auto-generated"
        # base64, not the stdlib's 8bit default: smtplib never declares BODY=8BITMIME, and
        # Chinese text is a third larger in base64 but three times larger in quoted-printable.
        email.set_content(message.body, cte="base64")
        email.add_alternative(text_to_html(message.body, message.locale), subtype="html", cte="base64")
        return email

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: Message) -> SendResult:
        try:
            if message.channel != "email":
                return SendResult.permanent(f"the smtp notifier carries email only, not {message.channel!r}")
            try:
                _split_address(message.to)
            except ValueError:
                return SendResult.permanent(f"not an email address: {message.to!r}")
            email = self.build(message)
            self._deliver(email, message.to)
            return SendResult.sent(str(email["Message-ID"]))
        except Exception as exc:
            result = self._classify(exc)
            if self._password and result.error and self._password in result.error:
                return SendResult(
                    result.status, error=result.error.replace(self._password, "***"), error_code=result.error_code
                )
            return result

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _deliver(self, email: EmailMessage, to: str) -> None:
        smtp: smtplib.SMTP
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_seconds, context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
        try:
            smtp.ehlo()
            if self.tls == "starttls":
                # Raises SMTPNotSupportedError when not offered: never silently fall back to plain text.
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self.user and self._password:
                smtp.login(self.user, self._password)
            smtp.send_message(email, from_addr=self.from_address, to_addrs=[to])
        except BaseException:
            smtp.close()
            raise
        # The message is accepted: a failing QUIT must not turn it into a retry (a duplicate).
        try:
            smtp.quit()
        except Exception:
            smtp.close()

    @staticmethod
    def _classify(exc: Exception) -> SendResult:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(exc.recipients.values()), (0, b""))
            return _by_code("recipient refused", code, text, rcpt=True)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return SendResult(SendStatus.TRANSIENT, error=AUTH_HINT, error_code=str(exc.smtp_code))
        if isinstance(exc, smtplib.SMTPSenderRefused):
            detail = _decode(exc.smtp_error)
            return SendResult(
                SendStatus.TRANSIENT,
                error=f"sender refused ({exc.smtp_code} {detail}): check PERMIT_EMAIL_FROM and the relay's permissions",
                error_code=str(exc.smtp_code),
            )
        if isinstance(exc, smtplib.SMTPDataError):
            return _by_code("message refused", exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return SendResult.transient(f"server does not support a required feature: {exc} (check PERMIT_SMTP_TLS)")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return SendResult.transient(f"server disconnected: {exc}")
        if isinstance(exc, smtplib.SMTPResponseException):  # greeting, HELO, other replies
            return SendResult(
                SendStatus.TRANSIENT,
                error=f"smtp error {exc.smtp_code} {_decode(exc.smtp_error)}",
                error_code=str(exc.smtp_code),
            )
        if isinstance(exc, ssl.SSLError):
            return SendResult.transient(f"TLS failed: {exc}")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return SendResult.transient("timed out talking to the smtp server")
        if isinstance(exc, socket.gaierror):
            return SendResult.transient(f"cannot resolve PERMIT_SMTP_HOST: {exc}")
        if isinstance(exc, ConnectionRefusedError):
            return SendResult.transient("connection refused by the smtp server")
        if isinstance(exc, OSError):
            return SendResult.transient(f"network error: {type(exc).__name__}: {exc}")
        return SendResult.transient(f"unexpected {type(exc).__name__} while sending email")


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _by_code(what: str, code: int, text: bytes | str, *, rcpt: bool = False) -> SendResult:
    detail = _decode(text)
    error = f"{what}: {code} {detail}".strip()
    # A relay that refuses to relay for us rejects every recipient with 5xx: that is our
    # configuration (missing credentials), not a bad address, so it must not burn the row.
    if rcpt and (code == 530 or "relay" in detail.lower()):
        return SendResult(
            SendStatus.TRANSIENT, error=f"{error} (check PERMIT_SMTP_USER/PERMIT_SMTP_PASSWORD)", error_code=str(code)
        )
    if 500 <= code < 600:
        return SendResult.permanent(error, error_code=str(code))
    return SendResult(SendStatus.TRANSIENT, error=error, error_code=str(code) if code else None)
