"""A sample roster relative to today, so `permit-worker demo seed` shows every stage at once."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

# (external_id, name, phone, email, days until expiry, housing, rental registration offset,
#  locale). The days put each holder on a touch day, so a scan today sends to most of them.
_PEOPLE = [
    ("D001", "王芳", "13800000001", "", 45, "own", None, "zh-CN"),
    ("D002", "李强", "13800000002", "li.qiang@example.com", 30, "rental", 400, "zh-CN"),
    ("D003", "张伟", "13800000003", "", 15, "own", None, "zh-CN"),
    ("D004", "刘洋", "13800000004", "", 15, "rental", 5, "zh-CN"),  # registration ends first
    ("D005", "陈静", "13800000005", "", 10, "dormitory", None, "zh-CN"),
    ("D006", "Emma Clarke", "", "emma.clarke@example.com", 3, "relative", None, "en"),
    ("D007", "杨磊", "13800000007", "", 0, "rental", 200, "zh-CN"),
    ("D008", "赵敏", "13800000008", "", -1, "own", None, "zh-CN"),
    ("D009", "黄勇", "13800000009", "", -30, "rental", 300, "zh-CN"),
    ("D010", "周杰", "13800000010", "", -61, "relative", None, "zh-CN"),
    ("D011", "吴霞", "13800000011", "", -80, "dormitory", None, "zh-CN"),
    ("D012", "Lukas Meyer", "13800000012", "lukas@example.com", -91, "rental", 100, "en"),
]

HEADER = ["external_id", "name", "phone", "email", "expires_on", "housing_type",
          "rental_registration_ends_on", "address", "employer", "locale"]


def sample_roster_csv(today: date) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for ext_id, name, phone, email, days, housing, rental_days, locale in _PEOPLE:
        expires = today + timedelta(days=days)
        rental = (today + timedelta(days=rental_days)).isoformat() if rental_days is not None else ""
        writer.writerow([ext_id, name, phone, email, expires.isoformat(), housing, rental,
                         f"上海市浦东新区示例路{ext_id[-2:]}号", "示例科技有限公司", locale])
    return out.getvalue()
