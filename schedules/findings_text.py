"""Points findings in words: one HR-facing phrase per finding (digest, API), and the holder's.

HR phrases use the finding's `detail` (dates, months, thresholds), so HR knows what to fix and by
when; holder phrases are fixed words per code, short for SMS and full for email. The words are
in templates/<locale>.yaml under findings_hr, findings_short and findings_holder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from schedules.texts import join, normalize_locale, templates

_OTHER = "other"  # templates key for a finding code the templates do not know (yet)


class _Detail(dict[str, Any]):
    """A format_map source that shows a missing detail as "?" instead of failing a digest."""

    def __missing__(self, key: str) -> str:
        return "?"


def _requirement(detail: Mapping[str, Any], t: dict[str, Any]) -> str:
    words = t["insurance_requirement"]
    months = detail.get("required_months", "?")
    span = str(words["continuous" if detail.get("continuous") else "any"]).format(required_months=months)
    minimum = detail.get("min_base_multiple")
    base = "" if minimum is None else str(words["at_base"]).format(min_base_multiple=f"{float(minimum):g}")
    return str(words["text"]).format(span=span, base=base)


def finding_text(code: str, locale: str | None, detail: Mapping[str, Any] | None = None,
                 today: date | None = None) -> str:
    """The HR-facing phrase of one finding, e.g. for the digest or the API's `text` field.

    `detail` is Finding.detail (dates as ISO strings, months as "YYYY-MM" lists); lists are
    joined, the points basis is named, and the social-insurance requirement is spelled out.
    An unknown code gets a generic phrase naming the code. Given `today`, a finding whose
    "renew before" day has passed gets its `findings_hr_passed` wording: it says the day has
    passed and what still helps, never to act before a day already gone.
    """
    t = templates(normalize_locale(locale))
    fields = _Detail(detail or {})
    for key, value in list(fields.items()):
        if isinstance(value, list | tuple):
            fields[key] = str(t["list_separator"]).join(str(v) for v in value) or t["none"]
    basis = str(fields.get("basis") or "")
    fields["basis_name"] = t["bases"].get(basis, basis)
    fields["requirement"] = _requirement(fields, t)
    fields["code"] = code
    phrases: dict[str, str] = t["findings_hr"]
    renew_before = (detail or {}).get("renew_before")
    if today is not None and renew_before and date.fromisoformat(str(renew_before)) < today:
        passed: dict[str, str] = t.get("findings_hr_passed") or {}
        if code in passed:
            return str(passed[code]).format_map(fields)
    return str(phrases.get(code, phrases[_OTHER])).format_map(fields)


def holder_phrases(codes: Iterable[str], locale: str | None, *, short: bool) -> list[str]:
    """The holder's words for each finding code, once each; unknown codes share a generic one."""
    t = templates(normalize_locale(locale))
    phrases: dict[str, str] = t["findings_short" if short else "findings_holder"]
    out: list[str] = []
    for code in codes:
        phrase = phrases.get(code, phrases[_OTHER])
        if phrase not in out:
            out.append(phrase)
    return out


def holder_findings_text(codes: Iterable[str], locale: str | None, *, short: bool) -> str:
    """The holder phrases joined the locale's way ("A、B和C" / "A, B and C")."""
    return join(holder_phrases(codes, locale, short=short), templates(normalize_locale(locale)))
