"""A small fake of Aliyun's dysmsapi (SendSms, QuerySendDetails) over real HTTP on 127.0.0.1.

The real `alibabacloud-dysmsapi20170525` SDK talks to it unchanged (endpoint "127.0.0.1:PORT",
protocol http), so tests exercise the SDK's own signing and error parsing. Every request's ACS3-HMAC-SHA256
signature is checked in full against the AccessKey the fake was built with: a wrong AccessKeyId gets
InvalidAccessKeyId.NotFound (404), a wrong secret SignatureDoesNotMatch (400), as Aliyun answers.
Each SendSms takes the next scripted outcome (default: OK), each QuerySendDetails the next query
outcome; `accepted` is what "Aliyun" took, whatever it answered.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from notifiers.aliyun.signing import check
from notifiers.local_fake import LocalFake

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one call. Build with ok(), code(), server_error(), slow()."""

    status: int = 200
    code: str = "OK"
    message: str = "OK"
    accept: bool = True  # SendSms: record the message as accepted (before any delay)
    delay_seconds: float = 0.0


def ok() -> Outcome:
    return Outcome()


def code(value: str, message: str = "", accept: bool = False) -> Outcome:
    """A 200 whose Code is not OK (dysmsapi answers business errors this way), or an isp error."""
    return Outcome(code=value, message=message or value, accept=accept)


def http_error(status: int, value: str, message: str = "") -> Outcome:
    return Outcome(status=status, code=value, message=message or value, accept=False)


def server_error(accept: bool = False, status: int = 503) -> Outcome:
    # accept=True is the ambiguous case: Aliyun took the message, then the answer failed.
    return Outcome(status=status, code="ServiceUnavailable", message="The request has failed due to a temporary "
                   "failure of the server.", accept=accept)


