"""Files HR downloads: the team's registry as CSV, and a blank roster template.

The export uses the roster's own columns (Chinese headers, or the canonical English ones), so
an exported file can be edited in Excel and imported again. Spreadsheet apps run a cell that
starts with = + - @ as a formula (CSV injection), and names and emails are typed by people, so
every such cell is escaped with a leading apostrophe; plain integers ("-3" days) are left alone,
since a number cannot be a formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from worker.http.web.i18n import REASONS, STAGES, pick
from worker.planning.evaluation import accumulated_of
from worker.planning.team_rows import Evaluator, HolderLike
from worker.registry.roster import CANONICAL_COLUMNS, CHINESE_HEADERS

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INTEGER = re.compile(r"-?[0-9]+")
_ZH_HEADER = {column: title for title, column in CHINESE_HEADERS.items()}
_HOUSING_ZH = {"own": "自有", "relative": "亲属", "rental": "租赁", "dormitory": "宿舍"}
_LOCALE_ZH = {"zh-CN": "中文", "en": "英文"}
# The address is stored only as a fingerprint: it cannot be exported, and the import leaves
# an absent column untouched, so leaving it out keeps the round trip harmless.
EXPORT_COLUMNS = tuple(c for c in CANONICAL_COLUMNS if c != "address")
_EXTRA = {"stage": ("阶段", "stage"), "days_left": ("距到期天数", "days_left"),
          "eligibility": ("不能自动签注原因", "not_eligible_because"),
          "accumulated": ("累计持有年限", "accumulated_years")}
_TEMPLATE_NOTES = (
    ("工号", "必填", "贵公司内部的员工编号，每人唯一"), ("姓名", "", "用于提醒中的称呼"),
    ("手机", "手机或邮箱至少一项", "中国大陆手机号，可带 +86"), ("邮箱", "手机或邮箱至少一项", ""),
    ("居住证有效期至", "必填", "格式 2026-03-31 或 2026/3/31"), ("居住类型", "", "自有、亲属、租赁、宿舍"),
    ("租赁备案到期日", "", "租住的员工填写，格式同上"), ("居住地址", "", "仅保存为指纹，用于发现地址变更"),
    ("用人单位", "", ""), ("语言", "", "中文（默认）或 英文"),
    ("企业微信账号", "", "员工的企业微信账号（userid）；团队渠道含企业微信时，提醒先发企业微信"),
)


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _INTEGER.fullmatch(text):
        return "'" + text
    return text


def _phone(phone: str | None) -> str:
    # +86 is implied for a mainland mobile, and without it the cell is not mistaken for a formula.
    return phone.removeprefix("+86") if phone else ""


def export_header(lang: str) -> list[str]:
    zh = lang != "en"
    return [_ZH_HEADER[c] if zh else c for c in EXPORT_COLUMNS] + [pick(_EXTRA[k], lang) for k in _EXTRA]


def export_rows(rows: Iterable[HolderLike], evaluator: Evaluator, lang: str) -> Iterator[list[str]]:
    """Each holder (a team_rows row or a Holder) as the roster's cells (escaped against formulas),
    then stage, days left, the reasons they cannot auto-renew and their accumulated years."""
    zh = lang != "en"
    today = evaluator.today()
    for holder in rows:
        ev = evaluator.of(holder)
        values: dict[str, object] = {c: getattr(holder, c) for c in EXPORT_COLUMNS}
        values["phone"] = _phone(holder.phone)
        if zh:
            values["housing_type"] = _HOUSING_ZH.get(holder.housing_type or "", holder.housing_type)
            values["locale"] = _LOCALE_ZH.get(holder.locale, holder.locale)
        row = [values[c] for c in EXPORT_COLUMNS]
        held = accumulated_of(holder, today)
        row += [pick(STAGES[ev.stage], lang) if zh else ev.stage, ev.days_left,
                "; ".join(pick(REASONS.get(r, (r, r)), lang) for r in ev.eligibility.reasons),
                "" if held is None else (f"{held.years}年{held.months}个月" if zh else f"{held.years}y{held.months}m")]
        yield [safe_cell(v) for v in row]


def csv_chunks(rows: Iterable[HolderLike], evaluator: Evaluator, lang: str, every: int = 500) -> Iterator[bytes]:
    """The export as CSV, `every` rows per chunk, so a download starts at once and memory stays
    flat: the header first (with a BOM, so Excel on a Chinese Windows opens the UTF-8 file without
    mangling the names), then the rows as they are read."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(export_header(lang))
    yield ("\ufeff" + out.getvalue()).encode("utf-8")
    pending = 0
    out.seek(0)
    out.truncate()
    for cells in export_rows(rows, evaluator, lang):
        writer.writerow(cells)
        pending += 1
        if pending >= every:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
            pending = 0
    if pending:
        yield out.getvalue().encode("utf-8")


def export_csv(rows: Iterable[HolderLike], evaluator: Evaluator, lang: str) -> bytes:
    return b"".join(csv_chunks(rows, evaluator, lang))


def export_xlsx(rows: Iterable[HolderLike], evaluator: Evaluator, lang: str, target: Path | io.BytesIO) -> int:
    """The same table as the CSV in a workbook written to `target`; every cell is text, so IDs
    keep their leading zeros and phones are not turned into 1.38E+10. Returns the row count."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("花名册" if lang != "en" else "roster")
    sheet.append(export_header(lang))
    written = 0
    for row in export_rows(rows, evaluator, lang):
        sheet.append(row)
        written += 1
    book.save(target)
    return written


def template_csv() -> bytes:
    return ("\ufeff" + ",".join(CHINESE_HEADERS) + "\r\n").encode("utf-8")


def template_xlsx() -> bytes:
    """An empty roster sheet with the Chinese headers, text-formatted ID and phone columns (so
    Excel keeps leading zeros and does not turn phones into 1.38E+10), drop-down lists for the
    coded columns, and a second sheet explaining each column (the import reads the first only)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "花名册"
    headers = list(CHINESE_HEADERS)
    sheet.append(headers)
    fill = PatternFill("solid", fgColor="E8F0FE")
    for index, title in enumerate(headers, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font, cell.fill, cell.alignment = Font(bold=True), fill, Alignment(horizontal="center")
        letter = cell.column_letter
        sheet.column_dimensions[letter].width = max(12, len(title) * 2 + 4)
        if title in ("工号", "手机"):
            for row in range(2, 1002):
                sheet.cell(row=row, column=index).number_format = "@"
    sheet.freeze_panes = "A2"
    for title, choices in (("居住类型", "自有,亲属,租赁,宿舍"), ("语言", "中文,英文")):
        letter = sheet.cell(row=1, column=headers.index(title) + 1).column_letter
        validation = DataValidation(type="list", formula1=f'"{choices}"', allow_blank=True)
        validation.add(f"{letter}2:{letter}5000")
        sheet.add_data_validation(validation)
    notes = book.create_sheet("填写说明")
    notes.append(["列名", "是否必填", "说明"])
    for line in _TEMPLATE_NOTES:
        notes.append(list(line))
    for letter, width in (("A", 18), ("B", 20), ("C", 40)):
        notes.column_dimensions[letter].width = width
    for cell in notes[1]:
        cell.font = Font(bold=True)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
