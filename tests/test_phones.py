"""The bare-mobile shortcut of worker.registry.phones against phonenumbers itself."""

from __future__ import annotations

import phonenumbers
import pytest

from worker.registry.phones import _BARE_MOBILE_SHAPE, _is_cn_mobile, normalize_phone


def _library_says_mobile(national: str) -> bool:
    number = phonenumbers.PhoneNumber(country_code=86, national_number=int(national))
    return phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def test_the_compiled_type_check_agrees_with_phonenumbers_on_every_five_digit_prefix() -> None:
    mobiles = others = 0
    for prefix in range(10_000, 20_000):
        for suffix in ("000000", "555555", "999999", f"{prefix * 7919 % 1_000_000:06d}"):
            national = f"{prefix}{suffix}"
            expected = _library_says_mobile(national)
            assert _is_cn_mobile(national) == expected, national
            mobiles += expected
            others += not expected
    # Both answers occur often: the comparison is not of a check that always says the same.
    assert mobiles > 10_000 and others > 10_000


@pytest.mark.parametrize("national", ["14112345678", "15412345678", "16012345678", "17412345678", "19412345678"])
def test_the_shortcut_refuses_a_mobile_shaped_number_of_an_unassigned_block(national: str) -> None:
    assert _BARE_MOBILE_SHAPE.fullmatch(national)  # it takes the shortcut, and the shortcut says no
    assert not _library_says_mobile(national)
    with pytest.raises(ValueError, match="not a mainland China mobile number"):
        normalize_phone(national)


def test_a_bare_mobile_comes_back_in_e164_as_the_library_formats_it() -> None:
    for national in ("13812345678", "15012345678", "18612345678", "19912345678", "17712345678"):
        number = phonenumbers.parse(national, "CN")
        assert normalize_phone(national) == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
