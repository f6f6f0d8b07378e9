"""Wiring: settings -> engine, policy, notifiers, dispatcher. One place, used by CLI and daemon."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from notifiers import Notifier, NotifierConfigError, get_notifier
from schedules.policy import Policy, load_policy
from schedules.sms_check import sending_problems
from schedules.sms_templates import TEMPLATE_PROVIDERS, TemplateSet, load_sms_templates, packaged_path
from schedules.workdays import load_calendar
from worker.delivery.dispatch import Dispatcher, RetryPolicy
from worker.delivery.ratelimit import RateLimits
from worker.ops.settings import Settings
from worker.registry.fingerprint import FingerprintKeyError, fingerprint_key
from worker.registry.service import UnitOfWork
from worker.store.db import make_engine, schema_is_current, session_factory, unit_of_work

# (templates file, SMS backend, signature) -> its problems: files are read once per process too.
_TEMPLATE_PROBLEMS: dict[tuple[str, str, str | None], list[str]] = {}


log = structlog.get_logger("worker.runtime")


class SchemaOutOfDate(RuntimeError):
    pass


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def factory(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def policy(self) -> Policy:
        if self.settings.workday_calendar:  # before the policy's digest, which names the calendar
            load_calendar(self.settings.workday_calendar)
        return load_policy(self.settings.policy_file)

    def require_schema(self) -> None:
        if not schema_is_current(self.engine):
            raise SchemaOutOfDate("the database schema is missing or out of date: run `permit-worker db upgrade`")

    def require_secrets(self) -> None:
        """Outside the embedded default, the keys come from the environment, never from the
        database they protect (a read-only copy of it must not let anyone forge a session or
        test guesses of an address); and the fingerprint key must be the registry's own.
        FingerprintKeyError, one line naming the variable, before anything starts."""
        missing = self.settings.missing_secrets()
        if missing:
            name = missing[0]
            raise FingerprintKeyError(
                f"{name} is not set: required outside the embedded default (a PostgreSQL database or an https "
                f"PERMIT_PUBLIC_URL); set it from your secret store (e.g. `openssl rand -hex 32`)")
        with unit_of_work(self.factory) as session:
            fingerprint_key(session, self.settings.fingerprint_key, generate=self.settings.embedded)

    def unit(self, actor: str = "system") -> UnitOfWork:
        """A unit of work for one use case (worker/registry/service.py), on this registry and
        policy; `actor` is who the audit trail names for its changes."""
        return UnitOfWork(self.factory, self.policy, self.settings.tz, actor=actor)

    @cached_property
    def sms_templates(self) -> TemplateSet:
        """The approved SMS templates (PERMIT_SMS_TEMPLATES, else the packaged file)."""
        return load_sms_templates(self.settings.sms_templates)

    def check_sms_templates(self, sms: Notifier) -> None:
        """Refuse to start on templates the SMS backend could not send: one line, the first problem."""
        sign_name = getattr(sms, "sign_name", None)
        if self.sms_templates.source == packaged_path() and sms.name not in TEMPLATE_PROVIDERS:
            return  # the packaged file as it ships: tests/test_sms_templates.py checks it on every change
        key = (self.sms_templates.source, sms.name, sign_name)
        if key not in _TEMPLATE_PROBLEMS:  # a second or so of rendering: once per file and backend
            _TEMPLATE_PROBLEMS[key] = sending_problems(self.sms_templates, sms.name, sign_name)
        found = _TEMPLATE_PROBLEMS[key]
        if found:
            raise NotifierConfigError(f"{self.sms_templates.source}: {found[0]} (see: permit-worker sms templates)")

    def notifiers(self) -> dict[str, Notifier]:
        """One notifier per channel, built now so a misconfigured backend fails at start-up."""
        built: dict[str, Notifier] = {}
        by_channel = {"sms": self.settings.sms_backend, "email": self.settings.email_backend,
                      "wecom_group": "wecom_robot"}
        if self.settings.wecom_enabled:
            if not (self.settings.wecom_teams or "").strip():
                # Every team then: right for one employer's deployment; one serving several
                # employers must name the teams of this enterprise (deploy/README.md).
                log.warning("wecom.all_teams", reason="PERMIT_WECOM_TEAMS is not set: every team's wecom touches "
                            "go to this WeCom enterprise; name the teams whose employees are its members")
            by_channel["wecom"] = "wecom"
        for channel, name in by_channel.items():
            shared = next((n for n in built.values() if n.name == name), None)
            notifier = shared or get_notifier(name, self.settings.environ)
            if channel not in notifier.channels:
                raise ValueError(f"notifier {name!r} cannot send {channel}")
            built[channel] = notifier
        self.check_sms_templates(built["sms"])
        return built

    def dispatcher(self) -> Dispatcher:
        s = self.settings
        return Dispatcher(
            self.factory,
            self.notifiers(),
            self.policy,
            s.tz,
            send_window=s.send_window_override(),
            retry=RetryPolicy(s.max_attempts, s.retry_base_seconds, s.retry_max_seconds),
            lease=timedelta(seconds=s.claim_lease_seconds),
            rate_limits=RateLimits(s.rate_limit_map),
            concurrency=s.dispatch_concurrency,
            sms_templates=self.sms_templates,
            wecom_teams=s.wecom_team_slugs(),
        )
