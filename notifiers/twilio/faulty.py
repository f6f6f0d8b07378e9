"""FakeTwilio for fault-injection tests: a deep listen backlog, and outages by the clock.

`FakeTwilio` answers POSTs from a count-based script; an outage "for a while" is easier to state
in seconds: `outage(20, server_error(), rate_limited(1))` answers every POST in the next 20 s with
those outcomes in turn, then recovers. GETs (the dispatcher's reconciliation lookups) keep
working during an outage, as Twilio's read API usually does when its write path is struggling.

The listen backlog is raised from socketserver's 5 so that dozens of sender threads from several
replica processes connecting at once are not reset by the kernel: these tests are about the
worker's faults and the provider's scripted ones, not about a toy server's accept queue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from itertools import cycle

from notifiers.twilio.fake import FakeTwilio, Outcome


class _Server(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True


class _TimedScript:
    """Stands in for FakeTwilio's deque of scripted outcomes (only used under its lock)."""

    def __init__(self) -> None:
        self.queued: deque[Outcome] = deque()
        self.until = 0.0
        self._outcomes: cycle[Outcome] | None = None

    def start_outage(self, seconds: float, outcomes: tuple[Outcome, ...]) -> None:
        self._outcomes = cycle(outcomes)
        self.until = time.monotonic() + seconds

    def in_outage(self) -> bool:
        return self._outcomes is not None and time.monotonic() < self.until

    def __bool__(self) -> bool:
        return self.in_outage() or bool(self.queued)

    def popleft(self) -> Outcome:
        if self.in_outage():
            assert self._outcomes is not None
            return next(self._outcomes)
        return self.queued.popleft()

    def extend(self, outcomes: Iterable[Outcome]) -> None:
        self.queued.extend(outcomes)


class FaultyTwilio(FakeTwilio):
    server_class = _Server  # a longer accept queue: the fault tests connect in bursts

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        super().__init__(account_sid, auth_token)
        self._timed = _TimedScript()
        self._script = self._timed  # type: ignore[assignment]

    def outage(self, seconds: float, *outcomes: Outcome) -> None:
        """Answer every POST for the next `seconds` with `outcomes`, in turn; then recover."""
        with self._lock:
            self._timed.start_outage(seconds, outcomes)

    @property
    def in_outage(self) -> bool:
        with self._lock:
            return self._timed.in_outage()

    def accepted_pairs(self) -> list[tuple[str, str]]:
        """(To, Body) of every message accepted, duplicates kept."""
        return [(m["to"], m["body"]) for m in self.accepted]
