"""Reminder policy as data: stage windows, touch days, send window and channels.

A policy is loaded from YAML and checked once, so the evaluation functions can trust it: every
day maps to exactly one stage for either eligibility, and every touch lies inside its stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT_POLICY = "shanghai_residence_permit"

# Far enough either side of expiry to cover every window edge a sensible policy would use.
_CHECK_RANGE = range(-800, 801)

# Every channel a holder can be reached on, in the default order of preference; a policy or a
# team lists the ones it uses, in its own order.
CHANNELS: tuple[str, ...] = ("wecom", "sms", "email")


class PolicyError(ValueError):
    """The policy file is malformed or inconsistent."""


@dataclass(frozen=True)
class Window:
    """A range of days_left (inclusive; None = open) optionally tied to eligibility."""

    min_days_left: int | None
    max_days_left: int | None
    eligible: bool | None = None

    def matches(self, days_left: int, eligible: bool) -> bool:
        if self.min_days_left is not None and days_left < self.min_days_left:
            return False
        if self.max_days_left is not None and days_left > self.max_days_left:
            return False
        return self.eligible is None or self.eligible == eligible


@dataclass(frozen=True)
class StagePolicy:
    name: str
    windows: tuple[Window, ...]
    touches: tuple[int, ...]  # days relative to expires_on, ascending
    source: str = ""

    def matches(self, days_left: int, eligible: bool) -> bool:
        return any(w.matches(days_left, eligible) for w in self.windows)


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time  # exclusive; time(0) as end means midnight (the whole day when start is 00:00)


@dataclass(frozen=True)
class EligibilityPolicy:
    breaking_changes: frozenset[str]
    rental_registration_must_cover_expiry: bool
    rental_housing_types: frozenset[str]


@dataclass(frozen=True)
class WorkingDayTouch:
    """One extra touch when the centre closes early: if the last working day on or before expiry
    comes before `when_last_working_day_before` (a day relative to expires_on, the -3 touch),
    `stage` gets one more touch `working_days_before` working days before that last working day."""

    stage: str
    when_last_working_day_before: int
    working_days_before: int
    source: str = ""


@dataclass(frozen=True)
class Policy:
    name: str
    title: str
    timezone: str
    send_window: SendWindow
    channels: tuple[str, ...]
    eligibility: EligibilityPolicy
    stages: tuple[StagePolicy, ...]
    working_day_touch: WorkingDayTouch | None = None  # None: touch days are only the listed ones

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StagePolicy:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def last_overdue_day(self, stage_name: str) -> int | None:
        """The largest overdue count (-days_left) that is still in the stage, or None if open."""
        lows = [w.min_days_left for w in self.stage(stage_name).windows]
        if any(low is None for low in lows):
            return None
        return -min(low for low in lows if low is not None)


def parse_clock(value: str) -> time:
    """Parse "HH:MM"; "24:00" means end of day and is returned as time(0)."""
    try:
        hours, minutes = (int(part) for part in str(value).split(":"))
    except ValueError as exc:
        raise PolicyError(f"not a HH:MM time: {value!r}") from exc
    if (hours, minutes) == (24, 0):
        return time(0)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise PolicyError(f"not a HH:MM time: {value!r}")
    return time(hours, minutes)


def parse_send_window(value: str) -> SendWindow:
    """Parse "09:00-20:00" as used by the PERMIT_SEND_WINDOW setting."""
    start, sep, end = str(value).partition("-")
    if not sep:
        raise PolicyError(f"send window must look like 09:00-20:00, got {value!r}")
    return _checked_window(SendWindow(parse_clock(start), parse_clock(end)))


def _checked_window(window: SendWindow) -> SendWindow:
    if window.end != time(0) and window.end <= window.start:
        raise PolicyError("send window must end after it starts (windows across midnight are not supported)")
    return window


def _window(raw: dict[str, Any]) -> Window:
    bounds = raw.get("days_left")
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise PolicyError(f"window needs days_left: [min, max], got {raw!r}")
    low, high = bounds
    if low is not None and high is not None and low > high:
        raise PolicyError(f"window days_left min {low} is above max {high}")
    eligible = raw.get("eligible")
    if eligible is not None and not isinstance(eligible, bool):
        raise PolicyError(f"window eligible must be true or false, got {eligible!r}")
    return Window(low, high, eligible)


def _stage(raw: dict[str, Any]) -> StagePolicy:
    try:
        name = str(raw["name"])
        windows = tuple(_window(w) for w in raw["windows"])
    except KeyError as exc:
        raise PolicyError(f"stage is missing {exc.args[0]!r}: {raw!r}") from exc
    touches = tuple(sorted(int(t) for t in raw.get("touches") or ()))
    return StagePolicy(name, windows, touches, str(raw.get("source", "")))


def _working_day_touch(raw: dict[str, Any] | None) -> WorkingDayTouch | None:
    if raw is None:
        return None
    try:
        return WorkingDayTouch(
            stage=str(raw["stage"]),
            when_last_working_day_before=int(raw["when_last_working_day_before"]),
            working_days_before=int(raw["working_days_before"]),
            source=str(raw.get("source", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"working_day_touch is malformed: {raw!r}") from exc


def _validate(policy: Policy) -> None:
    names = policy.stage_names
    if len(set(names)) != len(names):
        raise PolicyError("stage names must be unique")
    for eligible in (True, False):
        for days_left in _CHECK_RANGE:
            hits = [s.name for s in policy.stages if s.matches(days_left, eligible)]
            if len(hits) != 1:
                raise PolicyError(
                    f"days_left={days_left} eligible={eligible} matches {hits or 'no stage'}; "
                    "exactly one stage must match every day"
                )
    for stage in policy.stages:
        for touch in stage.touches:
            if not any(stage.matches(-touch, eligible) for eligible in (True, False)):
                raise PolicyError(f"touch {touch:+d} of {stage.name} falls outside the stage")
    extra = policy.working_day_touch
    if extra is not None:
        if extra.stage not in names:
            raise PolicyError(f"working_day_touch names unknown stage {extra.stage!r}")
        if extra.working_days_before < 1:
            raise PolicyError("working_day_touch working_days_before must be 1 or more")
    if not policy.channels or set(policy.channels) - set(CHANNELS):
        raise PolicyError(f"channels must be a non-empty list of {', '.join(CHANNELS)}")


def policy_from_mapping(raw: dict[str, Any]) -> Policy:
    try:
        window = raw["send_window"]
        elig = raw.get("eligibility") or {}
        policy = Policy(
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            timezone=str(raw.get("timezone", "Asia/Shanghai")),
            send_window=_checked_window(SendWindow(parse_clock(window["start"]), parse_clock(window["end"]))),
            channels=tuple(raw.get("channels") or ("sms", "email")),
            eligibility=EligibilityPolicy(
                breaking_changes=frozenset(elig.get("breaking_changes") or ()),
                rental_registration_must_cover_expiry=bool(elig.get("rental_registration_must_cover_expiry", True)),
                rental_housing_types=frozenset(elig.get("rental_housing_types") or ("rental",)),
            ),
            stages=tuple(_stage(s) for s in raw["stages"]),
            working_day_touch=_working_day_touch(raw.get("working_day_touch")),
        )
    except (KeyError, TypeError) as exc:
        raise PolicyError(f"policy is missing or has a malformed field: {exc}") from exc
    _validate(policy)
    return policy


def read_policy_file(path: str | Path, what: str = "policy") -> dict[str, Any]:
    """A policy YAML file as a mapping, or one clear PolicyError."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{what} {path} is not a mapping")
    return raw


def read_packaged_policy(name: str) -> dict[str, Any]:
    text = resources.files("schedules").joinpath(f"policies/{name}.yaml").read_text(encoding="utf-8")
    return dict(yaml.safe_load(text))


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file; with no path, the packaged Shanghai residence permit policy."""
    return default_policy() if path is None else policy_from_mapping(read_policy_file(path))


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return policy_from_mapping(read_packaged_policy(DEFAULT_POLICY))


def _plain(value: object) -> object:
    """JSON for the digest: sets in a fixed order (their iteration order varies per process)."""
    if isinstance(value, frozenset | set):
        return sorted(str(v) for v in value)
    if isinstance(value, time):
        return value.isoformat()
    raise TypeError(f"cannot digest {type(value).__name__}")


def policy_digest(policy: Policy, calendar: str = "") -> str:
    """A stable fingerprint of what decides every holder's touch days: the policy, and the
    working-day calendar (`calendar`, e.g. the holidays package version) the extra touch uses.
    The registry stores the digest it last planned with; a different one means re-plan."""
    payload = json.dumps({"policy": dataclasses.asdict(policy), "calendar": calendar}, sort_keys=True,
                         default=_plain)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
