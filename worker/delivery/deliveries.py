"""What moves between the dispatcher's steps: a claimed row ready to send, and what its send
came to. Plain values, so the sender pool and the recorder need nothing else of each other."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from notifiers.base import Message, SendResult, SendStatus
from worker.delivery.claims import RenderStamp
from worker.store.privacy import mask_text


@dataclass(frozen=True)
class Prepared:
    """A claimed row ready to go: the message, plus what reconciliation needs."""

    row_id: int
    message: Message
    reconcile_message: Message | None  # the earlier, ambiguous attempt's message
    reconcile_since: datetime | None
    now: datetime  # the dispatch moment it was claimed at: retries are scheduled from it
    rendered: RenderStamp  # this text's day and segments, written before the send
    unsent: RenderStamp  # what that overwrote: restored if the row goes back unsent


RECONCILED = "reconciled: an earlier attempt was accepted"


@dataclass(frozen=True)
class Delivery:
    """What one send (or reconciliation) came to, waiting to be recorded by the claimant."""

    row_id: int
    now: datetime  # the dispatch moment the row was claimed at: retries are scheduled from it
    result: SendResult
    notifier: str
    started: datetime
    reconciled: bool = False
    unexpected: bool = False  # an exception outside the notifier's contract: outcome "error"
    # Nothing was sent (a reconcile that could not tell): put back what preparing stamped, so the
    # next reconcile still looks for the text of the attempt really made.
    restore: RenderStamp | None = None

    @property
    def error(self) -> str | None:
        """The provider's error as stored: masked, since providers quote the recipient
        ("The 'To' number +8613800138000 is not a valid phone number")."""
        if self.reconciled and self.result.status is SendStatus.SENT:
            return RECONCILED
        return mask_text(self.result.error) if self.result.error else None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Exponential backoff with jitter; a provider's Retry-After is a floor."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return max(backoff * rng.uniform(0.8, 1.2), retry_after or 0.0)
