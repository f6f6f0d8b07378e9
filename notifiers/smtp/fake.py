"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it accepts and fails on cue.

    with FakeSmtp(reject={"nobody@example.com": "550 5.1.1 No such user"}) as smtp:
        ...send to 127.0.0.1:smtp.port...
        smtp.messages[0].message["Subject"]

No pytest imports: benchmarks reuse it. TLS needs the `openssl` command-line tool
(`openssl_available()` says whether it is there; `make_self_signed_cert` creates the files).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TRY_AGAIN = "451 4.3.0 Try again later"


@dataclass(frozen=True)
class Received:
    """One accepted message, as the server saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    tls: bool  # the session had switched to TLS (STARTTLS or implicit)
    login: str | None  # the AUTH user, when the client logged in


def free_port() -> int:
    """A port nothing listens on right now (bound and released; fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1; returns (certfile, keyfile)."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class RecordingHandler:
    """aiosmtpd hooks: refuse scripted recipients, fail DATA on cue, record the rest."""

    def __init__(self, reject: Mapping[str, str] | None = None, fail_data: int = 0) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._reject = {addr.lower(): reply for addr, reply in (reject or {}).items()}
        self._fail_data = fail_data
        self._fail_reply = TRY_AGAIN

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def reject(self, address: str, reply: str) -> None:
        with self._lock:
            self._reject[address.lower()] = reply

    def fail_next_data(self, count: int, reply: str = TRY_AGAIN) -> None:
        with self._lock:
            self._fail_data, self._fail_reply = count, reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            reply = self._reject.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._fail_data > 0:
                self._fail_data -= 1
                return self._fail_reply
        raw = envelope.original_content or b""
        parsed = BytesParser(policy=default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        # session.ssl covers STARTTLS; the transport's ssl_object covers implicit TLS.
        tls = session.ssl is not None or bool(server.transport and server.transport.get_extra_info("ssl_object"))
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        received = Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), raw, parsed, tls, login)
        with self._lock:
            self._received.append(received)
        return "250 2.0.0 Message accepted for delivery"


class FakeSmtp:
    """The server plus its controller, as a context manager.

    user/password: require AUTH (LOGIN/PLAIN) with exactly these credentials.
    cert: (certfile, keyfile) to offer STARTTLS; with implicit_tls=True the whole connection is
    TLS instead (SMTP_SSL, port 465 style).
    """

    def __init__(
        self,
        *,
        reject: Mapping[str, str] | None = None,
        fail_data: int = 0,
        user: str | None = None,
        password: str | None = None,
        cert: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.handler = RecordingHandler(reject, fail_data)
        self._user, self._password = user, password
        self._cert, self._implicit = cert, implicit_tls
        self._controller: Controller | None = None
        self.port = 0

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == (self._user or "").encode()
            and auth_data.password == (self._password or "").encode()
        )
        # handled=False: let aiosmtpd answer "535 ... credentials invalid" on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._cert is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self._cert[0]), str(self._cert[1]))
        return context

    def start(self) -> Self:
        options: dict[str, Any] = {"server_hostname": "fake-smtp.test"}  # no getfqdn() DNS lookup
        context = self._tls_context()
        if context is not None and self._implicit:
            options["ssl_context"] = context
        elif context is not None:
            options["tls_context"] = context
        if self._user is not None:
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=context is not None and not self._implicit,
            )
        last_error: Exception | None = None
        for _ in range(5):  # the free port can be taken between probe and bind: try another
            self.port = free_port()
            controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)
            try:
                controller.start()
            except OSError as exc:
                last_error = exc
                controller.stop(no_assert=True)
                continue
            self._controller = controller
            return self
        raise RuntimeError(f"fake SMTP server could not bind a port: {last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
