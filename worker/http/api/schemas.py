"""JSON shapes of the API. Field names are the roster import's column names."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schedules.stages import AutoRenewal

HousingType = Literal["own", "relative", "rental", "dormitory"]


class HolderFields(BaseModel):
    """Writable fields; values are validated by the same rules as a roster row."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40, description="mainland mobile, with or without +86")
    email: str | None = Field(default=None, max_length=320)
    expires_on: date | None = None
    housing_type: str | None = Field(default=None, max_length=16, description="own, relative, rental, dormitory")
    rental_registration_ends_on: date | None = None
    address: str | None = Field(default=None, max_length=500, description="kept only as a fingerprint")
    accumulation_started_on: date | None = None
    points_basis: str | None = Field(default=None, max_length=32,
                                     description="education, title, social_insurance_multiple (学历/职称/社保倍数)")
    points_valid_until: date | None = None
    labor_contract_ends_on: date | None = None
    labor_contract_starts_on: date | None = Field(default=None, description="for the one-year contract term check")
    employer: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(default=None, max_length=16, description="zh-CN or en")
    wecom_userid: str | None = Field(default=None, max_length=64, description="企业微信账号: the member's WeCom userid")


class HolderCreate(HolderFields):
    external_id: str = Field(min_length=1, max_length=64)
    expires_on: date


class HolderUpdate(HolderFields):
    pass


class RenewalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_on: date


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    until: date = Field(description="last day nothing is sent (inclusive), at most two years ahead")
    reason: str | None = Field(default=None, max_length=200, description="e.g. parental leave")


class HolderOut(BaseModel):
    external_id: str
    name: str | None
    phone: str | None
    email: str | None
    wecom_userid: str | None = None
    paused_until: date | None = None
    pause_reason: str | None = None
    expires_on: date
    housing_type: str | None
    rental_registration_ends_on: date | None
    address_on_file: bool
    employer: str | None
    locale: str
    stage: str
    days_left: int
    auto_renewal: AutoRenewal = Field(
        description="not_applicable once the permit has expired (the city's auto-renewal no longer happens)")
    eligible_for_auto_renewal: bool | None = Field(description="null when auto-renewal is not applicable")
    eligibility_reasons: list[str]
    changed_since_endorsement: list[str]
    sms_opted_out: bool
    accumulated_years: int | None = Field(description="continuous holding (累计持有年限), whole years")
    accumulated_months: int | None = Field(description="and months beyond the whole years")
    accumulation_started_on: date | None
    points_basis: str | None
    points_valid_until: date | None
    labor_contract_ends_on: date | None
    labor_contract_starts_on: date | None
    created_at: datetime
    updated_at: datetime


class EnqueuedOut(BaseModel):
    stage: str
    touch_day: int
    channel: str


class HolderWritten(HolderOut):
    enqueued: list[EnqueuedOut] = Field(description="reminders due now, enqueued by this change")


class HolderPage(BaseModel):
    items: list[HolderOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class AttemptOut(BaseModel):
    attempt_no: int
    outcome: str
    error: str | None
    provider_message_id: str | None
    started_at: datetime


class NotificationOut(BaseModel):
    id: int
    cycle_expires_on: date
    stage: str
    touch_day: int
    touch_on: date
    channel: str
    status: str
    status_reason: str | None
    delivery_status: str | None
    delivery_error_code: str | None
    segments: int | None
    attempts: list[AttemptOut]
    sent_at: datetime | None
    created_at: datetime


class FieldChangeOut(BaseModel):
    field: str
    old: str | None = Field(description="null when empty, or for the address (kept only as a fingerprint)")
    new: str | None


class RowChangeOut(BaseModel):
    row: int
    external_id: str
    changes: list[FieldChangeOut]
    renewed: bool
    loses_auto_renewal: list[str] = Field(description="address/employer/phone newly changed this cycle: "
                                                      "the holder must renew in person")


class ImportResult(BaseModel):
    dry_run: bool
    rows: int
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    renewed: list[str]
    enqueued: int = Field(description="reminders due now, sent at once (dry run: that would be)")
    changes: list[RowChangeOut] = Field(description="every updated row, field by field, old -> new")
    losing_auto_renewal: list[str] = Field(description="external_ids that lose auto-renewal this cycle")


class ExpiringSoon(BaseModel):
    external_id: str
    name: str | None
    expires_on: date
    days_left: int
    stage: str


class Summary(BaseModel):
    today: date
    holders: int
    by_stage: dict[str, int]
    expiring_next_30_days: list[ExpiringSoon]


class HrEventOut(BaseModel):
    kind: str
    detail: str
    created_at: datetime
    reported_at: datetime | None


class HolderExport(BaseModel):
    """Everything the service holds on one holder (PIPL access request)."""

    holder: HolderOut
    address_fingerprint: str | None
    notifications: list[NotificationOut]
    hr_events: list[HrEventOut]
