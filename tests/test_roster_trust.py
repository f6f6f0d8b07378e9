"""Where rosters come in from outside (CLI, API, web): an expiry never moves back by accident,
bad characters are row errors, thousands of bad rows cost a small answer, and an export
re-imports unchanged. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from worker.http.web.export import export_csv
from worker.planning.team_rows import Evaluator
from worker.store.db import unit_of_work
from worker.store.models import Holder

from .test_api import TODAY, Api, api, holder  # noqa: F401  (api: a fixture)
from .test_cli import Run, run  # noqa: F401  (run: a fixture)
from .test_web import Web, confirm, roster, upload, web  # noqa: F401  (web: a fixture)

EXPIRY = TODAY + timedelta(days=365)
HEADER = "external_id,name,phone,expires_on\n"


def _csv(*rows: str) -> str:
    return HEADER + "".join(f"{r}\n" for r in rows)


@pytest.fixture
def cli(run: Run, tmp_path: Path) -> Run:
    run("db", "upgrade")
    run("teams", "create", "acme", "--name", "Acme")
    first = tmp_path / "first.csv"
    first.write_text(_csv(f"E1,张三,13800138000,{EXPIRY}", f"E2,李四,13800138001,{EXPIRY}"), encoding="utf-8")
    run("holders", "import", str(first), "--team", "acme")
    return run


def _expiries(run: Run) -> dict[str, str]:
    import json
    lines = run("holders", "list", "--team", "acme", "--json").stdout.splitlines()
    return {d["external_id"]: d["expires_on"] for d in map(json.loads, lines)}


# -- an expiry never moves back by accident -----------------------------------------------------

def test_an_earlier_expiry_is_a_row_error_and_the_file_is_rejected_whole(cli: Run, tmp_path: Path) -> None:
    earlier = EXPIRY - timedelta(days=365)
    old = tmp_path / "last-month.csv"
    old.write_text(_csv(f"E1,张三,13800138000,{earlier}", f"E2,李四改,13800138001,{EXPIRY}"), encoding="utf-8")
    proc = cli("holders", "import", str(old), "--team", "acme", check=2)
    assert proc.stderr.splitlines()[0].startswith(
        f"row 2: expires_on: earlier than the expiry on file ({EXPIRY.isoformat()}); ")
    assert "--allow-earlier-expiry" in proc.stderr and "Traceback" not in proc.stderr
    assert _expiries(cli) == {"E1": EXPIRY.isoformat(), "E2": EXPIRY.isoformat()}
    # The explicit override corrects a typo: the earlier date goes in.
    cli("holders", "import", str(old), "--team", "acme", "--allow-earlier-expiry")
    assert _expiries(cli)["E1"] == earlier.isoformat()


def test_an_equal_expiry_is_unchanged_and_a_later_one_is_a_renewal(cli: Run, tmp_path: Path) -> None:
    same = tmp_path / "same.csv"
    same.write_text(_csv(f"E1,张三,13800138000,{EXPIRY}", f"E2,李四,13800138001,{EXPIRY + timedelta(days=1)}"),
                    encoding="utf-8")
    out = cli("holders", "import", str(same), "--team", "acme").stdout
    assert "0 new, 1 updated, 1 unchanged, 1 renewed" in out


def test_a_dry_run_shows_every_change_old_to_new_and_what_follows(cli: Run, tmp_path: Path) -> None:
    changed = tmp_path / "changed.csv"
    changed.write_text(_csv(f"E1,张三,13900139000,{EXPIRY}", f"E2,李四,13800138001,{EXPIRY + timedelta(days=365)}"),
                       encoding="utf-8")
    out = cli("holders", "import", str(changed), "--team", "acme", "--dry-run").stdout
    assert "row 2 E1: phone: +8613800138000 → +8613900139000" in out
    assert f"row 3 E2: expires_on: {EXPIRY} → {EXPIRY + timedelta(days=365)}  (renewed: a new cycle starts)" in out
    assert "would be sent at once" in out
    assert "1 holder(s) would lose auto-renewal this cycle" in out and "E1 (phone)" in out
    assert _expiries(cli)["E2"] == EXPIRY.isoformat()  # a dry run writes nothing


def test_the_api_refuses_an_earlier_expiry_with_422_unless_told(api: Api) -> None:
    assert api.client.post("/v1/holders", json=holder("E1", days=365), headers=api.a).status_code == 201
    older = f"external_id,phone,expires_on\nE1,13800138000,{TODAY + timedelta(days=10)}\n".encode()
    files = {"file": ("r.csv", older, "text/csv")}
    refused = api.client.post("/v1/holders/import", files=files, headers=api.a)
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert (error["row"], error["field"]) == (2, "expires_on")
    assert error["message"].startswith("earlier than the expiry on file")
    assert api.client.get("/v1/holders/E1", headers=api.a).json()["days_left"] == 365
    patched = api.client.patch("/v1/holders/E1", json={"expires_on": str(TODAY)}, headers=api.a)
    assert patched.status_code == 422
    allowed = api.client.post("/v1/holders/import?allow_earlier_expiry=true", files=files, headers=api.a)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["changes"][0]["changes"] == [
        {"field": "expires_on", "old": str(TODAY + timedelta(days=365)), "new": str(TODAY + timedelta(days=10))}]


def test_the_web_preview_lists_earlier_expiries_and_takes_them_only_when_ticked(web: Web) -> None:
    client, csrf = web.signed_in()
    confirm(client, csrf, upload(client, csrf, roster(("E1", "张三", "13800138000", str(EXPIRY)))))
    earlier = str(EXPIRY - timedelta(days=365))
    preview = upload(client, csrf, roster(("E1", "张三", "13900139000", earlier)))
    page = client.get(preview).text
    assert 'id="earlier"' in page and f"系统 {EXPIRY} → 文件 {earlier}" in page
    assert 'id="confirm-import"' not in page
    # Without the box ticked nothing changes; ticked, the preview is rebuilt with the override.
    assert client.post(preview + "/allow-earlier", data={"csrf": csrf}).headers["location"] == preview
    rebuilt = client.post(preview + "/allow-earlier", data={"csrf": csrf, "confirm_earlier": "yes"})
    page = client.get(rebuilt.headers["location"]).text
    assert 'id="earlier-allowed"' in page and 'id="confirm-import"' in page
    updated = page[page.index('id="pv-updated"'):]
    assert re.search(r"\+8613800138000</span> → <span class=\"new mono\">\+8613900139000", updated)
    assert 'id="losing"' in page  # the phone changed: auto-renewal is lost this cycle
    confirm(client, csrf, rebuilt.headers["location"])
    assert web.holders()["E1"].expires_on.isoformat() == earlier


# -- bad characters -------------------------------------------------------------------------------

def test_control_characters_in_a_roster_are_row_errors(cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "nul.csv"
    bad.write_bytes(_csv(f"E9,张\x00三,13800138009,{EXPIRY}", f"E8,李四,13800138008,{EXPIRY}").encode())
    proc = cli("holders", "import", str(bad), "--team", "acme", check=2)
    assert proc.stderr.splitlines()[0].startswith("row 2: name: contains a control character")
    assert set(_expiries(cli)) == {"E1", "E2"}


def test_a_multiline_address_keeps_its_line_breaks_but_not_a_nul(cli: Run, tmp_path: Path) -> None:
    ok = tmp_path / "address.csv"
    ok.write_text(f'external_id,phone,expires_on,address\nE3,13800138003,{EXPIRY},"浦东新区\n1号"\n', encoding="utf-8")
    cli("holders", "import", str(ok), "--team", "acme")
    bad = tmp_path / "address-nul.csv"
    bad.write_text(f'external_id,phone,expires_on,address\nE4,13800138004,{EXPIRY},"浦东\x00新区"\n', encoding="utf-8")
    assert "row 2: address: contains a control character" in cli("holders", "import", str(bad), "--team", "acme",
                                                                 check=2).stderr


@pytest.mark.parametrize("path", ["/v1/holders/E%001", "/v1/holders?stage=valid%00", "/v1/holders/E1/notifications%01"])
def test_control_characters_in_a_url_are_422_never_500(api: Api, path: str) -> None:
    response = api.client.get(path, headers=api.a)
    assert response.status_code == 422
    assert "control character" in response.json()["errors"][0]["message"]


def test_control_characters_in_an_api_body_are_422_and_change_nothing(api: Api) -> None:
    response = api.client.post("/v1/holders", json=holder("E1", name="张\x00三", employer="Acme\x07"), headers=api.a)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"name", "employer"}
    assert api.client.get("/v1/holders/E1", headers=api.a).status_code == 404


def test_control_characters_in_a_page_url_or_form_are_a_page_never_a_500(web: Web) -> None:
    client, csrf = web.signed_in()
    confirm(client, csrf, upload(client, csrf, roster(("E1", "张三", "13800138000", str(EXPIRY)))))
    assert client.get("/web/holders?q=%00").status_code == 400
    assert client.get("/web/holder?id=E1%00").status_code == 400
    edited = client.post("/web/holder/contact?id=E1", data={"csrf": csrf, "name": "张\x00三", "phone": "13800138000",
                                                            "email": "", "locale": "zh-CN"})
    assert edited.status_code == 422 and "控制字符" in edited.text
    assert web.holders()["E1"].name == "张三"


# -- thousands of bad rows ----------------------------------------------------------------------

def _many_bad_rows() -> bytes:
    rows = [f"B{i},x,1380013{i:04d}0,{EXPIRY}" if i % 2 else f"B{i},x,13800138000,2026-02-30" for i in range(5000)]
    return _csv(*rows).encode()


def test_thousands_of_bad_rows_get_the_first_100_and_a_count_per_reason(cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_many_bad_rows())
    proc = cli("holders", "import", str(bad), "--team", "acme", check=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 102  # 100 errors, one line of counts, the final error line
    assert lines[100].startswith("and 4900 more (5000 in all): ")
    assert "2500 × phone: not a mainland China mobile number" in lines[100]
    assert "2500 × expires_on: not a real calendar date" in lines[100]
    assert lines[101] == "permit-worker: error: 5000 bad row(s); nothing was imported"


def test_the_api_lists_100_of_thousands_of_bad_rows_and_counts_them_all(api: Api) -> None:
    response = api.client.post("/v1/holders/import", files={"file": ("bad.csv", _many_bad_rows(), "text/csv")},
                               headers=api.a)
    body = response.json()
    assert response.status_code == 422 and len(body["errors"]) == 100 and body["total"] == 5000
    assert {(c["field"], c["count"]) for c in body["by_reason"]} == {("phone", 2500), ("expires_on", 2500)}


# -- round trip ------------------------------------------------------------------------------------

def test_an_export_imports_again_as_all_unchanged(web: Web) -> None:
    client, csrf = web.signed_in()
    tricky = roster(("E1", "=HYPERLINK(\"x\")", "13800138000", str(EXPIRY), "-负号", "租赁", "@acme"),
                    ("E2", "+李四", "13800138001", str(EXPIRY + timedelta(days=3)), "", "自有", "Acme"),
                    header=("工号", "姓名", "手机", "居住证有效期至", "居住地址", "居住类型", "用人单位"))
    confirm(client, csrf, upload(client, csrf, tricky))
    for lang in ("zh-CN", "en"):
        client.cookies.set("pw_lang", lang, path="/web")
        exported = client.get("/web/export.csv").content
        assert "'=HYPERLINK" in exported.decode("utf-8-sig")  # escaped against formula injection
        page = client.get(upload(client, csrf, exported, name="export.csv")).text
        assert re.search(r'id="count-unchanged">2<', page) and re.search(r'id="count-updated">0<', page), lang
    assert web.holders()["E1"].name == '=HYPERLINK("x")' and web.holders()["E2"].name == "+李四"


def test_the_export_function_round_trips_through_the_roster_parser(web: Web) -> None:
    from datetime import UTC, datetime

    from worker.registry.roster import parse_roster

    client, csrf = web.signed_in()
    confirm(client, csrf, upload(client, csrf, roster(("E1", "-3天", "13800138000", str(EXPIRY)))))
    with unit_of_work(web.runtime.factory) as session:
        holders = list(session.scalars(select(Holder)))
        data = export_csv(holders, Evaluator(web.runtime.policy, web.runtime.settings.tz, datetime.now(UTC)), "zh-CN")
    [row] = parse_roster(data)
    assert row.name == "-3天" and row.phone == "+8613800138000"
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1][1] == "'-3天"


def test_the_web_preview_lists_100_of_thousands_of_bad_rows_with_counts(web: Web) -> None:
    client, csrf = web.signed_in()
    page = client.get(upload(client, csrf, _many_bad_rows(), name="bad.csv")).text
    rejected = page[page.index('id="rejected"'):page.index('id="rejected-counts"')]
    assert rejected.count('class="rejected-row"') == 100
    counts = page[page.index('id="rejected-counts"'):]
    assert "共 5000 处问题" in counts and "× 2500" in counts


# -- what reaches the log -----------------------------------------------------------------------

def test_the_access_log_omits_query_strings(api: Api) -> None:
    from worker.ops.logs import configure_logging

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        api.client.get("/v1/holders?stage=valid&q=13800138000", headers=api.a)
    finally:
        configure_logging("INFO", "console")
    ours = [line for line in stream.getvalue().splitlines() if '"logger": "httpx"' not in line]  # the test's client
    lines = [line for line in ours if '"http.request"' in line]
    assert lines and '"path": "/v1/holders"' in lines[-1]
    assert not any("13800138000" in line or "stage=valid" in line for line in ours)


def test_database_errors_never_carry_the_statements_values(factory) -> None:
    from sqlalchemy import text as sql
    from sqlalchemy.exc import SQLAlchemyError

    with pytest.raises(SQLAlchemyError) as raised, unit_of_work(factory) as session:
        session.execute(sql("INSERT INTO teams (id, slug, name) VALUES (:i, :s, :n)"),
                        {"i": "not-a-number", "s": None, "n": "欧阳独特"})
    assert "欧阳独特" not in str(raised.value) and "hidden" in str(raised.value)
