"""What the Tencent fake (notifiers/tencent/fake.py) does with one request, as tests script it.

Each request to the fake takes the next scripted Outcome, whatever its action; once the script
is used up, requests succeed. Build outcomes with the functions here rather than by hand.
An outcome that accepts records the message before any delay or failure: that is how a test
stages "Tencent took it, and the answer was lost" for reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Outcome:
    """What the fake does with one request. Build with ok(), refused(), api_error(), ...."""

    kind: str = "ok"  # ok | refused (per number) | error (Response.Error) | http | garbled
    code: str = ""
    message: str = ""
    http_status: int = 200
    accept: bool = True  # record the message as accepted (before any delay)
    delay_seconds: float = 0.0


def ok() -> Outcome:
    return Outcome()


def refused(code: str, message: str = "") -> Outcome:
    """SendStatusSet[0].Code is `code` (a per-number refusal inside a successful answer)."""
    return Outcome(kind="refused", code=code, message=message or code, accept=False)


def api_error(code: str, message: str = "", accept: bool = False) -> Outcome:
    """Response.Error with `code`: the whole request refused (or, accept=True, failed after taking it)."""
    return Outcome(kind="error", code=code, message=message or code, accept=accept)


def server_error(status: int = 502, accept: bool = False) -> Outcome:
    return Outcome(kind="http", http_status=status, accept=accept)


def garbled(accept: bool = True) -> Outcome:
    """A 200 whose body is not JSON."""
    return Outcome(kind="garbled", accept=accept)


def slow(seconds: float, then: Outcome | None = None) -> Outcome:
    # Acceptance is recorded before sleeping, so a client timeout here is "accepted but unanswered".
    return replace(then or ok(), delay_seconds=seconds)