def slow(seconds: float, then: Outcome | None = None) -> Outcome:
    # Acceptance is recorded before sleeping: a client timeout here is "accepted but unanswered".
    return replace(then or ok(), delay_seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    action: str
    params: dict[str, str]  # the query string (the SDK sends every parameter there)
    headers: dict[str, str]  # lower-case names
    access_key_id: str  # from the Authorization header ("" if none)
    signature_valid: bool


class FakeAliyun(LocalFake):
    """`with FakeAliyun() as fake:` serves on a random free port until the block ends."""

    def __init__(self, access_key_id: str | None = None, access_key_secret: str | None = None) -> None:
        self.access_key_id = access_key_id or "LTAI" + secrets.token_hex(10)
        self.access_key_secret = access_key_secret or secrets.token_hex(15)
        self.latency_seconds = 0.0  # added before every answer
        self._lock = threading.Lock()
        self._send_script: deque[Outcome] = deque()
        self._query_script: deque[Outcome] = deque()
        self._accepted: list[dict[str, Any]] = []
        self._requests: list[RecordedRequest] = []


    @property
    def endpoint(self) -> str:
        """What PERMIT_ALIYUN_SMS_ENDPOINT takes to reach this fake."""
        return self.url

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next SendSms calls; once used up, they succeed."""
        with self._lock:
            self._send_script.extend(outcomes)

    def script_query(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next QuerySendDetails calls; once used up, they answer from `accepted`."""
        with self._lock:
            self._query_script.extend(outcomes)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._accepted]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def sends(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.action == "SendSms"]

    def add_accepted(self, phone: str, out_id: str, *, sent_at: datetime | None = None, status: int = 3,
                     err_code: str = "DELIVERED", template_code: str = "SMS_000000000") -> dict[str, Any]:
        """Pretend an earlier SendSms was accepted (e.g. yesterday, or by another process)."""
        params = {"PhoneNumbers": phone, "OutId": out_id, "TemplateCode": template_code, "SignName": "fake"}
        return self._accept(params, sent_at, status, err_code)

    def _accept(self, params: dict[str, str], sent_at: datetime | None = None, status: int = 3,
                err_code: str = "DELIVERED") -> dict[str, Any]:
        when = (sent_at or datetime.now(SHANGHAI)).astimezone(SHANGHAI)
        record = {
            "BizId": f"{secrets.randbelow(10**18):018d}^0", "PhoneNum": params.get("PhoneNumbers", ""),
            "OutId": params.get("OutId"), "TemplateCode": params.get("TemplateCode"),
            "SignName": params.get("SignName"), "TemplateParam": params.get("TemplateParam"),
            "Content": f"【{params.get('SignName', '')}】{params.get('TemplateParam', '')}",
            "SendDate": when.strftime("%Y-%m-%d %H:%M:%S"), "SendStatus": status, "ErrCode": err_code,
            "ReceiveDate": (when + timedelta(seconds=3)).strftime("%Y-%m-%d %H:%M:%S"),
        }
        with self._lock:
            self._accepted.append(record)
        return dict(record)

    def _details(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            size, page = int(params.get("PageSize", "")), int(params.get("CurrentPage", ""))
            day = datetime.strptime(params.get("SendDate", ""), "%Y%m%d").strftime("%Y-%m-%d")
        except ValueError:
            return {"Code": "isv.INVALID_PARAMETERS", "Message": "PageSize, CurrentPage, SendDate"}
        if not 1 <= size <= 50 or page < 1 or not params.get("PhoneNumber"):
            return {"Code": "isv.INVALID_PARAMETERS", "Message": "PageSize 1-50, CurrentPage >= 1, PhoneNumber"}
        with self._lock:
            found = [m for m in reversed(self._accepted) if m["PhoneNum"] == params["PhoneNumber"]
                     and m["SendDate"].startswith(day) and params.get("BizId") in (None, m["BizId"])]
        found.sort(key=lambda m: m["SendDate"], reverse=True)
        keys = ("Content", "ErrCode", "OutId", "PhoneNum", "ReceiveDate", "SendDate", "SendStatus", "TemplateCode")
        listed = [{k: m[k] for k in keys if m.get(k) is not None} for m in found[(page - 1) * size:page * size]]
        return {"Code": "OK", "Message": "OK", "TotalCount": str(len(found)),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": listed}}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAliyun
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = parse_qsl(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        action = headers.get("x-acs-action", "")
        checked = check("POST", split.path, query, headers, body, owner.access_key_secret)
        recorded = RecordedRequest(action, dict(query), headers, checked.access_key_id, checked.valid)
        with owner._lock:
            owner._requests.append(recorded)
        try:
            if owner.latency_seconds:
                time.sleep(owner.latency_seconds)
            if checked.access_key_id != owner.access_key_id:
                return self._send(404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key "
                                        "is not found."})
            if not checked.valid:
                return self._send(400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not "
                                        "matched with our calculation."})
            if action == "SendSms":
                return self._send_sms(recorded.params)
            if action == "QuerySendDetails":
                with owner._lock:
                    outcome = owner._query_script.popleft() if owner._query_script else None
                return self._answer(outcome, lambda: owner._details(recorded.params))
            self._send(404, {"Code": "InvalidAction.NotFound", "Message": f"Specified api is not found: {action}"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test): nothing to answer

    def _send_sms(self, params: dict[str, str]) -> None:
        # Aliyun's own validation comes first and never consumes a scripted outcome.
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return self._send(400, {"Code": "MissingParameter", "Message": f"{name} is mandatory"})
        if params.get("TemplateParam") is not None:
            try:
                values = json.loads(params["TemplateParam"])
            except ValueError:
                values = None
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                return self._send(200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法，只接受字符串值"})
        with self.owner._lock:
            outcome = self.owner._send_script.popleft() if self.owner._send_script else ok()
        record = self.owner._accept(params) if outcome.accept else None
        self._answer(outcome, lambda: {"Code": "OK", "Message": "OK", "BizId": record["BizId"]} if record else {})

    def _answer(self, outcome: Outcome | None, success: Any) -> None:
        if outcome is not None and outcome.delay_seconds:
            time.sleep(outcome.delay_seconds)
        if outcome is None or (outcome.status == 200 and outcome.code == "OK"):
            return self._send(200, success())
        self._send(outcome.status, {"Code": outcome.code, "Message": outcome.message})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        payload = {"RequestId": secrets.token_hex(16).upper(), **payload}
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


FakeAliyun.handler = _Handler  # defined after the fake, which its handler reaches as `owner`
