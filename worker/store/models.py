"""Registry and outbox tables (SQLAlchemy 2.0). The Alembic migrations mirror these exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from worker.store.statuses import DigestStatus, NoteStatus, ScanRunStatus, ScanSliceStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL behave the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


DUE_NOW = date(1900, 1, 1)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AppMeta(Base):
    """Small key/value facts about this installation (e.g. the generated fingerprint key)."""

    __tablename__ = "app_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    hr_email: Mapped[str | None] = mapped_column(String(320))
    # The order channels are tried in ("wecom,sms,email"); None: the policy's order.
    channels: Mapped[str | None] = mapped_column(String(64))
    # A WeCom group robot's webhook URL: the daily digest goes there too (it holds a key: a secret).
    hr_wecom_webhook: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    holders: Mapped[list[Holder]] = relationship(back_populates="team", passive_deletes=True)


class ApiToken(Base):
    """A named API bearer token of a team, `read` or `write`; only its SHA-256 is kept (the token
    is shown once). `default` is the write token `teams create` prints."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_api_tokens_team_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))  # read | write
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    team: Mapped[Team] = relationship()


class User(Base):
    """A named HR account of one team: viewer, editor or admin. Signs in with email and an
    argon2id password, set through a one-time invitation link."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lowercased; one account, one team
    role: Mapped[str] = mapped_column(String(8))  # viewer | editor | admin
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None until the invitation is used
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    team: Mapped[Team] = relationship()


class UserLink(Base):
    """A one-time link for a user: an invitation (set the first password) or a password reset.
    Only the hash of its secret is kept; `used_at` makes it one-time."""

    __tablename__ = "user_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(8))  # invite | reset
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A signed-in browser of a user: listed and revocable; deleting the row (or the user) ends
    it on the next request, whatever the cookie says."""

    __tablename__ = "user_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class SignInFailure(Base):
    """A failed sign-in, by account and by address: what throttling counts (shared by every
    replica). Pruned after an hour."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))  # "account:<email>" | "address:<ip>"
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """Who changed what, when: a user's email, a token's name ("token NAME") or "system".
    `changes` is JSON, personal data masked; erasing a holder scrubs their entries' values
    and keeps the entries."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_team_at", "team_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("holders.id", ondelete="SET NULL"), index=True)
    holder: Mapped[str | None] = mapped_column(String(64))  # the external id, kept after erasure
    changes: Mapped[str] = mapped_column(Text, default="{}")


class Holder(Base):
    """A permit holder. Personal data: name, phone, email. The address is kept only as a keyed
    fingerprint (to notice a change), and no ID-card number is ever stored."""

    __tablename__ = "holders"
    __table_args__ = (
        UniqueConstraint("team_id", "external_id", name="uq_holders_team_external_id"),
        # A team's stage counts and expiry windows (planning/stage_counts.py, team_rows.py) read
        # this index, not the table: a 100k-holder team's summary in tens of milliseconds.
        Index("ix_holders_team_expiry", "team_id", "expires_on", "timezone"),
        # The scan's "who is due" read is this index alone (an index-only scan on PostgreSQL;
        # SQLite's indexes carry the rowid anyway): with next_due_on alone every due id was a
        # random heap read first (74 ms of a 1M-holder day). No bigger: a date and an int pad
        # to the same 16-byte entry as the date did.
        Index("ix_holders_due_id", "next_due_on", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own: the unique key and ix_holders_team_expiry both lead with team_id, and
    # every scan's UPDATE of next_due_on maintained the third copy (migration 0012).
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    email: Mapped[str | None] = mapped_column(String(320))
    wecom_userid: Mapped[str | None] = mapped_column(String(64))  # 企业微信账号 (the member's userid)
    # Nothing is sent to the holder up to and including this day (holders pause); HR still sees them.
    paused_until: Mapped[date | None] = mapped_column(Date)
    pause_reason: Mapped[str | None] = mapped_column(String(200))
    # Indexed only with the team (ix_holders_team_expiry): every read by expiry is a team's.
    expires_on: Mapped[date] = mapped_column(Date)
    housing_type: Mapped[str | None] = mapped_column(String(16))
    rental_registration_ends_on: Mapped[date | None] = mapped_column(Date)
    address_fingerprint: Mapped[str | None] = mapped_column(String(64))
    employer: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8), default="zh-CN")
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: PERMIT_TIMEZONE
    # Comma-separated fields changed since the last endorsement (address, employer, phone);
    # cleared when a renewal starts a new cycle.
    changed_since_endorsement: Mapped[str] = mapped_column(String(64), default="")
    # The next day the holder needs the scan's attention (a touch falls due). Maintained on every
    # write and by the scan, so a day's scan reads only due holders (O(due), not O(registry)).
    # DUE_NOW means "evaluate at the next scan" (new, changed, or policy changed).
    next_due_on: Mapped[date] = mapped_column(Date, default=DUE_NOW, server_default="1900-01-01")
    # Accumulated holding (累计持有年限) counts from here; reset by a late endorsement.
    accumulation_started_on: Mapped[date | None] = mapped_column(Date)
    # Points (积分) status: the basis (education, title, social_insurance_multiple), its validity end,
    # and the labour contract's term, which the points renewal depends on (the start only for the
    # "term under one year" check).
    points_basis: Mapped[str | None] = mapped_column(String(32))
    points_valid_until: Mapped[date | None] = mapped_column(Date, index=True)  # the points scan's range
    labor_contract_ends_on: Mapped[date | None] = mapped_column(Date)
    labor_contract_starts_on: Mapped[date | None] = mapped_column(Date)
    # Set when the holder replied TD/T/退订/STOP: no more SMS, email keeps working.
    sms_opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    team: Mapped[Team] = relationship(back_populates="holders")

    @property
    def changed_fields(self) -> frozenset[str]:
        return frozenset(f for f in self.changed_since_endorsement.split(",") if f)


