"""WeCom's size and frequency limits, kept on our side so that nothing is lost silently.

Sizes (UTF-8 bytes, https://developer.work.weixin.qq.com/document/path/90236 and, for the group
robot, /91770): a textcard title 128, its description 512, text content 2048, robot markdown 4096.
WeCom cuts an over-long textcard itself, possibly in the middle of a character; an over-long text
or markdown is refused (45002 / 40058). We cut on a character boundary and say that we cut.

Frequency: an app may send each member at most 30 messages a minute and 1000 an hour; "超过部分会
被丢弃不下发": over the limit, WeCom answers errcode 0 and drops the message. So `MemberWindow`
counts what this process sent to each member in a sliding window and refuses, with the time until
a slot frees up, before WeCom would drop anything. It is per process: replicas each keep their
own count, which is why the limits can be lowered in the notifier's constructor.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

TITLE_MAX_BYTES = 128
DESCRIPTION_MAX_BYTES = 512
TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 4096
URL_MAX_BYTES = 2048
ELLIPSIS = "…"

# (window in seconds, messages allowed in it) per member per app.
PER_MEMBER_LIMITS: tuple[tuple[float, int], ...] = ((60.0, 30), (3600.0, 1000))
# Every this many acquisitions, members not heard from for the longest window are forgotten.
_SWEEP_EVERY = 1000


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def truncate_utf8(text: str, max_bytes: int, marker: str = ELLIPSIS) -> str:
    """`text` if it fits in `max_bytes` UTF-8 bytes, else its longest prefix that ends on a
    character boundary and leaves room for `marker`, followed by `marker`."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    budget = max_bytes - utf8_len(marker)
    if budget <= 0:
        return marker.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
    # A cut inside a multi-byte sequence leaves an incomplete tail, which "ignore" drops.
    return data[:budget].decode("utf-8", "ignore").rstrip() + marker


class MemberWindow:
    """Sliding-window counts of messages sent per member; thread-safe."""

    def __init__(
        self,
        limits: tuple[tuple[float, int], ...] = PER_MEMBER_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not limits or any(seconds <= 0 or count < 1 for seconds, count in limits):
            raise ValueError("member limits must be (seconds > 0, count >= 1) pairs")
        self._limits = tuple(sorted(limits))
        self._horizon = max(seconds for seconds, _ in limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._acquisitions = 0

    def acquire(self, member: str) -> float | None:
        """Take a slot for one message to `member`: None when taken, else seconds to wait."""
        with self._lock:
            now = self._clock()
            self._acquisitions += 1
            if self._acquisitions % _SWEEP_EVERY == 0:
                self._sweep(now)
            stamps = self._sent.setdefault(member, deque())
            while stamps and stamps[0] <= now - self._horizon:
                stamps.popleft()
            wait = 0.0
            for seconds, count in self._limits:
                inside = [stamp for stamp in stamps if stamp > now - seconds]
                if len(inside) >= count:
                    # The slot frees up when the oldest message that fills the limit leaves the window.
                    wait = max(wait, inside[-count] + seconds - now)
            if wait > 0:
                return wait
            stamps.append(now)
            return None

    def release(self, member: str) -> None:
        """Give back the newest slot of `member`: its message was not delivered after all."""
        with self._lock:
            stamps = self._sent.get(member)
            if stamps:
                stamps.pop()
                if not stamps:
                    del self._sent[member]

    def _sweep(self, now: float) -> None:
        for member in [m for m, stamps in self._sent.items() if not stamps or stamps[-1] <= now - self._horizon]:
            del self._sent[member]
