"""Request body size limits, enforced before the body is read into memory."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
