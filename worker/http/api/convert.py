"""Between API JSON and the registry: the same validation as a roster row, the same output shape."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schedules.policy import Policy
from worker.http.api.schemas import AttemptOut, HolderOut, NotificationOut
from worker.ops.runtime import Runtime
from worker.planning.evaluation import accumulated_of, evaluate_holder, holder_today
from worker.registry.roster import CANONICAL_COLUMNS, RosterRow, parse_roster_rows
from worker.store.models import DeliveryAttempt, Holder, Notification


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def roster_row(external_id: str, fields: dict[str, Any], existing: Holder | None) -> RosterRow:
    """Validate API fields exactly as a roster row; for an update, unspecified fields keep their
    stored values (the address, kept only as a fingerprint, is compared only when given)."""
    values: dict[str, Any] = {}
    if existing is not None:
        values = {c: getattr(existing, c) for c in CANONICAL_COLUMNS if c not in ("address", "external_id")}
    values.update(fields)
    values["external_id"] = external_id
    header = [c for c in CANONICAL_COLUMNS if c in values]
    [row] = parse_roster_rows(header, [(0, [_cell(values[c]) for c in header])])
    return row


def holder_out(holder: Holder, runtime: Runtime, now: datetime | None = None) -> HolderOut:
    today = holder_today(holder, now or datetime.now(UTC), runtime.settings.tz)
    ev = evaluate_holder(holder, today, runtime.policy)
    held = accumulated_of(holder, today)
    return HolderOut(
        external_id=holder.external_id, name=holder.name, phone=holder.phone, email=holder.email,
        wecom_userid=holder.wecom_userid, paused_until=holder.paused_until, pause_reason=holder.pause_reason,
        expires_on=holder.expires_on, housing_type=holder.housing_type,
        rental_registration_ends_on=holder.rental_registration_ends_on,
        address_on_file=holder.address_fingerprint is not None, employer=holder.employer, locale=holder.locale,
        stage=ev.stage, days_left=ev.days_left, auto_renewal=ev.auto_renewal,
        eligible_for_auto_renewal=None if ev.auto_renewal == "not_applicable" else ev.eligibility.eligible,
        eligibility_reasons=list(ev.eligibility.reasons), changed_since_endorsement=sorted(holder.changed_fields),
        sms_opted_out=holder.sms_opted_out_at is not None,
        accumulated_years=held.years if held else None, accumulated_months=held.months if held else None,
        accumulation_started_on=holder.accumulation_started_on, points_basis=holder.points_basis,
        points_valid_until=holder.points_valid_until, labor_contract_ends_on=holder.labor_contract_ends_on,
        labor_contract_starts_on=holder.labor_contract_starts_on,
        created_at=holder.created_at, updated_at=holder.updated_at,
    )


def notifications_of(session: Session, holder: Holder) -> list[NotificationOut]:
    notes = list(session.scalars(select(Notification).where(Notification.holder_id == holder.id)
                                 .order_by(Notification.created_at, Notification.id)))
    attempts: dict[int, list[AttemptOut]] = {}
    for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_([n.id for n in notes]))
                             .order_by(DeliveryAttempt.attempt_no)):
        attempts.setdefault(a.notification_id, []).append(AttemptOut(
            attempt_no=a.attempt_no, outcome=a.outcome, error=a.error,
            provider_message_id=a.provider_message_id, started_at=a.started_at))
    return [NotificationOut(
        id=n.id, cycle_expires_on=n.cycle_expires_on, stage=n.stage, touch_day=n.touch_day, touch_on=n.touch_on,
        channel=n.channel, status=n.status, status_reason=n.status_reason, delivery_status=n.delivery_status,
        delivery_error_code=n.delivery_error_code, segments=n.segments, attempts=attempts.get(n.id, []),
        sent_at=n.sent_at, created_at=n.created_at) for n in notes]


def stage_of(holder: Holder, policy: Policy, runtime: Runtime, now: datetime) -> tuple[str, int]:
    ev = evaluate_holder(holder, holder_today(holder, now, runtime.settings.tz), policy)
    return ev.stage, ev.days_left
