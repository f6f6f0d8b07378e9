"""A small fake of the WeCom API over real HTTP on 127.0.0.1, for tests and benchmarks.

It serves gettoken (checks corpid and corpsecret, issues tokens that can be expired on demand to
provoke 42001), message/send (checks the token and the agentid, knows its members: an unknown
userid gets 81013 with `invaliduser`, as WeCom answers when every recipient is invalid) and the
group robot's webhook/send (by key; unknown key: 93000). It is strict where WeCom cuts silently
(over-long textcard fields are refused), so a test proves the notifier stays inside the limits,
and it applies WeCom's duplicate check. Each POST takes the next scripted outcome for its kind.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from notifiers.local_fake import LocalFake

Kind = Literal["message", "robot"]
_MAX_BYTES = {"title": 128, "description": 512, "content": 2048}


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one POST: build with ok(), errcode(), http_error(), slow(), dropped()."""

    errcode: int | None = None  # None: the normal behaviour (validate, deliver, errcode 0)
    errmsg: str = ""
    invaliduser: str = ""
    status: int = 200
    deliver: bool = False  # for errors: deliver anyway (the ambiguous case)
    delay_seconds: float = 0.0
    drop: bool = False  # close the connection without answering


def ok() -> Outcome:
    return Outcome()


def errcode(code: int, errmsg: str = "scripted", invaliduser: str = "") -> Outcome:
    return Outcome(errcode=code, errmsg=errmsg, invaliduser=invaliduser)


def http_error(status: int = 502, deliver: bool = False) -> Outcome:
    return Outcome(errcode=-1, status=status, deliver=deliver)


def slow(seconds: float, then: Outcome | None = None) -> Outcome:
    # Delivery is recorded before sleeping, so a client timeout here is "delivered but unanswered".
    return replace(then or ok(), delay_seconds=seconds)


def dropped() -> Outcome:
    return Outcome(drop=True, deliver=True)


def unused_base_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed on return: nobody listens


class FakeWeCom(LocalFake):
    """`with FakeWeCom(users={"zhangsan"}) as fake:` serves on a random free port until the block ends."""

    def __init__(self, users: set[str] | None = None, agent_id: int = 1000002, expires_in: int = 7200) -> None:
        self.corp_id = "ww" + secrets.token_hex(8)
        self.secret = secrets.token_urlsafe(32)
        self.agent_id = agent_id
        self.expires_in = expires_in
        self.users = set(users or {"zhangsan"})
        self.latency_seconds = 0.0  # added before every answer (a benchmark's provider latency)
        self.robot_keys: set[str] = set()
        self._lock = threading.Lock()
        self._tokens: dict[str, bool] = {}  # token -> still valid
        self._scripts: dict[Kind, deque[Outcome]] = {"message": deque(), "robot": deque()}
        self._seen: dict[str, float] = {}  # request JSON -> when WeCom took it (duplicate check)
        self.gettoken_calls = 0
        self.requests: list[dict[str, Any]] = []  # each POST body, plus "_path", "_query", "_raw"
        self.delivered: list[dict[str, Any]] = []  # what members and groups actually received


    @property
    def base_url(self) -> str:
        return self.url

    def script(self, *outcomes: Outcome, kind: Kind = "message") -> None:
        """Queue outcomes for the next POSTs of that kind, in order; once used up, POSTs succeed."""
        with self._lock:
            self._scripts[kind].extend(outcomes)

    def expire_tokens(self) -> None:
        """Every token issued so far now gets 42001 (access_token expired)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, False)

    def add_robot(self) -> str:
        key = secrets.token_hex(4) + "-" + secrets.token_hex(2) + "-" + secrets.token_hex(6)
        with self._lock:
            self.robot_keys.add(key)
        return f"{self.base_url}/cgi-bin/webhook/send?key={key}"

    # -- the API -------------------------------------------------------------------------------
    def _gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.gettoken_calls += 1
            if query.get("corpid") != self.corp_id:
                return {"errcode": 40013, "errmsg": "invalid corpid"}
            if query.get("corpsecret") != self.secret:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            token = secrets.token_urlsafe(48)
            self._tokens[token] = True
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.expires_in}

    def _check_message(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        """WeCom's own checks, before any scripted outcome: an answer to give, or None to go on."""
        with self._lock:
            valid = self._tokens.get(query.get("access_token", ""))
        if valid is None:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if not valid:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if body.get("agentid") != self.agent_id:
            return {"errcode": 301002, "errmsg": "not allow operate another agent with this accesstoken"}
        card = body.get(body.get("msgtype", ""), {})
        for name, limit in _MAX_BYTES.items():
            if len(str(card.get(name, "")).encode()) > limit:
                return {"errcode": 40058, "errmsg": f"{name} exceed max length {limit}"}
        if body.get("touser") not in self.users:
            return {"errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": body.get("touser")}
        return None

    def _check_robot(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        if query.get("key") not in self.robot_keys:
            return {"errcode": 93000, "errmsg": "invalid webhook url"}
        if len(str(body.get("markdown", {}).get("content", "")).encode()) > 4096:
            return {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        return None

    def _deliver(self, raw: bytes, body: dict[str, Any]) -> None:
        with self._lock:
            now = time.monotonic()
            key = raw.decode()
            interval = body.get("duplicate_check_interval", 1800) if body.get("enable_duplicate_check") else 0
            if key in self._seen and now - self._seen[key] < interval:
                return  # WeCom's duplicate check: the same request JSON is not delivered twice
            self._seen[key] = now
            self.delivered.append(body)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeWeCom
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        if split.path == "/cgi-bin/gettoken":
            self._send_json(200, self.owner._gettoken(query))
        else:
            self._send_json(404, {"errcode": 404, "errmsg": "not found"})

    def do_POST(self) -> None:
        owner = self.owner
        if owner.latency_seconds:
            time.sleep(owner.latency_seconds)
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kinds: dict[str, Kind] = {"/cgi-bin/message/send": "message", "/cgi-bin/webhook/send": "robot"}
        kind = kinds.get(split.path)
        if kind is None:
            return self._send_json(404, {"errcode": 404, "errmsg": "not found"})
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            return self._send_json(200, {"errcode": 40058, "errmsg": "invalid json"})
        with owner._lock:
            owner.requests.append({**body, "_path": split.path, "_query": query, "_raw": raw.decode("utf-8")})
        check = owner._check_message if kind == "message" else owner._check_robot
        answer = check(query, body)
        if answer is not None:
            return self._send_json(200, answer)
        with owner._lock:
            outcome = owner._scripts[kind].popleft() if owner._scripts[kind] else ok()
        if outcome.errcode is None or outcome.deliver:
            owner._deliver(raw, body)
        if outcome.delay_seconds:
            time.sleep(outcome.delay_seconds)
        if outcome.drop:
            self.close_connection = True
            return
        if outcome.errcode is None:
            answer = {"errcode": 0, "errmsg": "ok"}
            if kind == "message":
                answer.update(invaliduser="", msgid=secrets.token_urlsafe(24))
            return self._send_json(200, answer)
        answer = {"errcode": outcome.errcode, "errmsg": outcome.errmsg, "invaliduser": outcome.invaliduser}
        self._send_json(outcome.status, answer)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)


FakeWeCom.handler = _Handler  # defined after the fake, which its handler reaches as `owner`
