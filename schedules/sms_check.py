"""Check approved SMS templates before they are filed, and say what to submit.

Carriers reject notification templates that carry links, and a text longer than two segments
costs double on every send; a parameter the worker cannot fill would fail every holder who
reaches that kind. So each template is rendered over a grid of worst cases (a four-character
name, the longest dates, every reason, every housing type, each touch day) with the signature the
provider will prepend, and the longest rendering is what is measured and shown as the sample.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, timedelta

from schedules.messages import MessageContext, message_fields, sms_kind
from schedules.points import POINTS_RENEWAL
from schedules.sms_templates import FALLBACK, FILLABLE, PARAM, TEMPLATE_PROVIDERS, ApprovedTemplate, TemplateSet
from schedules.stages import STAGES
from schedules.texts import DEFAULT_LOCALE, sms_segments

# Segments a message may take: Chinese at most 2 (134 UCS-2 characters); English, in GSM-7, 4.
MAX_SEGMENTS = {"zh-CN": 2, "en": 4}
_LINK = re.compile(r"https?://|www\.|\b[\w-]+\.(?:com|cn|net|org|gov|io|cc)\b", re.IGNORECASE)
_NAMES = {"zh-CN": "欧阳娜娜", "en": "Ouyang Nana"}
# The longest dates each locale writes: two-digit month and day; September is the longest month.
_EXPIRIES = (date(2027, 12, 28), date(2027, 9, 28))
_REASONS = ("address_changed", "employer_changed", "phone_changed", "rental_registration_ends_before_expiry")
_FINDINGS = ("labor_contract_under_one_year", "social_insurance_gap", "social_insurance_low_base")


@dataclass(frozen=True)
class Submission:
    """What to file for one template, and how long it gets."""

    template: ApprovedTemplate
    sample: str  # the longest rendering, signature included
    characters: int
    segments: int


def _contexts(locale: str) -> list[MessageContext]:
    out = []
    for stage, expires, reasons, acc, housing in itertools.product(
            (*STAGES, POINTS_RENEWAL), _EXPIRIES, ((), _REASONS), (None, (14, 11)),
            (None, "own", "relative", "rental", "dormitory")):
        for day in (-30, -20, -15, -10, -3, -1, 0, 1, 30, 59, 61, 89, 95):
            today = expires + timedelta(days=day)
            out.append(MessageContext(
                stage=stage, touch_day=day, today=today, expires_on=expires,
                grace_ends_on=expires + timedelta(days=60), reset_ends_on=expires + timedelta(days=90),
                name=_NAMES[locale], housing_type=housing, eligibility_reasons=reasons, accumulated=acc,
                findings=_FINDINGS if stage == POINTS_RENEWAL else (),
                points_valid_until=expires if stage == POINTS_RENEWAL else None))
    return out


def submissions(tset: TemplateSet, provider: str | None = None, sign_name: str | None = None) -> list[Submission]:
    """Every template the provider would send, with its longest sample (fillable ones only)."""
    prefix_for = {loc: tset.prefix(loc, sign_name or (tset.signature if provider in TEMPLATE_PROVIDERS else None))
                  for loc in tset.locales_for(provider)}
    longest: dict[tuple[str, str], str] = {}
    for locale in tset.locales_for(provider):
        fillable = [t for (k, loc), t in tset.templates.items() if loc == locale and set(t.params) <= FILLABLE]
        by_kind = {t.kind: t for t in fillable}
        for ctx in _contexts(locale):
            fields = message_fields(ctx, locale)
            # The kind's own template (or the fallback standing in for it), and the fallback as
            # it reads for this case, since any kind may come to use it.
            own = by_kind.get(sms_kind(ctx)) or by_kind.get("fallback")
            for template in (own, by_kind.get("fallback")):
                if template is None:
                    continue
                body = prefix_for[locale] + template.fill(fields)[0]
                key = (template.kind, locale)
                if len(body) > len(longest.get(key, "")):
                    longest[key] = body
    out = []
    for (kind, locale), sample in longest.items():
        out.append(Submission(tset.templates[(kind, locale)], sample, len(sample), sms_segments(sample)))
    return sorted(out, key=lambda s: (s.template.locale, s.template.kind))


def problems(tset: TemplateSet, provider: str | None = None, sign_name: str | None = None) -> list[str]:
    """One line per problem; empty when every template may be filed as it is."""
    out = []
    for (kind, locale), template in sorted(tset.templates.items()):
        if locale not in tset.locales_for(provider):
            continue
        where = f"{kind} ({locale})"
        for name in template.params:
            if name not in FILLABLE:
                out.append(f"{where}: the worker cannot fill ${{{name}}}")
        link = _LINK.search(PARAM.sub("", template.text))
        if link:
            out.append(f"{where}: contains a link or site name ({link.group(0)}): carriers reject it in a notification")
    for sub in submissions(tset, provider, sign_name):
        limit = MAX_SEGMENTS.get(sub.template.locale, 2)
        if sub.segments > limit:
            out.append(f"{sub.template.kind} ({sub.template.locale}): {sub.segments} segments at its longest "
                       f"({sub.characters} characters with the signature); at most {limit}")
    return out


def missing_ids(tset: TemplateSet, provider: str) -> list[str]:
    """The kinds a template provider has no approved id for (they go out as `fallback`)."""
    return [f"{kind} ({locale})" for (kind, locale), t in sorted(tset.templates.items())
            if locale in tset.locales_for(provider) and provider not in t.ids]


def sending_problems(tset: TemplateSet, provider: str, sign_name: str | None = None) -> list[str]:
    """What stops a worker sending through `provider` with these templates: their problems, and,
    for a template provider, no approved `fallback` (every kind without an id goes out as it)."""
    found = problems(tset, provider, sign_name)
    if provider in TEMPLATE_PROVIDERS:
        try:
            tset.get(FALLBACK, DEFAULT_LOCALE, provider)
        except KeyError:
            found.append(f"no {provider} template id for `{FALLBACK}` ({DEFAULT_LOCALE}): file your templates "
                         "and write their ids into your templates file (PERMIT_SMS_TEMPLATES)")
    return found
