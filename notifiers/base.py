"""The notifier interface: send one message, say how it went.

A notifier never raises for a delivery problem; it returns a SendResult whose status tells the
dispatcher whether to stop (sent), retry later (transient) or give up (permanent).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class SendStatus(str, enum.Enum):
    SENT = "sent"
    TRANSIENT = "transient"  # nothing was accepted; try again later (429, connection refused, DNS)
    PERMANENT = "permanent"  # retrying cannot help: invalid number, opted out, rejected address
    # The request left and the answer was lost (timeout, 5xx): the provider may have accepted
    # it. Never resend blindly: reconcile first (see Reconciler).
    AMBIGUOUS = "ambiguous"


class NotifierConfigError(ValueError):
    """A notifier cannot be built from the given settings (raised at start-up, not at send)."""


@dataclass(frozen=True)
class SmsTemplate:
    """The approved SMS template a message was rendered from (schedules/sms_templates.py).

    Providers that send by template (Aliyun, Tencent) send `ids[their name]` with `params`; the
    others send the message's `body`, which is the same approved text filled in, so a console
    preview is exactly what the holder reads.
    """

    kind: str  # e.g. "renew_in_person.closed": which approved template
    ids: Mapping[str, str]  # provider name -> its template code / id ("SMS_123456789", "1234567")
    params: tuple[tuple[str, str], ...]  # (name, value) in the template's order (Tencent's is positional)
    text: str = ""  # the approved text, with ${name} parameters, without the signature

    @property
    def param_map(self) -> dict[str, str]:
        return dict(self.params)


@dataclass(frozen=True)
class Message:
    channel: str  # "sms", "email", "wecom" (a WeCom member) or "wecom_group" (a group robot)
    to: str  # E.164 phone, email address, WeCom userid, or a group robot's webhook URL
    body: str
    subject: str | None = None
    locale: str = "zh-CN"
    # Stable per outbox row: adapters that support provider-side idempotency pass it along.
    idempotency_key: str = ""
    # After this moment the message is no longer worth delivering (the send window closes):
    # adapters that can, tell the provider to drop it instead of delivering it late.
    valid_until: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # SMS only: the approved template `body` was rendered from (None for email and WeCom).
    template: SmsTemplate | None = None


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    error_code: str | None = None  # the provider's own code, e.g. Twilio's "21211"
    # PERMANENT because the person unsubscribed (Twilio 21610, Tencent PhoneNumberInBlacklist):
    # the core records the opt-out, so no SMS is planned for them again, and falls back.
    opted_out: bool = False

    @classmethod
    def sent(cls, provider_message_id: str | None = None) -> SendResult:
        return cls(SendStatus.SENT, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error: str, retry_after_seconds: float | None = None) -> SendResult:
        return cls(SendStatus.TRANSIENT, error=error, retry_after_seconds=retry_after_seconds)

    @classmethod
    def permanent(cls, error: str, error_code: str | None = None) -> SendResult:
        return cls(SendStatus.PERMANENT, error=error, error_code=error_code)

    @classmethod
    def unsubscribed(cls, error: str, error_code: str | None = None) -> SendResult:
        return cls(SendStatus.PERMANENT, error=error, error_code=error_code, opted_out=True)

    @classmethod
    def ambiguous(cls, error: str) -> SendResult:
        return cls(SendStatus.AMBIGUOUS, error=error)


@runtime_checkable
class Notifier(Protocol):
    """One delivery adapter. `channels` lists what it can carry ("sms", "email", "wecom").

    An SMS adapter that sends under a filed signature (签名) also has `sign_name`: the rendered
    body then starts with 【sign_name】, exactly as the provider will prepend it."""

    name: str
    channels: frozenset[str]

    def send(self, message: Message) -> SendResult: ...


@runtime_checkable
class Reconciler(Protocol):
    """Optional: a notifier that can look up what the provider accepted.

    After an AMBIGUOUS result the dispatcher calls `reconcile` before any new send: a SENT
    result (with the provider's id) means the earlier request did go through, so nothing is
    sent again; None means no such message exists and a retry is safe; TRANSIENT means the
    lookup itself failed, so neither resend nor give up yet.
    """

    def reconcile(self, message: Message, since: datetime) -> SendResult | None: ...


@dataclass(frozen=True)
class Receipt:
    """A provider's delivery receipt, in the core's terms. The provider's module parses its own
    format and knows what its codes mean; the core only orders, records and acts on them."""

    provider: str
    message_id: str  # the provider's id for the message, as the send returned it
    status: str  # the provider's status word, lower case ("delivered", "undelivered")
    error_code: str | None
    # The provider's order of its statuses: a late "sent" must not overwrite "delivered".
    order: Mapping[str, int]
    undelivered: bool  # the carrier says the message did not arrive
    permanent: bool  # ... and retrying cannot change that (unknown number, filtered as spam)
    opted_out: bool = False  # ... because the person blocked or unsubscribed (recorded as an opt-out)
    # The Message.idempotency_key the provider echoed (Aliyun's OutId): finds the message when the
    # send's own id is unknown (a send found by reconciling, whose lookup gives no id).
    idempotency_key: str | None = None

    def rank(self, status: str | None) -> int:
        return self.order.get(status or "", -1)


@dataclass(frozen=True)
class Reply:
    """A holder's SMS reply as a provider delivered it."""

    provider: str
    from_number: str  # E.164
    body: str
    message_id: str | None  # the provider's id: a replayed copy carries the same one


class InboundSink(Protocol):
    """What a provider's webhook hands its parsed messages to; each returns what it came to."""

    def receipt(self, receipt: Receipt) -> str: ...

    def reply(self, reply: Reply) -> str: ...


def sms_backend_selected(env: Mapping[str, str], name: str) -> bool:
    """Whether the settings' environment selects provider `name` for SMS: a provider's webhooks
    say they are disabled only then, not on every worker that uses another backend."""
    return (env.get("PERMIT_SMS_BACKEND") or "").strip().lower() == name
