"""The notifier interface: send one message, say how it went.

A notifier never raises for a delivery problem; it returns a SendResult whose status tells the
dispatcher whether to stop (sent), retry later (transient) or give up (permanent).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class SendStatus(str, enum.Enum):
    SENT = "sent"
    TRANSIENT = "transient"  # try again later: timeouts, rate limits, provider hiccups
    PERMANENT = "permanent"  # retrying cannot help: invalid number, rejected address


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
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None

    @classmethod
    def sent(cls, provider_message_id: str | None = None) -> SendResult:
        return cls(SendStatus.SENT, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error: str, retry_after_seconds: float | None = None) -> SendResult:
        return cls(SendStatus.TRANSIENT, error=error, retry_after_seconds=retry_after_seconds)

    @classmethod
    def permanent(cls, error: str) -> SendResult:
        return cls(SendStatus.PERMANENT, error=error)


@runtime_checkable
class Notifier(Protocol):
    """One delivery adapter. `channels` lists what it can carry ("sms", "email")."""

    name: str
    channels: frozenset[str]

    def send(self, message: Message) -> SendResult: ...
