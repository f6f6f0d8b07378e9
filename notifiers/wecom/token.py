"""The app's access_token: fetched from /cgi-bin/gettoken, cached, refreshed one at a time.

WeCom asks callers to cache the token (valid `expires_in`, 7200 s) instead of fetching it per
call: gettoken is itself rate limited, and repeated wrong secrets get the caller's IP blocked for
an hour (45009's 排查方法 in the error-code table). Hence:

* one lock: a single thread fetches while the others wait for its result;
* the token is replaced a little before it expires (REFRESH_MARGIN, at most a tenth of its life);
* `invalidate(token)` (after 42001/40014/40001 on a send) drops that token only if it is still the
  current one, so twenty threads refused at once cause one fetch, not twenty;
* a failed fetch is remembered for a while (FAILURE_HOLD_SECONDS, or the rate limit's own wait)
  and answered from memory, so a wrong secret is not retried by every queued message.

Neither the secret nor a token ever appears in an error (they are in gettoken's URL and every
send's URL; see wire.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import quote

import requests

from notifiers.base import SendResult, SendStatus
from notifiers.wecom import codes, wire

REFRESH_MARGIN = 300.0
FAILURE_HOLD_SECONDS = 60.0
SERVICE = "WeCom gettoken"


class TokenUnavailable(Exception):
    """No token could be had; `result` is the TRANSIENT SendResult to report."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.error)
        self.result = result


class AccessTokens:
    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        corp_id: str,
        secret: str,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = f"{base_url}/cgi-bin/gettoken"
        self._corp_id = corp_id
        self._secret = secret
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._failure: SendResult | None = None
        self._failure_until = 0.0

    def get(self) -> str:
        """A token believed valid; raises TokenUnavailable (with a TRANSIENT result) otherwise."""
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token
            if self._failure is not None and now < self._failure_until:
                raise TokenUnavailable(self._failure)
            return self._fetch(now)

    def invalidate(self, token: str) -> None:
        """WeCom refused `token`: forget it, unless another thread has already replaced it."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._failure = None  # a fresh fetch is wanted now

    def _fetch(self, now: float) -> str:
        url = f"{self._url}?corpid={quote(self._corp_id, safe='')}&corpsecret={quote(self._secret, safe='')}"
        try:
            response = self._session.get(url, timeout=(self._timeout, self._timeout))
            answer = wire.read_answer(response, SERVICE, side_effect=False)
        except Exception as exc:  # classified: a token fetch never raises anything else
            answer = wire.request_failure(exc, SERVICE, self._timeout, side_effect=False)
        if isinstance(answer, dict) and answer["errcode"] == 0:
            token = answer.get("access_token")
            expires_in = answer.get("expires_in")
            if isinstance(token, str) and token and isinstance(expires_in, int) and expires_in > 0:
                self._token = token
                self._refresh_at = now + expires_in - min(REFRESH_MARGIN, expires_in / 10)
                self._failure = None
                return token
            answer = SendResult.transient(f"{SERVICE} answered errcode 0 without a usable access_token")
        result = self._refused(answer["errcode"], answer.get("errmsg")) if isinstance(answer, dict) else answer
        self._failure = result
        self._failure_until = now + (result.retry_after_seconds or FAILURE_HOLD_SECONDS)
        raise TokenUnavailable(result)

    def _refused(self, errcode: int, errmsg: object) -> SendResult:
        code = codes.lookup(errcode)
        if code is not None and code.verdict in (codes.Verdict.RATE_LIMITED, codes.Verdict.BUSY, codes.Verdict.CONFIG):
            return codes.result_for(errcode, errmsg, SERVICE)
        # Anything else from gettoken (40001 above all) is about our credentials: TRANSIENT, with
        # the variables to check.
        check = code.check if code is not None and code.check else "PERMIT_WECOM_CORP_ID/PERMIT_WECOM_SECRET"
        meaning = code.meaning if code is not None else "refused"
        detail = codes.short_errmsg(errmsg)
        return SendResult(SendStatus.TRANSIENT, error_code=str(errcode),
                          error=f"configuration problem: {SERVICE} {errcode}: {meaning}: {detail}: check {check}")
