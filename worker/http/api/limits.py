"""What every request passes before a handler: body size limits (enforced before the body is read
into memory), the control-character rule for paths and query strings, and the access log."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_plus

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.store.privacy import CONTROL_REASON, control_characters

access_log = structlog.get_logger("worker.http")


class BodySizeLimit:
    """413 for a body over the limit: uploads get `upload_bytes`, everything else `body_bytes`.

    Checks Content-Length up front and counts the bytes of a chunked body as they arrive.
    """

    def __init__(self, app: ASGIApp, body_bytes: int, upload_bytes: int, upload_paths: tuple[str, ...]) -> None:
        self.app, self.body_bytes, self.upload_bytes, self.upload_paths = app, body_bytes, upload_bytes, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope["path"] in self.upload_paths else self.body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, limit)
            return
        seen = 0
        responded = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not responded:
                await _too_large(send, limit)


class _BodyTooLarge(HTTPException):
    """Raised mid-read; the app's HTTPException handler turns it into the same JSON 413."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"errors": [{"row": None, "field": None,
                                   "message": f"request body too large (limit {limit} bytes)"}]}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RejectControlCharacters:
    """422 for a request whose path or query string holds a control character (NUL and the rest
    of C0): the same rule the roster applies to every cell, so a lookup by an id with a NUL in
    it is refused alike on SQLite and PostgreSQL instead of reaching the database. /web pages
    answer the same with their own error page (worker.http.web.render)."""

    def __init__(self, app: ASGIApp, skip_prefixes: tuple[str, ...] = ()) -> None:
        self.app, self.skip_prefixes = app, skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(self.skip_prefixes) and request_has_control(scope):
            body = json.dumps({"errors": [{"row": None, "field": None, "message": CONTROL_REASON}]}).encode()
            await send({"type": "http.response.start", "status": 422,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def request_has_control(scope: Scope) -> bool:
    query = unquote_plus(bytes(scope.get("query_string") or b"").decode("latin-1"))
    return control_characters(scope["path"]) or control_characters(query)


class AccessLog:
    """One log line per request, without the query string: search terms are personal data
    (`?q=13800138000`), and a URL is logged before any masking could know what it holds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            access_log.info("http.request", method=scope.get("method"), path=scope["path"], status=status,
                            ms=round((time.perf_counter() - started) * 1000, 1))
