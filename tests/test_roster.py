"""Roster CSV parsing: encodings, header mapping, normalization and whole-file rejection."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.roster import (
    CANONICAL_COLUMNS,
    CHINESE_HEADERS,
    HOUSING_TYPES,
    RosterError,
    RowError,
    decode_roster,
    normalize_housing_type,
    normalize_locale,
    normalize_phone,
    parse_date,
    parse_roster,
)

EN_HEADER = ",".join(CANONICAL_COLUMNS)


def errors_of(data: bytes) -> list[str]:
    with pytest.raises(RosterError) as info:
        parse_roster(data)
    lines = [str(e) for e in info.value.errors]
    assert str(info.value) == "\n".join(lines)  # what the caller prints
    return lines


def test_the_public_constants_follow_the_contract() -> None:
    assert CANONICAL_COLUMNS == (
        "external_id", "name", "phone", "email", "expires_on",
        "housing_type", "rental_registration_ends_on", "address", "employer", "locale",
    )
    assert list(CHINESE_HEADERS) == ["工号", "姓名", "手机", "邮箱", "居住证有效期至", "居住类型", "租赁备案到期日", "居住地址", "用人单位", "语言"]
    assert list(CHINESE_HEADERS.values()) == list(CANONICAL_COLUMNS)
    assert HOUSING_TYPES == ("own", "relative", "rental", "dormitory")
    assert str(RowError(3, "phone", "required")) == "row 3: phone: required"
    assert isinstance(RosterError([]), ValueError)


def test_it_reads_english_headers_in_shuffled_order_and_ignores_unknown_columns() -> None:
    data = (
        " Expires_On ,PHONE,notes,external_id,Email,locale,housing_type,rental_registration_ends_on\n"
        "2026-03-05,+86 138 1234 5678,whatever,E001, Li@Example.COM ,en-US,Rental,2026/4/1\n"
    ).encode("utf-8")
    [row] = parse_roster(data)
    assert row.row == 2
    assert row.external_id == "E001"
    assert row.expires_on == date(2026, 3, 5)
    assert row.phone == "+8613812345678"
    assert row.email == "Li@example.com"
    assert row.locale == "en"
    assert row.housing_type == "rental"
    assert row.rental_registration_ends_on == date(2026, 4, 1)
    assert row.name is None and row.address is None and row.employer is None
    assert row.present == frozenset(
        {"expires_on", "phone", "external_id", "email", "locale", "housing_type", "rental_registration_ends_on"}
    )


def test_it_reads_gbk_with_chinese_headers() -> None:
    data = (
        "工号,姓名,手机,邮箱,居住证有效期至,居住类型,租赁备案到期日,居住地址,用人单位,语言\n"
        "A7,张三,13812345678,,2026/3/5,租赁,2026-1-9,\"上海市浦东新区世纪大道1号, 3楼\",某某科技有限公司,中文\n"
        "A8,李四,,zhang@example.com,2027-12-31,宿舍,,,,\n"
    ).encode("gbk")
    first, second = parse_roster(data)
    assert first.name == "张三"
    assert first.phone == "+8613812345678"
    assert first.email is None
    assert first.housing_type == "rental"
    assert first.rental_registration_ends_on == date(2026, 1, 9)
    assert first.address == "上海市浦东新区世纪大道1号, 3楼"
    assert first.employer == "某某科技有限公司"
    assert first.locale == "zh-CN"
    assert first.present == frozenset(CANONICAL_COLUMNS)
    assert (second.row, second.housing_type, second.locale) == (3, "dormitory", "zh-CN")


def test_it_strips_the_utf8_bom_from_the_first_header() -> None:
    data = "external_id,phone,expires_on\r\nE1,13812345678,2026-03-05\r\n".encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    [row] = parse_roster(data)
    assert (row.external_id, row.present) == ("E1", frozenset({"external_id", "phone", "expires_on"}))


def test_decode_prefers_utf8_and_falls_back_to_gbk() -> None:
    assert decode_roster("工号".encode("utf-8")) == "工号"
    assert decode_roster("工号".encode("utf-8-sig")) == "工号"
    assert decode_roster("工号".encode("gbk")) == "工号"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-05", date(2026, 3, 5)),
        ("2026/3/5", date(2026, 3, 5)),
        ("2026/03/05", date(2026, 3, 5)),
        ("2026-3-5", date(2026, 3, 5)),
        (" 2028-02-29 ", date(2028, 2, 29)),
    ],
)
def test_it_accepts_both_date_formats(raw: str, expected: date) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["05/03/2026", "2026.3.5", "2026-03/05", "20260305", "26-3-5", "2026-003-05", "", "２０２６-3-5"])
def test_it_rejects_other_date_formats(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^not a date \(use YYYY-MM-DD\)$"):
        parse_date(raw)


@pytest.mark.parametrize("raw", ["2026-02-30", "2027-02-29", "2026/13/1", "2026-04-31", "0000-01-01"])
def test_it_rejects_impossible_dates(raw: str) -> None:
    with pytest.raises(ValueError, match="^not a real calendar date$"):
        parse_date(raw)


@pytest.mark.parametrize(
    "raw",
    ["13812345678", "+8613812345678", "8613812345678", "+86 138 1234 5678", "138-1234-5678",
     "+86-138-1234-5678", " 86 13812345678 ", "＋８６１３８１２３４５６７８"],
)
def test_phone_variants_become_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+8613812345678"


@pytest.mark.parametrize(
    "raw",
    ["021-12345678", "+86 21 1234 5678", "1381234567", "138123456789", "+852 9123 4567",
     "+1 415 555 2671", "1381234ABCD", "(+86)13812345678", "", "abc"],
)
def test_landlines_short_foreign_and_garbage_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="^not a mainland China mobile number$"):
        normalize_phone(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("自有", "own"), ("亲属", "relative"), ("租赁", "rental"), ("宿舍", "dormitory"), (" Own ", "own"), ("DORMITORY", "dormitory")],
)
def test_housing_types_are_accepted_in_chinese_and_english(raw: str, expected: str) -> None:
    assert normalize_housing_type(raw) == expected


def test_unknown_housing_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="^must be one of own, relative, rental, dormitory$"):
        normalize_housing_type("租房")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("zh", "zh-CN"), ("zh-cn", "zh-CN"), ("zh_CN", "zh-CN"), ("zh-CN", "zh-CN"), ("中文", "zh-CN"),
     ("en", "en"), ("en-US", "en"), ("English", "en"), ("英文", "en")],
)
def test_locale_variants_are_normalized(raw: str, expected: str) -> None:
    assert normalize_locale(raw) == expected


def test_unknown_locale_is_rejected() -> None:
    with pytest.raises(ValueError):
        normalize_locale("fr")


def test_a_bad_file_reports_every_bad_cell_with_physical_row_numbers() -> None:
    data = (
        f"{EN_HEADER}\n"                                                     # row 1
        "E1,,13812345678,,2026-03-05,own,,,,\n"                              # row 2: fine
        "\n"                                                                 # row 3: blank, skipped
        "E2,,021-12345678,not-an-email,2026-02-30,hotel,2026/1/1,,,fr\n"     # row 4: five bad cells
        ",,,,,,,,,\n"                                                        # row 5: Excel's empty row
        " ,,,,,,,,,zh\n"                                                     # row 6
        "E1,,13812345678,,2026-03-05,,,,,\n"                                 # row 7: duplicate
        f"{'x' * 65},{'n' * 201},,a@b.co,2026/3/5,,,{'a' * 501},,\n"         # row 8
    ).encode("utf-8")
    assert errors_of(data) == [
        "row 4: phone: not a mainland China mobile number",
        "row 4: email: not an email address",
        "row 4: expires_on: not a real calendar date",
        "row 4: housing_type: must be one of own, relative, rental, dormitory",
        "row 4: locale: must be zh-CN or en",
        "row 6: external_id: required",
        "row 6: expires_on: required",
        "row 6: phone: phone or email is required",
        "row 7: external_id: duplicate of row 2",
        "row 8: external_id: longer than 64 characters",
        "row 8: name: longer than 200 characters",
        "row 8: address: longer than 500 characters",
    ]


def test_a_quoted_multiline_address_is_one_spreadsheet_row() -> None:
    data = 'external_id,address,phone,expires_on\nE1,"line one\nline two",13812345678,2026-03-05\nE2,,x,2026-03-05\n'
    assert errors_of(data.encode("utf-8")) == ["row 3: phone: not a mainland China mobile number"]


def test_phone_or_email_error_names_the_column_the_file_has() -> None:
    data = "external_id,email,expires_on\nE1,,2026-03-05\n".encode("utf-8")
    assert errors_of(data) == ["row 2: email: phone or email is required"]


def test_email_is_stripped_and_only_the_domain_lowercased() -> None:
    data = "external_id,email,expires_on\nE1,  Wang.Wei@Corp.Example.CN ,2026-03-05\n".encode("utf-8")
    assert parse_roster(data)[0].email == "Wang.Wei@Corp.Example.CN".split("@")[0] + "@corp.example.cn"


@pytest.mark.parametrize("bad", ["a@@b.cn", "ab.cn", "a b@c.cn", "a@bcn", "@b.cn", "a@.cn", "a@b.cn@c.cn"])
def test_malformed_emails_are_rejected(bad: str) -> None:
    data = f"external_id,email,expires_on\nE1,{bad},2026-03-05\n".encode("utf-8")
    assert errors_of(data) == ["row 2: email: not an email address"]


def test_missing_required_columns_are_reported_on_row_one() -> None:
    data = "name,housing_type\n张三,own\n".encode("utf-8")
    assert errors_of(data) == [
        "row 1: external_id: missing column",
        "row 1: expires_on: missing column",
        "row 1: phone: missing column (need phone or email)",
    ]


def test_a_column_given_in_english_and_chinese_is_ambiguous() -> None:
    data = "external_id,phone,手机,expires_on\nE1,13812345678,13912345678,2026-03-05\n".encode("utf-8")
    assert errors_of(data) == ["row 1: phone: duplicate column"]


@pytest.mark.parametrize("data", [b"", b"\n\n", "\ufeff".encode("utf-8"), b" , ,\r\n"])
def test_an_empty_file_is_one_error(data: bytes) -> None:
    assert errors_of(data) == ["row 0: file: empty file"]


def test_a_header_only_file_is_one_error() -> None:
    assert errors_of(f"{EN_HEADER}\n\n,,,\n".encode("utf-8")) == ["row 0: file: no data rows"]


def test_undecodable_bytes_are_one_file_error() -> None:
    data = b"\xff\xfe\x00garbage"
    for encoding in ("utf-8-sig", "gb18030"):  # make sure the sample really is undecodable
        with pytest.raises(UnicodeDecodeError):
            data.decode(encoding)
    assert errors_of(data) == ["row 0: file: not UTF-8 or GBK text"]


def test_a_valid_file_yields_rows_in_file_order() -> None:
    data = "external_id,phone,expires_on\nB,13812345678,2026-03-05\nA,13912345678,2026-03-06\n".encode("utf-8")
    assert [(r.row, r.external_id) for r in parse_roster(data)] == [(2, "B"), (3, "A")]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_roster_never_raises_anything_but_roster_error_on_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_roster(data)
    except RosterError as exc:
        assert exc.errors  # a rejection always says why


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=12))
def test_parse_roster_never_raises_anything_but_roster_error_on_csv_like_text(cells: list[str]) -> None:
    # Random bytes rarely get past the header; a real header with random cells reaches every validator.
    data = (EN_HEADER + "\n" + ",".join(cells)).encode("utf-8")
    try:
        parse_roster(data)
    except RosterError as exc:
        assert exc.errors
