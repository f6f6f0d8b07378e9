"""One-time links on the HR pages (invitations, password resets): their URL, and sending them."""

from __future__ import annotations

from datetime import datetime

from worker.ops.runtime import Runtime


def link_url(runtime: Runtime, path: str) -> str:
    """A one-time link on the HR pages: PERMIT_PUBLIC_URL, else `serve`'s default local address."""
    base = (runtime.settings.public_url or "http://127.0.0.1:8080").rstrip("/")
    return f"{base}{path}"


def send_link(runtime: Runtime, email: str, subject: str, body: str) -> bool:
    """Email the link when an email backend other than the console is configured."""
    if runtime.settings.email_backend == "console":
        return False
    from notifiers.base import Message

    notifier = runtime.notifiers().get("email")
    if notifier is None:
        return False
    result = notifier.send(Message(channel="email", to=email, subject=subject, body=body,
                                   idempotency_key=f"link-{datetime.now():%Y%m%d%H%M%S%f}"))
    return result.status.value == "sent"


def send_invitation(runtime: Runtime, email: str, team_name: str, role: str, url: str) -> bool:
    return send_link(runtime, email, f"【居住证提醒】{team_name}：设置您的登录密码 / set your password",
                     f"您已被邀请加入 {team_name} 的居住证提醒（角色：{role}）。"
                     f"请在 72 小时内打开以下链接设置密码：\n{url}\n\n"
                     f"You have been invited to {team_name}'s residence-permit reminders as {role}. "
                     f"Set your password within 72 hours:\n{url}\n")


def send_reset(runtime: Runtime, email: str, url: str) -> bool:
    return send_link(runtime, email, "【居住证提醒】重设密码 / reset your password",
                     f"请在 2 小时内打开以下链接重设密码：\n{url}\n\nReset your password within 2 hours:\n{url}\n")
