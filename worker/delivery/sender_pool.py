"""One dispatch run: a feeder (the calling thread) claims and prepares, a bounded pool of sender
threads talks to providers, and a recorder thread writes down what came back.

Only the feeder and the recorder touch the database, each in its own transactions; senders never
do, so no transaction is open while a provider is slow. Feeding and recording overlap: a wave's
results are written while the next wave is claimed, and the recorder takes everything that came
back since it last looked, so its batches grow by themselves when the database is the slow part.

Flow: at most `concurrency` sends are in flight, and up to twice as many rows more are claimed
and prepared ahead, so a freed sender gets its next message without waiting for the database.
A warm stop (`should_stop`, asked each time the feeder wakes) stops claiming and handing out
work: the sends in flight finish and are recorded, and the rows claimed ahead go back to
"pending" unsent.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from worker.delivery.deliveries import Delivery, Prepared

log = structlog.get_logger("worker.dispatch")

# Rows in hand (in flight plus claimed ahead) at most, in waves of `concurrency`. Claiming ahead
# keeps senders busy while the database is written; more only lengthens a warm stop's hand-back.
_AHEAD = 3
# The recorder waits this long for a fuller batch while sends are still in flight: fewer, larger
# transactions, at the price of rows staying "sending" a few milliseconds longer.
_GATHER_SECONDS = 0.02

# What a send comes back as: a Delivery to record, a Prepared never sent (release it), or None
# when the sender itself broke (leave it claimed: a reclaim after the lease will reconcile).
_Returned = Delivery | Prepared | None


class Steps(Protocol):
    """The dispatcher's steps this pool drives (worker/delivery/dispatch.py implements them)."""

    concurrency: int
    lease: timedelta

    def claim_and_prepare(self, now: datetime, n: int) -> tuple[int, list[Prepared | str]]: ...
    def deliver(self, prepared: Prepared) -> Delivery: ...
    def finish(self, deliveries: Sequence[Delivery]) -> list[str]: ...
    def release(self, rows: Sequence[Prepared]) -> int: ...


@dataclass(frozen=True)
class _Job:
    prepared: Prepared
    # After this (monotonic) the claim is too old to send on: with a slow rate ceiling a row can
    # wait long for its slot, and once its lease runs out another replica may reclaim and send
    # it. Half the lease leaves the other half for the send itself.
    send_by: float