class Notification(Base):
    """The outbox: one row per holder, cycle, stage, touch and channel; the unique key is what
    makes every scan (on any number of replicas) enqueue each touch once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint(
            "holder_id", "cycle_expires_on", "stage", "touch_day", "channel", name="uq_notifications_touch"
        ),
        Index("ix_notifications_due", "status", "next_attempt_at"),
        # The overview's "delivery failed" list (views._failed_holders): failures are rare.
        Index("ix_notifications_delivery_status", "delivery_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Reads by holder use the unique key, which leads with holder_id (no second index to maintain).
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id", ondelete="CASCADE"))
    cycle_expires_on: Mapped[date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(32))
    touch_day: Mapped[int] = mapped_column(Integer)
    touch_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(8))
    # pending -> sending -> sent | failed; pending -> cancelled (renewal, stage left, superseded)
    status: Mapped[str] = mapped_column(String(16), default=NoteStatus.PENDING.value)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    segments: Mapped[int | None] = mapped_column(Integer)  # SMS parts billed, counted at send time
    # The holder's day the last attempt's text was rendered for ("还剩N天" depends on it), so a
    # reconciliation after an ambiguous attempt looks for exactly the text that was sent.
    rendered_on: Mapped[date | None] = mapped_column(Date)
    # What the provider reported after accepting it (Twilio status callbacks):
    # queued, sent, delivered, undelivered, failed.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_error_code: Mapped[str | None] = mapped_column(String(64))
    delivery_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    holder: Mapped[Holder] = relationship()
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="notification", passive_deletes=True, order_by="DeliveryAttempt.attempt_no"
    )

    @property
    def key(self) -> str:
        return f"{self.holder_id}:{self.cycle_expires_on.isoformat()}:{self.stage}:{self.touch_day:+d}:{self.channel}"


class DeliveryAttempt(Base):
    """One try at delivering a notification. Holds no phone number or message text."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("notification_id", "attempt_no", name="uq_delivery_attempts_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    notifier: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # sent | transient | permanent | error
    error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(100), index=True)

    notification: Mapped[Notification] = relationship(back_populates="attempt_log")


class HrEvent(Base):
    """Something HR must hear about (opt-out, a reported renewal, an unreachable holder).

    Reported in the team's daily HR digest; `reported_at` marks it done. The
    detail names the holder by external_id only, never by phone or email.
    """

    __tablename__ = "hr_events"
    __table_args__ = (Index("ix_hr_events_pending", "team_id", "reported_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("holders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # opted_out | renewal_reported | unreachable | reply
    detail: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundEvent(Base):
    """A provider message we acted on: a delivery receipt (message id + status) or a holder's
    reply (message id). Providers retry, and anyone may replay a signed request: the unique key
    makes the second arrival a no-op. Holds no phone number and no text."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("provider", "kind", "message_id", "status", name="uq_inbound_events_message"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # receipt | reply
    message_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32), default="")  # a receipt's status; "" for a reply
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class InsuranceMonth(Base):
    """One month of social insurance for a holder (imported by HR): paid or not, at what base."""

    __tablename__ = "social_insurance_months"
    __table_args__ = (UniqueConstraint("holder_id", "month", name="uq_social_insurance_months_holder_month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id", ondelete="CASCADE"))
    month: Mapped[date] = mapped_column(Date)  # the first day of the month
    paid: Mapped[bool] = mapped_column(Boolean)
    base_multiple: Mapped[float | None] = mapped_column(Float)


class DigestRun(Base):
    """One row per team and day a digest went out: the key that keeps it to one a day."""

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("team_id", "digest_date", name="uq_digest_runs_team_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    digest_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.SENDING.value)  # DigestStatus
    items: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScanRun(Base):
    """The daily scan, one row per date: claimed by one replica ("running", with a heartbeat),
    then "finished". Another replica skips a day that is finished or freshly running, and takes
    over one whose heartbeat went stale (its scanner died)."""

    __tablename__ = "scan_runs"

    scan_date: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=ScanRunStatus.FINISHED.value, server_default="finished")
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    holders_seen: Mapped[int] = mapped_column(Integer, default=0)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=1)


class ScanSlice(Base):
    """One share of a day's scan: a run of due holder ids (in id order), planned by the replica
    that claimed the day, worked by whichever scheduler replica locks it first
    (worker/planning/scan_slices.py). Worked and marked done in one transaction, so a replica
    killed mid-slice leaves it pending for another."""

    __tablename__ = "scan_slices"
    __table_args__ = (Index("ix_scan_slices_day_status", "scan_date", "status"),)

    scan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slice_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_date: Mapped[date] = mapped_column(Date)
    first_id: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    # The slice's due ids, 8 bytes each (array("q")): read once by the planner, not re-read per slice.
    holder_ids: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=ScanSliceStatus.PENDING.value)
    done_by: Mapped[str | None] = mapped_column(String(100))
    holders_seen: Mapped[int] = mapped_column(Integer, default=0)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """Each worker process says it is alive; /healthz and /metrics read it."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_dispatch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
