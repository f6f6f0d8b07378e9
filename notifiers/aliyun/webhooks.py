"""Aliyun's HTTP batch pushes: SmsReport (delivery receipts) and SmsUp (holders' replies).

Aliyun does not sign its pushes, so the URL configured in the SMS console carries a secret:
`?token=` must equal PERMIT_ALIYUN_CALLBACK_TOKEN (compared in constant time). Without that variable
every request gets 403; a wrong or missing token gets 403 and changes nothing; a body that is not
the documented JSON gets 400 and nothing of it is applied. Aliyun retries a push until it is
answered with {"code": 0, ...}, so success (duplicates and unknown messages included: the core
dedupes and ignores them) always gets exactly that answer.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from notifiers.aliyun.receipts import PushError, items, receipt_from, reply_from
from notifiers.base import InboundSink, Receipt, Reply, sms_backend_selected

log = structlog.get_logger("worker.webhooks")

REPORT_PATH = "/webhooks/aliyun/report"
REPLY_PATH = "/webhooks/aliyun/reply"
TOKEN_VARIABLE = "PERMIT_ALIYUN_CALLBACK_TOKEN"
ACCEPTED = {"code": 0, "msg": "成功"}

T = TypeVar("T", Receipt, Reply)


def _json(status: int, payload: Mapping[str, Any]) -> Response:
    return Response(status_code=status, content=json.dumps(payload, ensure_ascii=False),
                    media_type="application/json; charset=utf-8")


def webhook_router(sink: InboundSink, env: Mapping[str, str], public_url: str | None) -> APIRouter:
    """The routes Aliyun pushes to. `env` holds PERMIT_ALIYUN_CALLBACK_TOKEN; `public_url` is not
    needed (the token, not the URL, authenticates)."""
    del public_url
    router = APIRouter()
    token = (env.get(TOKEN_VARIABLE) or "").strip() or None
    if token is None and sms_backend_selected(env, "aliyun"):
        log.warning("webhook.disabled", reason=f"{TOKEN_VARIABLE} is not set: every Aliyun push gets 403")

    def authorized(request: Request) -> bool:
        given = request.query_params.get("token") or ""
        return token is not None and hmac.compare_digest(given.encode(), token.encode())

    async def parsed(request: Request, what: str, parse: Callable[[Mapping[str, Any]], T]) -> list[T] | Response:
        if not authorized(request):
            log.warning("webhook.rejected", reason=f"aliyun {what} token")
            return _json(403, {"error": "invalid or missing token"})
        try:
            return [parse(item) for item in items(json.loads(await request.body()))]
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and PushError are ValueErrors
            reason = str(exc) if isinstance(exc, PushError) else "body is not JSON"
            log.warning("webhook.bad_request", provider="aliyun", what=what, reason=reason)
            return _json(400, {"error": reason})

    def apply_all(handle: Callable[[T], str], batch: Sequence[T]) -> list[str]:
        return [handle(item) for item in batch]

    @router.post(REPORT_PATH, include_in_schema=False)
    async def sms_report(request: Request) -> Response:
        batch = await parsed(request, "report", receipt_from)
        if isinstance(batch, Response):
            return batch
        outcomes = await run_in_threadpool(apply_all, sink.receipt, batch)
        for receipt, outcome in zip(batch, outcomes, strict=True):
            log.info("webhook.status", provider="aliyun", message_id=receipt.message_id, status=receipt.status,
                     error_code=receipt.error_code, outcome=outcome)
        return _json(200, ACCEPTED)

    @router.post(REPLY_PATH, include_in_schema=False)
    async def sms_up(request: Request) -> Response:
        batch = await parsed(request, "reply", reply_from)
        if isinstance(batch, Response):
            return batch
        outcomes = await run_in_threadpool(apply_all, sink.reply, batch)
        for reply, outcome in zip(batch, outcomes, strict=True):
            log.info("webhook.inbound", provider="aliyun", message_id=reply.message_id, outcome=outcome)
        return _json(200, ACCEPTED)

    return router
