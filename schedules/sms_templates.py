"""Approved SMS templates: which fixed text (and which provider template id) each message kind uses.

The texts live in sms_templates.yaml (package data) or the operator's own copy
(PERMIT_SMS_TEMPLATES). This module loads and checks a file once, picks the template for a kind
and locale (falling back to the file's `fallback` kind), and fills in its ${parameters}. It
knows nothing about providers beyond their names: the ids are data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from schedules.texts import DEFAULT_LOCALE, SUPPORTED_LOCALES

PARAM = re.compile(r"\$\{(\w+)\}")
# Providers that send by template id (the others send the filled-in text).
TEMPLATE_PROVIDERS: tuple[str, ...] = ("aliyun", "tencent")
FALLBACK = "fallback"
# The message kinds: a stage, and its variants (see the file's header). The domain decides which
# kind a message is (schedules/messages.py, sms_kind); a file only supplies their texts.
KINDS: tuple[str, ...] = (
    "valid", "upcoming", "upcoming.reasons", "auto_renewal_window",
    "renew_in_person", "renew_in_person.reasons", "renew_in_person.closed",
    "expired_grace", "expired_grace.accumulated", "expired_grace.closed",
    "accumulation_reset", "accumulation_reset.accumulated", "accumulation_reset.closed",
    "lapsed", "lapsed.accumulated", "points_renewal", FALLBACK,
)
# What the worker can fill in (schedules/messages.py computes every one of these for any message).
FILLABLE: frozenset[str] = frozenset({
    "hello", "name", "expires_on", "grace_ends_on", "reset_ends_on", "today", "days_left", "overdue",
    "countdown", "overdue_text", "grace_days", "reasons_short", "materials_sms", "last_day_in_person",
    "last_day_in_grace", "last_day_before_lapse", "accumulated", "points_valid_until", "points_countdown",
    "findings_short",
})


class TemplateFileError(ValueError):
    """The templates file cannot be used (raised at load, so at start-up, with one line)."""


@dataclass(frozen=True)
class ApprovedTemplate:
    kind: str
    locale: str
    text: str  # without the signature, with ${name} parameters
    ids: Mapping[str, str] = field(default_factory=dict)  # provider -> template id, once approved

    @property
    def params(self) -> tuple[str, ...]:
        """The parameter names in the order the text uses them first (Tencent's are positional)."""
        return tuple(dict.fromkeys(PARAM.findall(self.text)))

    def fill(self, fields: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The text with its parameters filled in, and the (name, value) pairs a provider gets.
        A parameter outside FILLABLE is a KeyError: sms_check refuses such a file at start-up."""
        params = tuple((name, str(fields[name])) for name in self.params)
        values = dict(params)
        return PARAM.sub(lambda m: values[m.group(1)], self.text), params


@dataclass(frozen=True)
class TemplateSet:
    source: str  # the file it came from, for messages
    signature: str
    prefixes: Mapping[str, str]  # locale -> how the signature shows without a signing provider
    templates: Mapping[tuple[str, str], ApprovedTemplate]
    # Template providers send only what was filed with them: by default the Chinese templates
    # (an English holder then reads the Chinese text); list `en` once English ones are approved.
    provider_locales: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def locales_for(self, provider: str | None) -> tuple[str, ...]:
        if provider in TEMPLATE_PROVIDERS:
            return self.provider_locales.get(provider, (DEFAULT_LOCALE,))
        return SUPPORTED_LOCALES

    def get(self, kind: str, locale: str, provider: str | None = None) -> ApprovedTemplate:
        """The template for (kind, locale); else the locale's fallback; else the default locale's.
        For a template provider, only templates it has an id for count (nothing else can be sent)."""
        locales = self.locales_for(provider)
        for key in ((kind, locale), (FALLBACK, locale), (kind, DEFAULT_LOCALE), (FALLBACK, DEFAULT_LOCALE)):
            found = self.templates.get(key)
            if found is None or key[1] not in locales:
                continue
            if provider in TEMPLATE_PROVIDERS and provider not in found.ids:
                continue
            return found
        raise KeyError(f"{self.source}: no template for {kind} and no fallback"
                       + (f" with a {provider} template id" if provider in TEMPLATE_PROVIDERS else ""))

    def prefix(self, locale: str, sign_name: str | None = None) -> str:
        """What precedes the text: 【sign_name】 when a provider signs it, else the file's prefix."""
        if sign_name:
            return f"【{sign_name}】"
        form = self.prefixes.get(locale) or self.prefixes.get(DEFAULT_LOCALE) or "【{signature}】"
        return form.format(signature=self.signature)


def packaged_path() -> str:
    return str(resources.files("schedules").joinpath("sms_templates.yaml"))


@cache
def load_sms_templates(path: str | None = None) -> TemplateSet:
    """Load a templates file (None: the packaged one); its shape is checked here (TemplateFileError,
    one line), its texts by schedules/sms_check.py (URLs, length, parameters)."""
    source = path or packaged_path()
    try:
        raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateFileError(f"{source}: cannot read the SMS templates file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TemplateFileError(f"{source}: not valid YAML{where}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("templates"), dict):
        raise TemplateFileError(f"{source}: expected a mapping with a `templates:` section")
    signature = str(raw.get("signature") or "").strip()
    if not signature:
        raise TemplateFileError(f"{source}: `signature` (the filed 签名, without 【】) is required")
    prefixes = {str(k): str(v) for k, v in (raw.get("prefix") or {}).items()}
    templates: dict[tuple[str, str], ApprovedTemplate] = {}
    for kind, by_locale in raw["templates"].items():
        templates.update(_entries(source, str(kind), by_locale))
    if (FALLBACK, DEFAULT_LOCALE) not in templates:
        raise TemplateFileError(f"{source}: a `{FALLBACK}` template in {DEFAULT_LOCALE} is required")
    return TemplateSet(source, signature, prefixes, templates, _provider_locales(source, raw.get("locales")))


def _provider_locales(source: str, raw: Any) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for provider, locales in (raw or {}).items():
        if provider not in TEMPLATE_PROVIDERS:
            raise TemplateFileError(f"{source}: locales: unknown provider {provider!r}")
        listed = tuple(str(x) for x in (locales or ()))
        unknown = [x for x in listed if x not in SUPPORTED_LOCALES]
        if unknown or not listed:
            raise TemplateFileError(f"{source}: locales: {provider}: expected a list of {', '.join(SUPPORTED_LOCALES)}")
        out[str(provider)] = listed
    return out


def _entries(source: str, kind: str, by_locale: Any) -> dict[tuple[str, str], ApprovedTemplate]:
    if kind not in KINDS:
        raise TemplateFileError(f"{source}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if not isinstance(by_locale, dict):
        raise TemplateFileError(f"{source}: {kind}: expected one entry per locale")
    out = {}
    for locale, entry in by_locale.items():
        where = f"{source}: {kind} {locale}"
        if locale not in SUPPORTED_LOCALES:
            raise TemplateFileError(f"{where}: unknown locale (known: {', '.join(SUPPORTED_LOCALES)})")
        spec = entry if isinstance(entry, dict) else {"text": entry}
        text = str(spec.get("text") or "").strip()
        if not text:
            raise TemplateFileError(f"{where}: the text is empty")
        ids = {p: str(spec[p]).strip() for p in TEMPLATE_PROVIDERS if spec.get(p) not in (None, "")}
        out[(kind, str(locale))] = ApprovedTemplate(kind, str(locale), text, ids)
    return out
