"""WeCom's error codes (全局错误码) and what each one means for the dispatcher.

WeCom answers HTTP 200 with `{"errcode": N, "errmsg": "..."}` for almost everything, so the
errcode, not the HTTP status, is the verdict. The table below is the one place that decides;
`result_for` turns a code into a SendResult. Meanings are from the official table at
https://developer.work.weixin.qq.com/document/path/90313 (全局错误码), the frequency notes from
https://developer.work.weixin.qq.com/document/path/90236 (发送应用消息) and, for 93xxx, the group
robot page https://developer.work.weixin.qq.com/document/path/91770 (群机器人配置说明).

Verdicts:
* REFRESH: the access token was refused; fetch a new one and send once more (the request was
  rejected, so nothing was delivered). A second refusal is reported as CONFIG.
* PERMANENT: this message or this recipient can never succeed (unknown or invisible member,
  removed robot, content WeCom refuses).
* RATE_LIMITED / BUSY: nothing was delivered; try again later.
* CONFIG: our own settings are wrong (corp id, secret, agent id, trusted IP, permissions): TRANSIENT,
  so a bad setting delays messages instead of burning every outbox row, with the variable to check.

A code missing from the table is PERMANENT: WeCom answered and refused this request, and a
refused request does not get better by repeating it (the core falls back to the next channel).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from notifiers.base import SendResult, SendStatus


class Verdict(enum.Enum):
    REFRESH = "refresh"
    PERMANENT = "permanent"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    CONFIG = "config"


@dataclass(frozen=True)
class Code:
    verdict: Verdict
    meaning: str  # the official 错误说明, in English and Chinese
    check: str = ""  # for CONFIG: what the operator should look at
    retry_after: float | None = None  # seconds, when the docs say how long a block lasts


# errcode -> Code. Frequency blocks "last as long as the limit's own period" (45009 in the
# table's 排查方法): the per-minute limits are the ones a sender hits, hence 60 s.
CODES: dict[int, Code] = {
    -1: Code(Verdict.BUSY, "system busy (系统繁忙)"),
    40001: Code(Verdict.REFRESH, "invalid secret / credential (不合法的secret参数)", "PERMIT_WECOM_SECRET"),
    40003: Code(Verdict.PERMANENT, "invalid UserID (无效的UserID)"),
    40008: Code(Verdict.PERMANENT, "invalid msgtype (不合法的msgtype参数)"),
    40013: Code(Verdict.CONFIG, "invalid CorpID (不合法的CorpID)", "PERMIT_WECOM_CORP_ID"),
    40014: Code(Verdict.REFRESH, "invalid access_token (不合法的access_token)"),
    40056: Code(Verdict.CONFIG, "invalid agentid (不合法的agentid)", "PERMIT_WECOM_AGENT_ID"),
    40058: Code(Verdict.PERMANENT, "invalid parameter (不合法的参数)"),
    41033: Code(Verdict.PERMANENT, "description missing (缺少 description 参数)"),
    42001: Code(Verdict.REFRESH, "access_token expired (access_token已过期)"),
    44004: Code(Verdict.PERMANENT, "text content empty (文本消息content参数为空)"),
    45002: Code(Verdict.PERMANENT, "content too large (消息内容大小超过限制)"),
    45009: Code(Verdict.RATE_LIMITED, "API frequency limit (接口调用超过限制)", retry_after=60.0),
    45033: Code(Verdict.RATE_LIMITED, "API concurrency limit (接口并发调用超过限制)", retry_after=5.0),
    48002: Code(Verdict.CONFIG, "API forbidden for this app (API接口无权限调用)",
                "the app's permissions in the WeCom admin console"),
    60011: Code(Verdict.PERMANENT, "member not visible to the app (指定的成员/部门/标签参数无权限)"),
    60020: Code(Verdict.CONFIG, "caller IP not trusted (不安全的访问IP)",
                "the app's 企业可信IP list in the WeCom admin console"),
    60111: Code(Verdict.PERMANENT, "UserID not found (UserID不存在)"),
    81013: Code(Verdict.PERMANENT, "all recipients invalid or outside the app's visible range "
                                   "(UserID、部门ID、标签ID全部非法或无权限)"),
    82001: Code(Verdict.PERMANENT, "no recipient given (指定的成员/部门/标签全部为空)"),
    93000: Code(Verdict.PERMANENT, "robot webhook URL invalid or robot removed from the group "
                                   "(机器人webhookurl不合法或者机器人已经被移除出群)"),
    93004: Code(Verdict.PERMANENT, "robot disabled (机器人被停用)"),
    301002: Code(Verdict.CONFIG, "token not valid for this app (无权限操作指定的应用)",
                 "PERMIT_WECOM_AGENT_ID and PERMIT_WECOM_SECRET (they must be the same app's)"),
}


def lookup(errcode: int) -> Code | None:
    return CODES.get(errcode)


def short_errmsg(errmsg: object) -> str:
    """WeCom's errmsg without its trailing ", hint: [...], from ip: ..., more info at ..." part."""
    text = str(errmsg or "").strip()
    return text.split(", hint:")[0].split(" hint:")[0].strip()[:200]


def result_for(errcode: int, errmsg: object, service: str = "wecom") -> SendResult:
    """The SendResult for a non-zero errcode (REFRESH here means: a fresh token was refused too)."""
    code = lookup(errcode)
    detail = short_errmsg(errmsg)
    meaning = code.meaning if code else "unlisted error code"
    text = f"{service} {errcode}: {meaning}" + (f": {detail}" if detail else "")
    if code is None or code.verdict is Verdict.PERMANENT:
        return SendResult.permanent(text, error_code=str(errcode))
    if code.verdict is Verdict.RATE_LIMITED:
        return SendResult(SendStatus.TRANSIENT, error=f"{text}: rate limited",
                          retry_after_seconds=code.retry_after, error_code=str(errcode))
    if code.verdict is Verdict.BUSY:
        return SendResult(SendStatus.TRANSIENT, error=f"{text}: nothing was delivered, try again later",
                          error_code=str(errcode))
    check = code.check or "PERMIT_WECOM_CORP_ID/PERMIT_WECOM_SECRET"
    return SendResult(SendStatus.TRANSIENT, error=f"configuration problem: {text}: check {check}",
                      error_code=str(errcode))
