"""`permit-worker config check`: the effective configuration, secrets masked, and every problem.

Every problem found, not only the first: an operator fixing a deploy wants the whole list at
once. Checks what start-up would refuse (settings, the policy file, secrets outside the embedded
default, each channel's notifier) and whether the database answers with a current schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import make_url

from notifiers import Notifier, NotifierConfigError, get_notifier
from schedules.policy import PolicyError, load_policy
from schedules.sms_check import sending_problems
from schedules.sms_templates import TemplateFileError, load_sms_templates
from schedules.workdays import CalendarError, load_calendar
from worker.ops.settings import Settings
from worker.store.db import make_engine, schema_is_current

# Provider variables worth showing (their notifiers read them from the same environment).
_PROVIDER_PREFIXES = ("TWILIO_", "PERMIT_SMTP_", "ALIBABA_CLOUD_", "PERMIT_ALIYUN_", "TENCENTCLOUD_", "PERMIT_TENCENT_",
                      "PERMIT_WECOM_")
_SECRET_WORDS = ("SECRET", "KEY", "PASSWORD", "TOKEN")


@dataclass
class ConfigReport:
    effective: list[tuple[str, str]] = field(default_factory=list)  # (variable, shown value)
    problems: list[str] = field(default_factory=list)


def shown(name: str, value: object) -> str:
    """A value as it may be printed: secrets only as set/unset, URLs without their password."""
    if value is None or value == "":
        return "(unset)"
    if any(word in name for word in _SECRET_WORDS):
        return "(set, hidden)"
    if name.endswith("_URL") and "://" in str(value):
        try:
            return make_url(str(value)).render_as_string(hide_password=True)
        except Exception:  # not an SQLAlchemy URL (PERMIT_PUBLIC_URL): printed as it is
            return str(value)
    return str(value)


def check_config() -> ConfigReport:
    report = ConfigReport()
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "PERMIT_" + str(error["loc"][0]).upper() if error.get("loc") else "settings"
            report.problems.append(f"{name}: {str(error['msg']).removeprefix('Value error, ')}")
        return report
    for name in sorted(Settings.model_fields):
        report.effective.append((f"PERMIT_{name.upper()}", shown(name.upper(), getattr(settings, name))))
    environ = settings.environ
    for name in sorted(v for v in environ if v.startswith(_PROVIDER_PREFIXES)):
        report.effective.append((name, shown(name, environ[name])))

    try:
        load_policy(settings.policy_file)
    except PolicyError as exc:
        report.problems.append(f"PERMIT_POLICY_FILE: {exc}")
    if settings.workday_calendar:
        try:
            load_calendar(settings.workday_calendar)
        except CalendarError as exc:
            report.problems.append(str(exc))
    for name in settings.missing_secrets():
        report.problems.append(f"{name}: not set; required outside the embedded default (PostgreSQL or https)")
    for channel, backend in (("sms", settings.sms_backend), ("email", settings.email_backend)):
        variable = f"PERMIT_{channel.upper()}_BACKEND"
        try:
            notifier = get_notifier(backend, settings.environ)
        except NotifierConfigError as exc:
            report.problems.append(f"{variable}={backend}: {exc}")
            continue
        if channel not in notifier.channels:
            report.problems.append(f"{variable}={backend}: this notifier cannot send {channel}")
        elif channel == "sms":
            report.problems.extend(_template_problems(settings, notifier))
    if settings.wecom_enabled:
        try:
            get_notifier("wecom", settings.environ)
        except NotifierConfigError as exc:
            report.problems.append(f"wecom: {exc}")
    report.problems.extend(_database_problems(settings.database_url))
    return report


def _template_problems(settings: Settings, sms: Notifier) -> list[str]:
    """The approved SMS templates the backend would send (PERMIT_SMS_TEMPLATES): every problem."""
    try:
        tset = load_sms_templates(settings.sms_templates)
    except TemplateFileError as exc:
        return [f"PERMIT_SMS_TEMPLATES: {exc}"]
    return [f"PERMIT_SMS_TEMPLATES: {p}" for p in sending_problems(tset, sms.name, getattr(sms, "sign_name", None))]


def _database_problems(url: str) -> list[str]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not Path(parsed.database).exists():
        # Connecting would create an empty file: say what to run instead.
        return [f"PERMIT_DATABASE_URL: {parsed.database} does not exist yet: run `permit-worker db upgrade`"]
    engine = make_engine(url)
    try:
        if not schema_is_current(engine):
            return ["PERMIT_DATABASE_URL: the schema is missing or out of date: run `permit-worker db upgrade`"]
    except Exception as exc:  # unreachable, refused, bad credentials: one line, no traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        return [f"PERMIT_DATABASE_URL: cannot use the database: {type(exc).__name__}: {first}"]
    finally:
        engine.dispose()
    return []
