"""A small fake of the Tencent Cloud SMS API (2021-01-11) over real HTTP on 127.0.0.1.

The real SDK talks to it unchanged (PERMIT_TENCENT_SMS_ENDPOINT=fake.endpoint): POST / with a
JSON body, the action in X-TC-Action, signed TC3-HMAC-SHA256; the fake checks the SecretId and
the whole signature (notifiers/tencent/tc3.py) and answers like Tencent: HTTP 200 with either
Response.Error or the action's result. It serves SendSms and PullSmsSendStatusByPhoneNumber.
Each request takes the next scripted outcome (notifiers/tencent/outcomes.py; default: success);
`accepted` is what "Tencent" took, whatever it answered, and each accepted message gets its
status report at once unless `report_on_accept` is off.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from notifiers.local_fake import LocalFake
from notifiers.tencent import tc3
from notifiers.tencent.outcomes import Outcome, api_error, garbled, ok, refused, server_error, slow

__all__ = ["FakeTencentSms", "Outcome", "RecordedRequest", "api_error", "garbled", "ok", "refused", "server_error",
           "slow"]

VERSION = "2021-01-11"
MAX_SKEW_SECONDS = 300


@dataclass(frozen=True)
class RecordedRequest:
    action: str
    body: dict[str, Any]
    headers: dict[str, str]
    secret_id: str | None  # from the Authorization header
    signature_ok: bool
    at: float  # time.monotonic()


class FakeTencentSms(LocalFake):
    """`with FakeTencentSms() as fake:` serves on a random free port until the block ends."""

    def __init__(self) -> None:
        self.secret_id = "AKID" + secrets.token_hex(16)
        self.secret_key = secrets.token_hex(16)
        self.sdk_app_id = "1400" + str(secrets.randbelow(900000) + 100000)
        self.latency_seconds = 0.0
        self.report_on_accept = True
        self.echo_session_context = True  # Tencent enables the echo per account, on request
        self._lock = threading.Lock()
        self._script: deque[Outcome] = deque()
        self._accepted: list[dict[str, Any]] = []
        self._reports: list[dict[str, Any]] = []
        self._requests: list[RecordedRequest] = []


    @property
    def endpoint(self) -> str:
        return self.url

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next requests (any action), in order; then requests succeed."""
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

    def add_report(self, phone: str, serial_no: str, session_context: str = "", *, at: float | None = None,
                   status: str = "SUCCESS", description: str = "DELIVRD") -> None:
        """A status report for a message sent some other way (e.g. long ago, or by another app)."""
        national = phone.removeprefix("+86")
        with self._lock:
            self._reports.append({
                "UserReceiveTime": int(at if at is not None else time.time()), "CountryCode": "86",
                "SubscriberNumber": national, "PhoneNumber": phone, "SerialNo": serial_no, "ReportStatus": status,
                "Description": description, "SessionContext": session_context})

    def _accept(self, body: dict[str, Any], phone: str) -> dict[str, Any]:
        serial = f"{secrets.randbelow(9000) + 1000}:{secrets.randbelow(10 ** 28):028d}"
        record: dict[str, Any] = {
            "SerialNo": serial, "PhoneNumber": phone, "SessionContext": body.get("SessionContext") or "",
            "TemplateId": body.get("TemplateId"), "TemplateParamSet": list(body.get("TemplateParamSet") or []),
            "SignName": body.get("SignName"), "at": time.time()}
        with self._lock:
            self._accepted.append(record)
        if self.report_on_accept:
            echo = str(record["SessionContext"]) if self.echo_session_context else ""
            self.add_report(phone, serial, echo)
        return record

    def _pull(self, body: dict[str, Any]) -> dict[str, Any]:
        begin, end = int(body.get("BeginTime") or 0), int(body.get("EndTime") or 2 ** 40)
        limit = min(int(body.get("Limit") or 100), 100)
        with self._lock:
            found = [dict(r) for r in self._reports if r["PhoneNumber"] == body.get("PhoneNumber")
                     and begin <= r["UserReceiveTime"] <= end][:limit]
        return {"PullSmsSendStatusSet": found}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeTencentSms
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        owner = self.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        action = self.headers.get("X-TC-Action", "")
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        auth = tc3.parse_authorization(self.headers.get("Authorization", ""))
        signature_ok = auth is not None and self._signed(auth, raw)
        with owner._lock:
            owner._requests.append(RecordedRequest(action, body if isinstance(body, dict) else {},
                                                   dict(self.headers), auth.secret_id if auth else None,
                                                   signature_ok, time.monotonic()))
        try:
            if owner.latency_seconds:
                time.sleep(owner.latency_seconds)
            self._handle(action, body if isinstance(body, dict) else {}, auth, signature_ok)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test): nothing to answer

    def _signed(self, auth: tc3.Authorization, raw: bytes) -> bool:
        timestamp = int(self.headers.get("X-TC-Timestamp") or 0)
        headers = {name.lower(): value for name, value in self.headers.items()}
        expected = tc3.signature(self.owner.secret_key, method="POST", uri="/", query="", headers=headers,
                                 signed_headers=auth.signed_headers, body=raw, timestamp=timestamp,
                                 service=auth.service)
        return secrets.compare_digest(expected, auth.signature)

    def _handle(self, action: str, body: dict[str, Any], auth: tc3.Authorization | None, signature_ok: bool) -> None:
        owner = self.owner
        if auth is None:
            return self._error("AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256")
        if auth.secret_id != owner.secret_id:
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        if abs(time.time() - int(self.headers.get("X-TC-Timestamp") or 0)) > MAX_SKEW_SECONDS:
            return self._error("AuthFailure.SignatureExpire", "Signature expired")
        if not signature_ok or auth.service != "sms":
            return self._error("AuthFailure.SignatureFailure", "The provided credentials could not be validated")
        if self.headers.get("X-TC-Version") != VERSION:
            return self._error("NoSuchVersion", "The API version does not exist")
        if action not in ("SendSms", "PullSmsSendStatusByPhoneNumber"):
            return self._error("InvalidAction", f"The action {action} does not exist")
        if body.get("SmsSdkAppId") != owner.sdk_app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist")
        phones = list(body.get("PhoneNumberSet") or []) if action == "SendSms" else []
        if action == "SendSms" and not phones:
            return self._error("MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty")
        if action == "SendSms" and not (body.get("TemplateId") and body.get("SignName")):
            return self._error("MissingParameter", "TemplateId and SignName are required")
        with owner._lock:
            outcome = owner._script.popleft() if owner._script else ok()
        records = [owner._accept(body, phone) for phone in phones] if outcome.accept else []
        if outcome.delay_seconds:
            time.sleep(outcome.delay_seconds)
        if outcome.kind == "http":
            return self._send(outcome.http_status, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        if outcome.kind == "garbled":
            return self._send(200, b"{not json", "application/json")
        if outcome.kind == "error":
            return self._error(outcome.code, outcome.message)
        if action == "PullSmsSendStatusByPhoneNumber":
            return self._result(owner._pull(body))
        statuses = [{"SerialNo": r["SerialNo"], "PhoneNumber": r["PhoneNumber"], "Fee": 1,
                     "SessionContext": r["SessionContext"], "Code": "Ok", "Message": "send success", "IsoCode": "CN"}
                    for r in records]
        if outcome.kind == "refused":
            statuses = [{"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": body.get("SessionContext"),
                         "Code": outcome.code, "Message": outcome.message, "IsoCode": "CN"} for phone in phones]
        self._result({"SendStatusSet": statuses})

    def _error(self, code: str, message: str) -> None:
        self._result({"Error": {"Code": code, "Message": message}})

    def _result(self, response: dict[str, Any]) -> None:
        payload = {"Response": {**response, "RequestId": str(uuid.uuid4())}}
        # Exactly "application/json": the SDK reads Response.Error only under that content type.
        self._send(200, json.dumps(payload, ensure_ascii=False).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


FakeTencentSms.handler = _Handler  # defined after the fake, which its handler reaches as `owner`
