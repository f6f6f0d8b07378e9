"""A small fake of Twilio's Messages API over real HTTP on 127.0.0.1, for tests and benchmarks.

The real `twilio` SDK talks to it unchanged (point the SDK's api domain at `fake.base_url`), so
tests exercise the SDK's own request building and error parsing. Each POST takes the next
scripted outcome (default: success); `accepted` is what "Twilio" took, whatever it answered.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from notifiers.local_fake import LocalFake

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one POST. Build with ok(), error(), rate_limited(), ...."""

    status: int = 201
    code: int | None = None
    message: str = ""
    accept: bool = True  # record the message as accepted (before any delay)
    retry_after: str | None = None
    delay_seconds: float = 0.0


def ok() -> Outcome:
    return Outcome()


def error(status: int, code: int, message: str) -> Outcome:
    return Outcome(status=status, code=code, message=message, accept=False)


def rate_limited(retry_after: int | str) -> Outcome:
    return Outcome(status=429, code=20429, message="Too Many Requests", accept=False, retry_after=str(retry_after))


def server_error(accept: bool = False) -> Outcome:
    # accept=True is the ambiguous case: Twilio took the message, then the answer failed.
    return Outcome(status=500, code=20500, message="Internal Server Error", accept=accept)


def slow(seconds: float, then: Outcome | None = None) -> Outcome:
    # Acceptance is recorded before sleeping, so a client timeout here is "accepted but unanswered".
    return replace(then or ok(), delay_seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]  # form fields for POST, query parameters for GET
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


def unused_base_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed on return: nobody listens


def _segments(body: str) -> int:
    single, multi = (160, 153) if body.isascii() else (70, 67)  # GSM-7-ish vs UCS-2
    return 1 if len(body) <= single else -(-len(body) // multi)


class FakeTwilio(LocalFake):
    """`with FakeTwilio() as fake:` serves on a random free port until the block ends."""

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.latency_seconds = 0.0  # added before every answer
        self._lock = threading.Lock()
        self._script: deque[Outcome] = deque()
        self._accepted: list[dict[str, Any]] = []
        self._requests: list[RecordedRequest] = []


    @property
    def base_url(self) -> str:
        return self.url

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next POSTs, in order; once used up, POSTs succeed."""
        with self._lock:
            self._script.extend(outcomes)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._accepted]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def add_accepted(
        self, to: str, body: str, *, sender: str = "+15005550006", created: datetime | None = None
    ) -> dict[str, Any]:
        """Pretend an earlier request was accepted (e.g. long ago, or by another process)."""
        return self._accept({"To": to, "From": sender, "Body": body}, created)

    def _accept(self, form: dict[str, str], created: datetime | None = None) -> dict[str, Any]:
        sid = "SM" + secrets.token_hex(16)
        # RFC 2822 in GMT, as Twilio writes it: "Thu, 24 Aug 2023 05:01:45 +0000".
        stamp = format_datetime((created or datetime.now(UTC)).astimezone(UTC))
        service = form.get("MessagingServiceSid")
        body = form.get("Body", "")
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        record = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": stamp, "date_updated": stamp, "date_sent": None,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From") if not service else None, "messaging_service_sid": service,
            "num_media": "0", "num_segments": str(_segments(body)), "price": None, "price_unit": "USD",
            "sid": sid, "status": "accepted" if service else "queued", "to": form.get("To"),
            "subresource_uris": {"media": f"{base}/Media.json"}, "uri": f"{base}.json",
        }
        with self._lock:
            self._accepted.append(record)
        return dict(record)

    def _listing(self, query: dict[str, str], path: str) -> dict[str, Any]:
        size = int(query.get("PageSize", "50"))
        with self._lock:
            found = [m for m in reversed(self._accepted) if "To" not in query or m["to"] == query["To"]][:size]
        uri = f"{path}?PageSize={size}&Page=0"
        return {
            "messages": found, "page": 0, "page_size": size, "start": 0, "end": max(len(found) - 1, 0),
            "first_page_uri": uri, "next_page_uri": None, "previous_page_uri": None, "uri": uri,
        }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeTwilio
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body go out in separate writes: without this, Nagle's algorithm stalls every
    # answer on a kept-alive connection by ~40 ms, which would cap throughput measurements.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        raw = (self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode() if method == "POST"
               else split.query)
        params = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        with owner._lock:
            owner._requests.append(RecordedRequest(method, split.path, params, dict(self.headers), time.monotonic()))
        try:
            if owner.latency_seconds:
                time.sleep(owner.latency_seconds)
            match = _MESSAGES_PATH.match(split.path)
            if not self._authorized(match):
                self._send_error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
            elif match is None:
                self._send_error(404, 20404, f"The requested resource {split.path} was not found")
            elif method == "GET":
                self._send_json(200, owner._listing(params, split.path))
            else:
                self._create(params)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test): nothing to answer

    def _authorized(self, match: re.Match[str] | None) -> bool:
        expected = f"{self.owner.account_sid}:{self.owner.auth_token}".encode()
        header = self.headers.get("Authorization", "")
        try:
            given = base64.b64decode(header[6:], validate=True) if header.startswith("Basic ") else b""
        except ValueError:  # binascii.Error: malformed credentials are just wrong credentials
            given = b""
        return secrets.compare_digest(given, expected) and (match is None or match["account"] == self.owner.account_sid)

    def _create(self, form: dict[str, str]) -> None:
        # Twilio's own validation comes first, and never consumes a scripted outcome.
        if not form.get("To"):
            return self._send_error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._send_error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return self._send_error(400, 21602, "Message body is required.")
        with self.owner._lock:
            outcome = self.owner._script.popleft() if self.owner._script else ok()
        record = self.owner._accept(form) if outcome.accept else None
        if outcome.delay_seconds:
            time.sleep(outcome.delay_seconds)
        if outcome.status < 300 and record is not None:
            return self._send_json(outcome.status, record)
        headers = {"Retry-After": outcome.retry_after} if outcome.retry_after is not None else {}
        self._send_error(outcome.status, outcome.code, outcome.message, headers)

    def _send_error(self, status: int, code: int | None, message: str, headers: dict[str, str] | None = None) -> None:
        more_info = f"https://www.twilio.com/docs/errors/{code}" if code else None
        self._send_json(status, {"code": code, "message": message, "more_info": more_info, "status": status}, headers)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


FakeTwilio.handler = _Handler  # defined after the fake, which its handler reaches as `owner`
