"""Every status the registry stores or the dispatcher reports, named once.

StrEnums: each member is its string, so rows, JSON and log lines read exactly as before, and a
typo is an AttributeError instead of a row no query ever finds again.
"""

from __future__ import annotations

from enum import StrEnum


class NoteStatus(StrEnum):
    """notifications.status: one outbox row's life."""

    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by claimed_by until claimed_until
    SENT = "sent"  # the provider accepted it (delivery_status says what the carrier did next)
    FAILED = "failed"  # given up: permanent, or out of attempts (a fallback may follow)
    CANCELLED = "cancelled"  # no longer right to send: renewed, stage left, superseded, opted out


class ScanRunStatus(StrEnum):
    """scan_runs.status: one day's scan."""

    RUNNING = "running"
    FINISHED = "finished"


class ScanSliceStatus(StrEnum):
    """scan_slices.status: one share of a day's scan."""

    PENDING = "pending"
    DONE = "done"


class DigestStatus(StrEnum):
    """digest_runs.status: one team's HR digest for one day."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Outcome(StrEnum):
    """What handling one claimed row came to: the dispatcher's counts and its log lines."""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEFERRED = "deferred"  # quiet hours: back to pending until the window opens
    GONE = "gone"  # deleted while claimed
    CLAIM_LOST = "claim_lost"  # another replica reclaimed it after our lease ran out
    ERROR = "error"  # an exception outside the notifier's contract