class _Run:
    def __init__(self, dispatcher: Steps, now: datetime | None, limit: int,
                 should_stop: Callable[[], bool], clock: Callable[[], datetime]) -> None:
        self.d = dispatcher
        self.now = now
        self.limit = limit
        self.should_stop = should_stop
        self.clock = clock
        self.ready: deque[_Job] = deque()  # claimed and prepared, not yet handed out (feeder only)
        self.claimed = 0  # feeder only
        # Shared by the feeder, the senders and the recorder: guarded by `changed`, which is
        # notified whenever a send comes back or a batch is recorded.
        self.changed = threading.Condition()
        self.counts: Counter[str] = Counter()
        self.in_flight = 0
        self.returned: list[_Returned] = []  # back from senders, not yet taken by the recorder
        self.recording = False  # the recorder holds a batch
        self.recorded = 0  # batches recorded so far
        self.events = 0  # sends back plus batches recorded: what the feeder waits on
        self.closing = False  # no more sends will come back: the recorder drains and exits

    # -- the feeder ---------------------------------------------------------------------------
    def run(self) -> Counter[str]:
        width = self.d.concurrency
        drained_at: int | None = None  # `recorded` when a claim last found fewer rows than asked
        recorder = threading.Thread(target=self._record_loop, name="dispatch-record", daemon=True)
        recorder.start()
        with ThreadPoolExecutor(width, thread_name_prefix="dispatch-send") as pool:
            try:
                while not self.should_stop():
                    with self.changed:
                        seen, recorded = self.events, self.recorded
                    self._hand_out(pool)  # first: freed senders must not wait for the database
                    # Recording may have made rows due (an email fallback): after each recorded
                    # batch, a short claim does not mean the queue is drained.
                    if drained_at != recorded and len(self.ready) <= width and self.claimed < self.limit:
                        room = min(self.limit - self.claimed, _AHEAD * width - len(self.ready) - self._in_flight())
                        drained_at = recorded if self._claim(room) < room else None
                        self._hand_out(pool)
                    with self.changed:
                        idle = not (self.in_flight or self.returned or self.recording or self.ready)
                        if idle and (drained_at == self.recorded or self.claimed >= self.limit):
                            break  # nothing due (or the limit reached), nothing in hand
                        can_hand_out = bool(self.ready) and self.in_flight < width
                        can_claim = drained_at != self.recorded and len(self.ready) <= width \
                            and self.claimed < self.limit
                        if can_hand_out or can_claim:
                            continue  # something changed meanwhile: more to do at once
                        self._wait_for_news(seen)
            finally:
                # A warm stop, or an error: nothing we claimed may stay in "sending".
                self._cleanup()
                recorder.join()
        return self.counts

    def _wait_for_news(self, seen: int) -> None:
        """With `changed` held: sleep until a send comes back or a batch is recorded."""
        self.changed.wait_for(lambda: self.events != seen)

    def _in_flight(self) -> int:
        with self.changed:
            return self.in_flight

    def _claim(self, room: int) -> int:
        """Claim and prepare up to `room` rows; returns how many were claimed."""
        moment = self.now or self.clock()
        send_by = time.monotonic() + self.d.lease.total_seconds() / 2  # before the claim: a bound
        claimed, prepared = self.d.claim_and_prepare(moment, room)
        self.claimed += claimed
        for item in prepared:
            if isinstance(item, str):
                with self.changed:
                    self.counts[item] += 1  # cancelled, deferred, gone: handled without a send
            else:
                self.ready.append(_Job(item, send_by))
        return claimed

    def _hand_out(self, pool: ThreadPoolExecutor) -> None:
        """Fill the slots free now. Slots that free up meanwhile wait for the next wake, which
        asks `should_stop` first: a stop is never outrun by fast senders."""
        with self.changed:
            count = min(len(self.ready), self.d.concurrency - self.in_flight)
            self.in_flight += count
        for _ in range(count):
            pool.submit(self._send, self.ready.popleft())

    def _cleanup(self) -> None:
        try:
            self.d.release([job.prepared for job in self.ready])
            self.ready.clear()
        except Exception:  # the database is gone: the leases will hand these rows back
            log.exception("dispatch.release_failed")
        with self.changed:
            self.changed.wait_for(lambda: self.in_flight == 0)  # the messages in hand finish
            self.closing = True
            self.changed.notify_all()

    # -- a sender -----------------------------------------------------------------------------
    def _send(self, job: _Job) -> None:
        """On a sender thread. Always reports back, or the run would wait for it forever."""
        returned: _Returned = None
        try:
            if time.monotonic() >= job.send_by:
                returned = job.prepared
            else:
                returned = self.d.deliver(job.prepared)  # catches every Exception by contract
        finally:
            with self.changed:
                self.returned.append(returned)
                self.in_flight -= 1
                self.events += 1
                self.changed.notify_all()

    # -- the recorder -------------------------------------------------------------------------
    def _record_loop(self) -> None:
        batch_size = max(1, self.d.concurrency // 2)
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.returned or self.closing)
                # Gather a fuller batch while sends are still coming back.
                self.changed.wait_for(lambda: len(self.returned) >= batch_size or not self.in_flight
                                      or self.closing, timeout=_GATHER_SECONDS)
                if not self.returned:
                    return  # closing, and everything is recorded
                batch, self.returned = self.returned, []
                self.recording = True
            outcomes: list[str] = []
            try:
                outcomes = self._record(batch)
            except Exception:  # left "sending": a reclaim after the lease reconciles before resending
                log.exception("dispatch.record_failed", rows=len(batch))
            finally:
                with self.changed:
                    self.counts.update(outcomes)
                    self.recording = False
                    self.recorded += 1
                    self.events += 1
                    self.changed.notify_all()

    def _record(self, batch: list[_Returned]) -> list[str]:
        expired = [item for item in batch if isinstance(item, Prepared)]
        if expired:
            log.warning("dispatch.claim_too_old_to_send", rows=len(expired))
            self.d.release(expired)
        deliveries = [item for item in batch if isinstance(item, Delivery)]
        return self.d.finish(deliveries) if deliveries else []


def run_batch(dispatcher: Steps, *, now: datetime | None, limit: int, should_stop: Callable[[], bool],
              clock: Callable[[], datetime]) -> Counter[str]:
    return _Run(dispatcher, now, limit, should_stop, clock).run()
