"""A rate ceiling: at most `rate` sends per second per backend.

The dispatcher asks before every send; waiting happens here, so the ceiling holds however fast
the provider answers. The clock and sleep are injectable so the arithmetic is testable exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Each acquire reserves the next free slot, 1/rate after the previous one.

    Slots are reserved under the lock and slept for outside it, so concurrent senders queue up
    fairly and the ceiling holds exactly, without float drift. Idle time does not bank a burst.
    """

    def __init__(self, rate_per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._next_free = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for this sender's slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_free)
            self._next_free = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimits:
    """One bucket per backend name; a backend without a configured rate is not limited."""

    def __init__(self, rates: dict[str, float], **bucket_options: Callable[..., float]) -> None:
        self._buckets = {name: TokenBucket(rate, **bucket_options) for name, rate in rates.items()}  # type: ignore[arg-type]

    def acquire(self, backend: str) -> float:
        bucket = self._buckets.get(backend)
        return bucket.acquire() if bucket else 0.0
