"""One clearly marked test message through the configured channel, to check a provider's
settings before the first real reminder: `teams test-message SLUG --to ADDRESS`.

The address says the channel: a mainland mobile number is SMS, an email address is email,
anything else a WeCom userid. An SMS goes as the approved `fallback` template (a template
provider sends nothing else), its greeting saying it is a test; what the provider answered comes
back as it is, so an operator sees "aliyun isv.SMS_SIGNATURE_ILLEGAL" rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from notifiers.base import Message, Notifier, SendResult, SmsTemplate
from schedules.messages import MessageContext, message_fields, normalize_locale
from schedules.sms_templates import FALLBACK, TemplateSet
from worker.registry.phones import normalize_phone
from worker.registry.records import EMAIL, BadInput
from worker.registry.roster import normalize_wecom_userid


@dataclass(frozen=True)
class TestSent:
    channel: str
    to: str
    notifier: str
    result: SendResult


def channel_of(address: str) -> tuple[str, str]:
    """(channel, normalized address); BadInput when it is none of the three."""
    text = address.strip()
    if "@" in text and EMAIL.match(text):
        return "email", text
    try:
        return "sms", normalize_phone(text)
    except ValueError:
        pass
    try:
        return "wecom", normalize_wecom_userid(text)
    except ValueError:
        raise BadInput(f"--to {address!r} is not a mainland mobile number, an email address "
                       "or a WeCom userid") from None


def test_message(channel: str, to: str, team_name: str, sms_templates: TemplateSet, sms: Notifier | None,
                 today: date) -> Message:
    subject = f"[测试 / test] {team_name}: permit-worker 测试消息"
    body = (f"这是一条测试消息，由 {team_name} 的居住证提醒服务发出，用于确认发送渠道已配置好，无需回复。\n"
            f"This is a test message from {team_name}'s residence permit reminders, to check the channel works.")
    key = f"test-{datetime.now(UTC):%Y%m%d%H%M%S}"
    if channel != "sms":
        return Message(channel=channel, to=to, subject=subject, body=body, idempotency_key=key)
    provider = sms.name if sms is not None else None
    template = sms_templates.get(FALLBACK, normalize_locale(None), provider)
    expires = today + timedelta(days=365)
    ctx = MessageContext(stage="valid", touch_day=0, today=today, expires_on=expires,
                         grace_ends_on=expires + timedelta(days=60), reset_ends_on=expires + timedelta(days=90))
    fields = message_fields(ctx, template.locale)
    fields["hello"] = fields["name"] = "测试消息"  # the only part a template lets us say it in
    text, params = template.fill(fields)
    prefix = sms_templates.prefix(template.locale, getattr(sms, "sign_name", None))
    return Message(channel="sms", to=to, body=prefix + text, idempotency_key=key,
                   template=SmsTemplate(template.kind, dict(template.ids), params, template.text))


def send_test(notifiers: dict[str, Notifier], address: str, team_name: str, sms_templates: TemplateSet,
              today: date) -> TestSent:
    channel, to = channel_of(address)
    notifier = notifiers.get(channel)
    if notifier is None:
        raise BadInput(f"no {channel} backend is configured on this worker (see permit-worker config check)")
    message = test_message(channel, to, team_name, sms_templates, notifiers.get("sms"), today)
    try:
        result = notifier.send(message)
    except Exception as exc:  # an adapter bug: say so, as the dispatcher would
        result = SendResult.transient(f"notifier raised {type(exc).__name__}: {exc}")
    return TestSent(channel, to, notifier.name, result)
