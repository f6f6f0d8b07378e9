"""Mainland China mobile numbers, as a roster, a form or an API body gives them.

Every number goes through `phonenumbers` semantics (valid, country 86, type MOBILE), but the
common case, a bare 11-digit number as HR types it, skips the library's general machinery: its
type check compiles and matches a dozen metadata patterns per call, and it was the largest
single cost of validating a million-row roster. The shortcut runs the same patterns, in the
same order, from the same metadata, compiled once (`_is_cn_mobile`); tests compare the two
over every prefix.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

# Checked before phonenumbers sees the text, because phonenumbers maps letters to keypad digits.
_PHONE_RE = re.compile(r"\+?[0-9]+")
_PHONE_SEPARATORS = re.compile(r"[\s\-]+")
# A bare 11-digit national mobile number as HR types it, minus the prefixes phonenumbers would
# treat specially for CN (11x, 12x and 179 begin carrier-selection codes): see normalize_phone.
_BARE_MOBILE_SHAPE = re.compile(r"1(?:[3-689][0-9]|7[0-8])[0-9]{8}")
NOT_A_MOBILE = "not a mainland China mobile number"


def _desc_matcher(desc: PhoneNumberDesc | None) -> tuple[frozenset[int], re.Pattern[str]] | None:
    """A number type's possible lengths and pattern, as phonenumbers' `_is_number_matching_desc`
    uses them (no pattern: the type never matches)."""
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


def _load_cn() -> tuple[list[tuple[frozenset[int], re.Pattern[str]] | None], bool]:
    metadata = PhoneMetadata.metadata_for_region("CN")
    assert metadata is not None
    # phonenumbers' `_number_type_helper` order: the types that win over a mobile pattern first.
    before = [metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip,
              metadata.personal_number, metadata.pager, metadata.uan, metadata.voicemail, metadata.fixed_line]
    return ([_desc_matcher(metadata.general_desc), *(_desc_matcher(d) for d in before),
             _desc_matcher(metadata.mobile)], bool(metadata.same_mobile_and_fixed_line_pattern))


_CN_DESCS, _SAME_MOBILE_AND_FIXED = _load_cn()


def _matches(desc: tuple[frozenset[int], re.Pattern[str]] | None, national: str) -> bool:
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(national) not in lengths:
        return False
    return pattern.fullmatch(national) is not None


def _is_cn_mobile(national: str) -> bool:
    """phonenumbers.number_type(+86 `national`) == MOBILE, with the patterns compiled once."""
    general, *others, mobile = _CN_DESCS
    if not _matches(general, national) or _SAME_MOBILE_AND_FIXED:
        return False
    # Any earlier type (fixed line included: it would be FIXED_LINE or FIXED_LINE_OR_MOBILE).
    return not any(_matches(desc, national) for desc in others) and _matches(mobile, national)


def normalize_phone(raw: str) -> str:
    """The number in E.164 (+86...), or ValueError if it is not a mainland China mobile number."""
    # NFKC turns full-width digits and plus signs (common from Chinese IMEs) into ASCII.
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if not _PHONE_RE.fullmatch(text):
        raise ValueError(NOT_A_MOBILE)
    if _BARE_MOBILE_SHAPE.fullmatch(text):
        # What phonenumbers.parse(text, "CN") returns for this shape, without its general
        # machinery: no IDD or "86" prefix to strip, and no carrier code (CN strips 11x/12x/179xx
        # ones, excluded by the shape). Its E.164 form is "+86" and the national number.
        if not _is_cn_mobile(text):
            raise ValueError(NOT_A_MOBILE)
        return "+86" + text
    try:
        # Region CN lets phonenumbers take bare national numbers and strip a "86"/"0086" prefix.
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise ValueError(NOT_A_MOBILE) from None
    # Country code 86 belongs to region CN alone, and number_type() is MOBILE only for a number
    # that matches CN's mobile pattern, which is_valid_number() would also accept: so this is
    # "valid, CN, mobile" with one metadata match instead of three.
    if number.country_code != 86 or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE:
        raise ValueError(NOT_A_MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
