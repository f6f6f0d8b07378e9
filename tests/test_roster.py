"""Roster parsing: CSV encodings, XLSX workbooks, header mapping, normalization, format detection
and whole-file rejection."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from datetime import date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from worker.registry import roster_xlsx
from worker.registry.roster import (
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
    parse_roster_rows,
)
from worker.registry.roster_xlsx import cell_text, parse_roster_xlsx, parse_upload

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
        # issue 6's import columns
        "accumulation_started_on", "points_basis", "points_valid_until", "labor_contract_ends_on",
        "labor_contract_starts_on",  # added last, so earlier columns keep their positions
        "wecom_userid",  # issue 12: appended after the existing columns
    )
    assert list(CHINESE_HEADERS) == ["工号", "姓名", "手机", "邮箱", "居住证有效期至", "居住类型", "租赁备案到期日", "居住地址",
                                     "用人单位", "语言", "累计起始日", "积分依据", "积分有效期至", "劳动合同到期日",
                                     "劳动合同起始日", "企业微信账号"]
    assert list(CHINESE_HEADERS.values()) == list(CANONICAL_COLUMNS)
    assert HOUSING_TYPES == ("own", "relative", "rental", "dormitory")
    assert str(RowError(3, "phone", "required")) == "row 3: phone: required"
    assert isinstance(RosterError([]), ValueError)


def test_it_reads_english_headers_in_shuffled_order_and_ignores_unknown_columns() -> None:
    data = (
        b" Expires_On ,PHONE,notes,external_id,Email,locale,housing_type,rental_registration_ends_on\n"
        b"2026-03-05,+86 138 1234 5678,whatever,E001, Li@Example.COM ,en-US,Rental,2026/4/1\n"
    )
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
    assert first.present == frozenset(CANONICAL_COLUMNS[:10])  # the ten columns of the file
    assert (second.row, second.housing_type, second.locale) == (3, "dormitory", "zh-CN")


def test_it_strips_the_utf8_bom_from_the_first_header() -> None:
    data = "external_id,phone,expires_on\r\nE1,13812345678,2026-03-05\r\n".encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    [row] = parse_roster(data)
    assert (row.external_id, row.present) == ("E1", frozenset({"external_id", "phone", "expires_on"}))


def test_decode_prefers_utf8_and_falls_back_to_gbk() -> None:
    assert decode_roster("工号".encode()) == "工号"
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
    with pytest.raises(ValueError, match=r"^not a real calendar date$"):
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
    with pytest.raises(ValueError, match=r"^not a mainland China mobile number$"):
        normalize_phone(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("自有", "own"), ("亲属", "relative"), ("租赁", "rental"), ("宿舍", "dormitory"), (" Own ", "own"), ("DORMITORY", "dormitory")],
)
def test_housing_types_are_accepted_in_chinese_and_english(raw: str, expected: str) -> None:
    assert normalize_housing_type(raw) == expected


def test_unknown_housing_type_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^must be one of own, relative, rental, dormitory$"):
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
    ).encode()
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
    data = b"external_id,email,expires_on\nE1,,2026-03-05\n"
    assert errors_of(data) == ["row 2: email: phone or email is required"]


def test_email_is_stripped_and_only_the_domain_lowercased() -> None:
    data = b"external_id,email,expires_on\nE1,  Wang.Wei@Corp.Example.CN ,2026-03-05\n"
    assert parse_roster(data)[0].email == ["Wang.Wei", "Corp.Example.CN"][0] + "@corp.example.cn"


@pytest.mark.parametrize("bad", ["a@@b.cn", "ab.cn", "a b@c.cn", "a@bcn", "@b.cn", "a@.cn", "a@b.cn@c.cn"])
def test_malformed_emails_are_rejected(bad: str) -> None:
    data = f"external_id,email,expires_on\nE1,{bad},2026-03-05\n".encode()
    assert errors_of(data) == ["row 2: email: not an email address"]


def test_missing_required_columns_are_reported_on_row_one() -> None:
    data = "name,housing_type\n张三,own\n".encode()
    assert errors_of(data) == [
        "row 1: external_id: missing column",
        "row 1: expires_on: missing column",
        "row 1: phone: missing column (need phone or email)",
    ]


def test_a_column_given_in_english_and_chinese_is_ambiguous() -> None:
    data = "external_id,phone,手机,expires_on\nE1,13812345678,13912345678,2026-03-05\n".encode()
    assert errors_of(data) == ["row 1: phone: duplicate column"]


@pytest.mark.parametrize("data", [b"", b"\n\n", "\ufeff".encode("utf-8"), b" , ,\r\n"])
def test_an_empty_file_is_one_error(data: bytes) -> None:
    assert errors_of(data) == ["row 0: file: empty file"]


def test_a_header_only_file_is_one_error() -> None:
    assert errors_of(f"{EN_HEADER}\n\n,,,\n".encode()) == ["row 0: file: no data rows"]


def test_undecodable_bytes_are_one_file_error() -> None:
    data = b"\xff\xfe\x00garbage"
    for encoding in ("utf-8-sig", "gb18030"):  # make sure the sample really is undecodable
        with pytest.raises(UnicodeDecodeError):
            data.decode(encoding)
    assert errors_of(data) == ["row 0: file: not UTF-8 or GBK text"]


def test_a_valid_file_yields_rows_in_file_order() -> None:
    data = b"external_id,phone,expires_on\nB,13812345678,2026-03-05\nA,13912345678,2026-03-06\n"
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


# --- XLSX uploads and format detection -------------------------------------------------------

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_XML = "xl/worksheets/sheet1.xml"


def xlsx_of(*rows: list[object]) -> bytes:
    """A real workbook written by openpyxl; `[]` leaves that sheet row empty."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rewrite_sheet(data: bytes, edit: Callable[[str], str]) -> bytes:
    """Re-zip a workbook with the first sheet's XML edited, to build files openpyxl won't write."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == SHEET_XML:
                body = edit(body.decode("utf-8")).encode("utf-8")
            dst.writestr(info.filename, body)
    return out.getvalue()


def xlsx_errors_of(data: bytes, filename: str | None = "roster.xlsx", content_type: str | None = None) -> list[str]:
    with pytest.raises(RosterError) as info:
        parse_upload(filename, content_type, data)
    lines = [str(e) for e in info.value.errors]
    assert str(info.value) == "\n".join(lines)
    return lines


GOOD_XLSX = xlsx_of(["external_id", "phone", "expires_on"], ["E1", 13812345678, datetime(2026, 3, 5)])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (datetime(2026, 3, 5), "2026-03-05"),
        (datetime(2026, 3, 5, 13, 30), "2026-03-05"),
        (date(2026, 3, 5), "2026-03-05"),
        (13812345678, "13812345678"),
        (13812345678.0, "13812345678"),
        (1.5, "1.5"),
        (-0.0, "0"),
        (True, "TRUE"),
        (time(9, 30), "09:30:00"),
        ("  张三\u3000", "张三"),
        ("#N/A", "#N/A"),
    ],
)
def test_xlsx_cells_become_the_text_a_csv_would_hold(value: object, expected: str) -> None:
    assert cell_text(value) == expected


def test_it_reads_an_xlsx_with_chinese_headers_date_cells_and_numeric_phones() -> None:
    data = xlsx_of(
        list(CHINESE_HEADERS),
        ["A7", "张三", 13812345678, None, datetime(2026, 3, 5), "租赁", datetime(2026, 1, 9),
         "上海市浦东新区世纪大道1号, 3楼", "某某科技有限公司", "中文"],
        [],                                                                       # row 3: empty
        ["", None, " ", None, None, None, None, None, None, None],                # row 4: blank cells
        ["A8", " 李四 ", 13912345678.0, "zhang@example.com", "2027/12/31", "宿舍", None, None, None, "en"],
    )
    first, second = parse_roster_xlsx(data)
    assert (first.row, first.external_id, first.name) == (2, "A7", "张三")
    assert first.phone == "+8613812345678"
    assert first.expires_on == date(2026, 3, 5)
    assert first.rental_registration_ends_on == date(2026, 1, 9)
    assert (first.housing_type, first.address, first.locale) == ("rental", "上海市浦东新区世纪大道1号, 3楼", "zh-CN")
    assert first.present == frozenset(CANONICAL_COLUMNS)
    assert (second.row, second.name, second.phone) == (5, "李四", "+8613912345678")
    assert (second.expires_on, second.email, second.locale) == (date(2027, 12, 31), "zhang@example.com", "en")


def test_it_reads_an_xlsx_with_english_headers_in_any_order() -> None:
    data = xlsx_of(
        [" Expires_On ", "PHONE", "notes", "external_id", "Email"],
        [datetime(2026, 3, 5), "+86 138 1234 5678", 42, 1001, " Li@Example.COM "],
    )
    [row] = parse_roster_xlsx(data)
    assert (row.row, row.external_id, row.expires_on) == (2, "1001", date(2026, 3, 5))
    assert (row.phone, row.email) == ("+8613812345678", "Li@example.com")
    assert row.present == frozenset({"expires_on", "phone", "external_id", "email"})


def test_a_bad_xlsx_reports_the_same_errors_as_csv_with_sheet_row_numbers() -> None:
    rows: list[list[object]] = [
        ["external_id", "phone", "email", "expires_on", "housing_type", "locale"],  # row 1
        ["E1", 13812345678, None, datetime(2026, 3, 5), "own", None],              # row 2: fine
        [],                                                                        # row 3: empty
        ["E2", "021-12345678", "not-an-email", "2026-02-30", "hotel", "fr"],       # row 4
        [None, None, None, None, None, "zh"],                                      # row 5
        ["E1", 13812345678.0, None, datetime(2026, 3, 5), None, None],             # row 6: duplicate
        ["E3", 1381234567, None, 46086, None, None],                               # row 7: date as a plain number
    ]
    expected = [
        "row 4: phone: not a mainland China mobile number",
        "row 4: email: not an email address",
        "row 4: expires_on: not a real calendar date",
        "row 4: housing_type: must be one of own, relative, rental, dormitory",
        "row 4: locale: must be zh-CN or en",
        "row 5: external_id: required",
        "row 5: expires_on: required",
        "row 5: phone: phone or email is required",
        "row 6: external_id: duplicate of row 2",
        "row 7: phone: not a mainland China mobile number",
        "row 7: expires_on: not a date (use YYYY-MM-DD)",
    ]
    assert xlsx_errors_of(xlsx_of(*rows)) == expected
    # The same sheet exported as CSV (as Excel would write it) gives the very same lines.
    csv_text = "".join(",".join(cell_text(v) for v in row) + "\n" for row in rows)
    assert errors_of(csv_text.encode("utf-8")) == expected


def test_xlsx_header_problems_and_empty_sheets_match_csv() -> None:
    assert xlsx_errors_of(xlsx_of(["name", "手机"], ["张三", 13812345678])) == [
        "row 1: external_id: missing column",
        "row 1: expires_on: missing column",
    ]
    assert xlsx_errors_of(xlsx_of()) == ["row 0: file: empty file"]
    assert xlsx_errors_of(xlsx_of([], [None, " "])) == ["row 0: file: empty file"]
    assert xlsx_errors_of(xlsx_of(["external_id", "phone", "expires_on"], [])) == ["row 0: file: no data rows"]


def test_only_the_first_worksheet_is_read() -> None:
    workbook = load_workbook(io.BytesIO(GOOD_XLSX))
    other = workbook.create_sheet("notes")
    other.append(["not", "a", "roster"])
    workbook.active = 1  # the sheet Excel opens on is not what counts
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert [r.external_id for r in parse_roster_xlsx(buffer.getvalue())] == ["E1"]


def test_a_wrong_dimension_in_the_sheet_does_not_drop_rows() -> None:
    data = xlsx_of(["external_id", "phone", "expires_on"], ["E1", 13812345678, "2026-03-05"],
                   ["E2", 13912345678, "2026-03-06"])
    lying = rewrite_sheet(data, lambda xml: re.sub(r'<dimension ref="[^"]*"', '<dimension ref="A1:A2"', xml))
    assert [(r.row, r.external_id, r.expires_on) for r in parse_roster_xlsx(lying)] == [
        (2, "E1", date(2026, 3, 5)), (3, "E2", date(2026, 3, 6)),
    ]


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("roster.xlsx", b"external_id,phone,expires_on\nE1,13812345678,2026-03-05\n"),
        ("roster.xlsx", b""),
        ("roster.xlsx", b"PK\x03\x04 but no zip after all"),
        (None, b"PK\x03\x04" + bytes(100)),
    ],
)
def test_bytes_that_are_not_an_xlsx_zip_are_one_error(filename: str | None, data: bytes) -> None:
    assert xlsx_errors_of(data, filename) == ["row 0: file: not a readable .xlsx workbook"]


def test_a_zip_that_is_not_a_workbook_is_one_error() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert xlsx_errors_of(buffer.getvalue()) == ["row 0: file: not a readable .xlsx workbook"]


def test_a_corrupt_sheet_inside_a_valid_zip_is_one_error() -> None:
    broken = rewrite_sheet(GOOD_XLSX, lambda xml: xml.replace("</sheetData>", "<row><c>"))
    assert xlsx_errors_of(broken) == ["row 0: file: not a readable .xlsx workbook"]


@pytest.mark.parametrize(
    ("filename", "content_type", "data"),
    [
        ("roster.xls", None, b"whatever is inside"),
        ("ROSTER.XLS", "application/vnd.ms-excel", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)),
        (None, None, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)),
        ("roster.xlsx", XLSX_TYPE, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)),  # e.g. password-protected
    ],
)
def test_old_binary_xls_is_one_clear_error(filename: str | None, content_type: str | None, data: bytes) -> None:
    assert xlsx_errors_of(data, filename, content_type) == [
        "row 0: file: old .xls files are not supported: save as .xlsx or CSV"
    ]


def test_an_xlsx_renamed_to_xls_is_still_read() -> None:
    assert [r.external_id for r in parse_upload("roster.xls", "application/vnd.ms-excel", GOOD_XLSX)] == ["E1"]


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("roster.xlsx", None),                               # by name
        ("名单.XLSX ", "application/octet-stream"),
        (None, XLSX_TYPE),                                   # by content type
        ("upload", XLSX_TYPE.upper() + "; charset=binary"),
        (None, None),                                        # by magic bytes alone
        ("roster.csv", "text/csv"),                          # magic bytes beat a wrong name and type
    ],
)
def test_parse_upload_reads_xlsx_by_name_content_type_or_magic_bytes(
    filename: str | None, content_type: str | None
) -> None:
    [row] = parse_upload(filename, content_type, GOOD_XLSX)
    assert (row.row, row.external_id, row.phone, row.expires_on) == (2, "E1", "+8613812345678", date(2026, 3, 5))


@pytest.mark.parametrize(("filename", "content_type"), [("roster.xlsx", None), (None, XLSX_TYPE)])
def test_parse_upload_trusts_an_xlsx_name_or_type_over_csv_looking_bytes(
    filename: str | None, content_type: str | None
) -> None:
    data = b"external_id,phone,expires_on\nE1,13812345678,2026-03-05\n"
    assert xlsx_errors_of(data, filename, content_type) == ["row 0: file: not a readable .xlsx workbook"]


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("roster.csv", "text/csv"), (None, None), ("roster.txt", "application/vnd.ms-excel"), ("名单", "")],
)
def test_parse_upload_reads_everything_else_as_csv(filename: str | None, content_type: str | None) -> None:
    data = "工号,手机,居住证有效期至\nA7,13812345678,2026/3/5\n".encode("gbk")
    assert [(r.row, r.external_id) for r in parse_upload(filename, content_type, data)] == [(2, "A7")]
    assert xlsx_errors_of(b"\xff\xfe\x00garbage", filename, content_type) == ["row 0: file: not UTF-8 or GBK text"]


def test_parse_roster_rows_validates_already_split_rows() -> None:
    rows = [(7, ["E1", "13812345678", "2026-03-05"]), (8, ["", " "]), (9, ["E2", "x", "2026-03-05"])]
    with pytest.raises(RosterError) as info:
        parse_roster_rows(["external_id", "phone", "expires_on"], rows, header_row=6)
    assert [str(e) for e in info.value.errors] == ["row 9: phone: not a mainland China mobile number"]
    with pytest.raises(RosterError) as info:
        parse_roster_rows(["name"], iter(rows), header_row=6)
    assert str(info.value.errors[0]) == "row 6: external_id: missing column"


def test_more_than_max_rows_data_rows_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roster_xlsx, "MAX_ROWS", 3)
    header: list[object] = ["external_id", "phone", "expires_on"]
    rows: list[list[object]] = [[f"E{i}", 13812345678, "2026-03-05"] for i in range(4)]
    # Blank rows are not data rows, so three data rows pass however many blanks surround them.
    assert len(parse_roster_xlsx(xlsx_of(header, [], rows[0], [], [], rows[1], rows[2], []))) == 3
    # A fourth is refused with one error, even though it (and the bad rows before it) would fail anyway.
    assert xlsx_errors_of(xlsx_of(header, ["bad"], *rows[1:])) == ["row 0: file: more than 3 data rows"]


def test_a_zip_bomb_is_refused_before_it_is_unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roster_xlsx, "MAX_UNZIPPED_BYTES", 64 * 1024)
    # 1 MiB of padding in the sheet deflates to about a kilobyte: tiny upload, large unpacked size.
    bomb = rewrite_sheet(GOOD_XLSX, lambda xml: xml.replace("</worksheet>", " " * 2**20 + "</worksheet>"))
    assert len(bomb) < 20_000
    assert xlsx_errors_of(bomb) == ["row 0: file: workbook is too large to read"]


def test_a_row_number_beyond_excels_limit_is_refused_quickly() -> None:
    far = rewrite_sheet(GOOD_XLSX, lambda xml: xml.replace(
        "</sheetData>", '<row r="99999999999"><c r="A99999999999" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'
    ))
    assert xlsx_errors_of(far) == ["row 0: file: not a readable .xlsx workbook"]


def test_rows_padded_out_to_a_far_column_exhaust_the_cell_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roster_xlsx, "MAX_CELLS", 100_000)
    # Each row is a few dozen bytes of XML but becomes 18,278 cells once padded out to column ZZZ.
    wide = "".join(f'<row r="{n}"><c r="ZZZ{n}" t="inlineStr"><is><t>x</t></is></c></row>' for n in range(3, 13))
    data = rewrite_sheet(GOOD_XLSX, lambda xml: xml.replace("</sheetData>", wide + "</sheetData>"))
    assert xlsx_errors_of(data) == ["row 0: file: workbook is too large to read"]


UPLOAD_NAMES = st.one_of(st.none(), st.sampled_from(["r.csv", "r.xlsx", "R.XLSX", "r.xls", "r", ""]), st.text(max_size=20))
UPLOAD_TYPES = st.one_of(st.none(), st.sampled_from([XLSX_TYPE, "text/csv", "application/vnd.ms-excel"]), st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(
    UPLOAD_NAMES,
    UPLOAD_TYPES,
    st.sampled_from([b"", b"PK\x03\x04", b"\xd0\xcf\x11\xe0"]),
    st.binary(max_size=400),
)
def test_parse_upload_never_raises_anything_but_roster_error(
    filename: str | None, content_type: str | None, magic: bytes, data: bytes
) -> None:
    try:
        parse_upload(filename, content_type, magic + data)
    except RosterError as exc:
        assert exc.errors


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_damaged_xlsx_never_raises_anything_but_roster_error(data: st.DataObject) -> None:
    # Random bytes almost never get past the zip reader; damaging a real workbook reaches openpyxl.
    damaged = bytearray(GOOD_XLSX)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(damaged)))
    try:
        parse_upload("roster.xlsx", XLSX_TYPE, bytes(damaged[:cut]))
    except RosterError as exc:
        assert exc.errors


def test_it_reads_the_points_and_accumulation_columns_in_chinese() -> None:
    data = ("工号,手机,居住证有效期至,累计起始日,积分依据,积分有效期至,劳动合同到期日\n"
            "P1,13800138000,2027-01-20,2022/7/31,职称,2027-03-31,2027-04-20\n").encode("gbk")
    [row] = parse_roster(data)
    assert (row.accumulation_started_on, row.points_basis, row.points_valid_until, row.labor_contract_ends_on) == (
        date(2022, 7, 31), "title", date(2027, 3, 31), date(2027, 4, 20))


def test_a_bad_points_basis_or_date_is_a_row_error() -> None:
    data = b"external_id,phone,expires_on,points_basis,points_valid_until\nP1,13800138000,2027-01-20,vibes,2027-13-01\n"
    assert errors_of(data) == ["row 2: points_basis: must be one of education, title, social_insurance_multiple (学历, 职称, 社保倍数)",
                         "row 2: points_valid_until: not a real calendar date"]


def test_it_reads_the_contract_start_and_refuses_one_after_the_contract_end() -> None:
    good = ("工号,手机,居住证有效期至,劳动合同起始日,劳动合同到期日\n"
            "P1,13800138000,2027-01-20,2026-09-01,2026-09-01\n").encode("gbk")
    [row] = parse_roster(good)  # a start on the end day is odd but not contradictory
    assert (row.labor_contract_starts_on, row.labor_contract_ends_on) == (date(2026, 9, 1), date(2026, 9, 1))
    bad = ("工号,手机,居住证有效期至,劳动合同起始日,劳动合同到期日\n"
           "P1,13800138000,2027-01-20,2026-09-02,2026-09-01\n").encode("gbk")
    assert errors_of(bad) == ["row 2: labor_contract_starts_on: after the contract's end (2026-09-01)"]
