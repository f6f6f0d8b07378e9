"""Delivery adapters behind one small interface, found by name."""

from notifiers.base import (
    Message,
    Notifier,
    NotifierConfigError,
    Reconciler,
    SendResult,
    SendStatus,
)
from notifiers.registry import available_notifiers, get_notifier

__all__ = [
    "Message",
    "Notifier",
    "NotifierConfigError",
    "Reconciler",
    "SendResult",
    "SendStatus",
    "available_notifiers",
    "get_notifier",
]
