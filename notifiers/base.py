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
class Message:
    channel: str  # "sms" or "email"
    to: str  # E.164 phone or email address
    body: str
    subject: str | None = None
    locale: str = "zh-CN"
    # Stable per outbox row: adapters that support provider-side idempotency pass it along.
    idempotency_key: str = ""
    # After this moment the message is no longer worth delivering (the send window closes):
    # adapters that can, tell the provider to drop it instead of delivering it late.
    valid_until: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    error_code: str | None = None  # the provider's own code, e.g. Twilio's "21211"

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
    def ambiguous(cls, error: str) -> SendResult:
        return cls(SendStatus.AMBIGUOUS, error=error)


@runtime_checkable
class Notifier(Protocol):
    """One delivery adapter. `channels` lists what it can carry ("sms", "email")."""

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
