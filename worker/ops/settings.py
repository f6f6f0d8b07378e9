"""Settings from the environment (PERMIT_*). Secrets come from here, never from the repo."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schedules.policy import PolicyError, SendWindow, parse_clock, parse_send_window


def parse_rate_limits(value: str) -> dict[str, float]:
    """Parse "twilio=10,smtp=2.5" into {"twilio": 10.0, "smtp": 2.5}."""
    limits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, rate = part.partition("=")
        try:
            per_second = float(rate)
        except ValueError:
            per_second = 0.0
        if not sep or not name.strip() or per_second <= 0:
            raise ValueError(f"expected BACKEND=MESSAGES_PER_SECOND pairs like twilio=10, got {part!r}")
        limits[name.strip()] = per_second
    return limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMIT_", extra="ignore")

    database_url: str = "sqlite:///permit-worker.db"
    timezone: str = "Asia/Shanghai"
    policy_file: str | None = None
    # A year's official holidays and adjusted working days, loaded before the `holidays` package
    # ships them (schedules/workdays.py, load_calendar); for that year it wins.
    workday_calendar: str | None = None
    # Overrides the policy's send window, e.g. "09:00-20:00"; "00:00-24:00" sends any time.
    send_window: str | None = None
    scan_time: str = "08:30"
    dispatch_interval_seconds: float = Field(default=15.0, gt=0)
    dispatch_batch_size: int = Field(default=200, gt=0)
    # Sender threads per dispatcher: sends in flight at once. Throughput is about this many
    # divided by the provider's answer time (16 at 100 ms: at most 160 messages/s).
    dispatch_concurrency: int = Field(default=32, ge=1, le=256)
    max_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    claim_lease_seconds: float = Field(default=300.0, gt=0)
    sms_backend: str = "console"
    email_backend: str = "console"
    # The approved SMS templates (schedules/sms_templates.yaml format); unset: the packaged ones.
    sms_templates: str | None = None
    # The teams whose employees are members of the WeCom enterprise PERMIT_WECOM_CORP_ID names
    # ("acme,acme-sh"; unset or "*": every team). A deployment serving several employers sets
    # it, so one employer's userids are never looked up in another employer's WeCom.
    wecom_teams: str | None = None
    # Messages per second per backend, e.g. "twilio=10,smtp=5"; a backend not named is unlimited.
    rate_limits: str = ""
    # The base URL under which Twilio reaches `permit-worker serve` (https://worker.example.com):
    # webhook signatures are computed over it, and status callbacks point at it.
    public_url: str | None = None
    # From when (HH:MM, PERMIT_TIMEZONE) each working day's HR digest may go out.
    digest_time: str = "09:30"
    # Key for the address fingerprint (HMAC). Unset: a random key kept in the database.
    fingerprint_key: str | None = None
    # Key that signs the HR web pages' session cookies. Unset: a random key kept in the database
    # (so every replica and restart agrees); changing it signs everyone out.
    session_secret: str | None = None
    # HTTP API limits: requests per minute per token (with a burst), and body sizes.
    api_rate_per_minute: float = Field(default=600.0, gt=0)
    api_burst: int = Field(default=60, ge=1)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    api_max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Retention (days): the audit trail; notifications and their attempts of cycles long over
    # (never a touch that could still be due); HR events already reported; provider messages
    # kept to recognise a replay. `permit-worker prune` and the daemon's daily job apply them.
    audit_retention_days: int = Field(default=400, ge=30)
    notification_retention_days: int = Field(default=400, ge=30)
    hr_event_retention_days: int = Field(default=90, ge=7)
    # Longer than a cycle: the replay guard for a signed "已续签" reply must outlive the reminder.
    inbound_retention_days: int = Field(default=800, ge=400)
    log_level: str = "INFO"
    log_format: str = "auto"  # auto (JSON unless stderr is a terminal), json, console
    # The environment these settings were read from, for the providers' own variables
    # (TWILIO_*, PERMIT_SMTP_*): nothing else in the code reads os.environ.
    _environ: Mapping[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._environ = MappingProxyType(dict(os.environ))

    @property
    def environ(self) -> Mapping[str, str]:
        return self._environ

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("scan_time", "digest_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        try:
            parse_clock(value)
        except PolicyError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_send_window(value)
            except PolicyError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rates(cls, value: str) -> str:
        parse_rate_limits(value)
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in {"auto", "json", "console"}:
            raise ValueError("must be auto, json or console")
        return value

    @property
    def wecom_enabled(self) -> bool:
        """The WeCom channel is on once its corp id is set (then all its variables are required)."""
        return bool((self._environ.get("PERMIT_WECOM_CORP_ID") or "").strip())

    def wecom_team_slugs(self) -> frozenset[str] | None:
        """The teams the wecom channel may serve; None: every team ("*", or unset)."""
        value = (self.wecom_teams or "").strip()
        if value in ("*", ""):
            return None
        return frozenset(s.strip() for s in value.split(",") if s.strip())

    @property
    def embedded(self) -> bool:
        """The embedded default (a SQLite file, no public https URL): the one setup allowed to keep
        its keys in the database, so a fresh clone runs with no configuration."""
        return self.database_url.startswith("sqlite") and not (self.public_url or "").lower().startswith("https://")

    def missing_secrets(self) -> list[str]:
        """The secrets production needs from the environment and does not have, by variable name."""
        if self.embedded:
            return []
        return [name for name, value in (("PERMIT_SESSION_SECRET", self.session_secret),
                                         ("PERMIT_FINGERPRINT_KEY", self.fingerprint_key)) if not value]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def rate_limit_map(self) -> dict[str, float]:
        return parse_rate_limits(self.rate_limits)

    def send_window_override(self) -> SendWindow | None:
        return parse_send_window(self.send_window) if self.send_window else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
