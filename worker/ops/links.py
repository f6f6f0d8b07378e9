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
