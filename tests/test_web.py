"""The HR pages over HTTP (FastAPI's test client) against a real registry: sign-in and session
cookies, CSRF, team isolation by guessed URL, preview-then-commit uploads, CSV export escaping,
and failures shown as pages, never as stack traces."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import records as registry
from worker.registry.roster import CHINESE_HEADERS
from worker.registry.roster_xlsx import parse_upload
from worker.store.db import unit_of_work
from worker.store.models import AppMeta, Holder, Notification

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Web:
    runtime: Runtime
    app: object
    tokens: dict[str, str]  # team slug -> API token

    def client(self, base_url: str = "http://testserver") -> TestClient:
        return TestClient(self.app, base_url=base_url, raise_server_exceptions=False,  # type: ignore[arg-type]
                          follow_redirects=False)

    def signed_in(self, slug: str = "acme") -> tuple[TestClient, str]:
        client = self.client()
        return client, sign_in(client, self.tokens[slug])

    def holders(self, slug: str = "acme") -> dict[str, Holder]:
        with unit_of_work(self.runtime.factory) as session:
            team = registry.get_team(session, slug)
            return {h.external_id: h for h in registry.holders_of(session, team)}


def make_web(db_url: str, **settings: object) -> Web:
    runtime = Runtime(Settings(database_url=db_url, **settings))  # type: ignore[arg-type]
    tokens = {}
    with unit_of_work(runtime.factory) as session:
        for slug in ("acme", "beta"):
            tokens[slug] = registry.issue_token(session, registry.create_team(session, slug, slug.title(), None))
    return Web(runtime, create_app(runtime), tokens)


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    built = make_web(db_url)
    yield built
    built.runtime.engine.dispose()


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    csrf = csrf_of(client.get("/web/login").text)
    response = client.post("/web/login", data={"token": token, "csrf": csrf})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/web/").text)


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def roster(*rows: tuple[str, ...], header: tuple[str, ...] = ("工号", "姓名", "手机", "居住证有效期至")) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode("utf-8")


def upload(client: TestClient, csrf: str, data: bytes, name: str = "roster.csv") -> str:
    """Upload a roster; returns the preview's path."""
    response = client.post("/web/upload", data={"csrf": csrf}, files={"file": (name, data, "text/csv")})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def confirm(client: TestClient, csrf: str, preview: str) -> None:
    response = client.post(preview + "/confirm", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/web/", response.text


STANDARD = roster(("E1", "张三", "13800138000", day(60)), ("E2", "李四", "13800138001", day(5)),
                  ("E3", "王五", "13800138002", day(-10)))


def imported(web: Web, slug: str = "acme", data: bytes = STANDARD) -> tuple[TestClient, str]:
    client, csrf = web.signed_in(slug)
    confirm(client, csrf, upload(client, csrf, data))
    return client, csrf


# -- sign-in and the session cookie -------------------------------------------------------------

def test_pages_need_sign_in(web: Web) -> None:
    client = web.client()
    for path in ("/web/", "/web/holders", "/web/holder?id=E1", "/web/upload", "/web/export.csv", "/web/template.xlsx"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/web/login?next="), path
    assert client.get("/web").headers["location"] == "/web/"


def test_a_wrong_token_is_refused_in_place(web: Web) -> None:
    client = web.client()
    csrf = csrf_of(client.get("/web/login").text)
    response = client.post("/web/login", data={"token": "pwt_nope", "csrf": csrf})
    assert response.status_code == 401 and "令牌无效" in response.text
    assert client.get("/web/").status_code == 303  # still signed out


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(web: Web) -> None:
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        client = web.client(base)
        csrf = csrf_of(client.get("/web/login").text)
        response = client.post("/web/login", data={"token": web.tokens["acme"], "csrf": csrf})
        cookie = response.headers["set-cookie"].lower()
        assert response.headers["location"] == "/web/"
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/web" in cookie
        assert ("secure" in [a.strip() for a in cookie.split(";")]) is secure
        assert "acme" not in cookie and web.tokens["acme"].lower() not in cookie  # ids only, signed


def test_sign_in_issues_a_new_session_and_csrf_token(web: Web) -> None:
    client = web.client()
    before = csrf_of(client.get("/web/login").text)
    after = sign_in(client, web.tokens["acme"])
    assert before != after  # a session planted before sign-in is worthless


def test_sign_out_ends_the_session_even_for_a_copied_cookie(web: Web) -> None:
    client, csrf = web.signed_in()
    stolen = client.cookies.get("pw_session")
    response = client.post("/web/logout", data={"csrf": csrf})
    assert response.status_code == 303 and 'pw_session=""' in response.headers["set-cookie"]
    replay = web.client()
    replay.cookies.set("pw_session", stolen or "", path="/web")
    assert replay.get("/web/").status_code == 303


def test_rotating_the_token_ends_web_sessions(web: Web) -> None:
    client, _ = web.signed_in()
    with unit_of_work(web.runtime.factory) as session:
        registry.issue_token(session, registry.get_team(session, "acme"))
    assert client.get("/web/").headers["location"].startswith("/web/login")


def test_the_session_key_is_generated_once_or_taken_from_the_environment(db_url: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERMIT_SESSION_SECRET")  # the embedded default's own key
    first = make_web(db_url)
    client, _ = first.signed_in()
    with unit_of_work(first.runtime.factory) as session:
        stored = session.scalar(select(AppMeta.value).where(AppMeta.key == "web_session_secret"))
    assert stored and len(stored) == 64
    restarted = TestClient(create_app(Runtime(first.runtime.settings)), follow_redirects=False)
    restarted.cookies.set("pw_session", client.cookies.get("pw_session") or "", path="/web")
    assert restarted.get("/web/").status_code == 200  # same database, same key: still signed in
    other_key = TestClient(create_app(Runtime(Settings(database_url=db_url, session_secret="x" * 40))),
                           follow_redirects=False)
    other_key.cookies.set("pw_session", client.cookies.get("pw_session") or "", path="/web")
    assert other_key.get("/web/").status_code == 303
    first.runtime.engine.dispose()


# -- CSRF -------------------------------------------------------------------------------------

def test_every_form_post_needs_the_session_csrf_token(web: Web) -> None:
    client, csrf = imported(web)
    _, other_csrf = web.signed_in("acme")  # a valid token, but another session's
    posts = [("/web/holder/delete?id=E1", {}), ("/web/holder/renewal?id=E1", {"expires_on": day(400)}),
             ("/web/holder/contact?id=E1", {"name": "改名", "phone": "13800138000"}), ("/web/logout", {})]
    for path, form in posts:
        for token in (None, "forged", other_csrf):
            data = dict(form) if token is None else {**form, "csrf": token}
            response = client.post(path, data=data)
            assert response.status_code == 403, (path, token)
            assert "text/html" in response.headers["content-type"]
    cross_site = client.post("/web/holder/delete?id=E1", data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    refused = client.post("/web/upload", files={"file": ("r.csv", STANDARD, "text/csv")})
    assert refused.status_code == 403
    holder = web.holders()["E1"]
    assert holder.name == "张三" and holder.expires_on.isoformat() == day(60)


def test_sign_in_itself_needs_the_csrf_token(web: Web) -> None:
    client = web.client()
    client.get("/web/login")
    assert client.post("/web/login", data={"token": web.tokens["acme"]}).status_code == 403


# -- teams see only their own ------------------------------------------------------------------

def test_another_team_sees_nothing_by_page_or_by_guessed_url(web: Web) -> None:
    acme, acme_csrf = imported(web)
    pending = upload(acme, acme_csrf, roster(("E9", "赵九", "13800138009", day(90))))
    beta, beta_csrf = web.signed_in("beta")
    assert "张三" not in beta.get("/web/").text
    assert "张三" not in beta.get("/web/holders?q=E").text
    for path in ("/web/holder?id=E1", "/web/holder?id=E2"):
        response = beta.get(path)
        assert response.status_code == 404 and "张三" not in response.text and "李四" not in response.text
    for path, form in (("/web/holder/renewal?id=E1", {"expires_on": day(400)}), ("/web/holder/delete?id=E1", {}),
                       ("/web/holder/contact?id=E1", {"name": "X", "phone": "13800138000"})):
        assert beta.post(path, data={**form, "csrf": beta_csrf}).status_code == 404
    guessed = beta.get(pending)
    assert guessed.status_code == 404 and "预览已失效" in guessed.text and "赵九" not in guessed.text
    assert beta.post(pending + "/confirm", data={"csrf": beta_csrf}).status_code == 404
    export = beta.get("/web/export.csv").content.decode("utf-8-sig")
    assert export.count("\n") == 1 and "E1" not in export
    assert set(web.holders()) == {"E1", "E2", "E3"} and web.holders("beta") == {}
    assert web.holders()["E1"].name == "张三"
    # Even the same team, in another browser session, cannot confirm someone else's upload.
    colleague, colleague_csrf = web.signed_in("acme")
    assert colleague.post(pending + "/confirm", data={"csrf": colleague_csrf}).status_code == 404
    assert "E9" not in web.holders()


# -- uploads: preview first, write on confirm ---------------------------------------------------

def test_an_upload_is_previewed_and_written_only_when_confirmed(web: Web) -> None:
    client, csrf = web.signed_in()
    preview = upload(client, csrf, STANDARD)
    page = client.get(preview)
    assert page.status_code == 200 and 'id="confirm-import"' in page.text
    assert re.search(r'id="count-new">3<', page.text) and "王五" in page.text
    assert web.holders() == {}  # nothing written yet
    confirm(client, csrf, preview)
    assert set(web.holders()) == {"E1", "E2", "E3"}
    with unit_of_work(web.runtime.factory) as session:  # events.handle ran: in-stage holders enqueued
        assert session.scalar(select(func.count()).select_from(Notification)) == 2
    assert "新增 3 人" in client.get("/web/").text
    assert client.post(preview + "/confirm", data={"csrf": csrf}).status_code == 404  # used up


def test_the_preview_shows_updated_unchanged_and_renewed_rows(web: Web) -> None:
    client, csrf = imported(web)
    changed = roster(("E1", "张三", "13900139000", day(60)), ("E2", "李四", "13800138001", day(5)),
                     ("E3", "王五", "13800138002", day(355)))
    page = client.get(upload(client, csrf, changed)).text
    assert re.search(r'id="count-updated">2<', page) and re.search(r'id="count-unchanged">1<', page)
    updated = page[page.index('id="pv-updated"'):]
    assert "手机" in updated and "已续签" in updated
    assert web.holders()["E1"].phone == "+8613800138000"  # still only a preview
    action = re.search(r'action="(/web/upload/[^"]+/cancel)"', page)
    assert action
    assert client.post(action.group(1), data={"csrf": csrf}).headers["location"] == "/web/upload"
    assert web.holders()["E1"].phone == "+8613800138000"


def test_bad_rows_are_listed_with_their_reasons_and_block_the_import(web: Web) -> None:
    client, csrf = web.signed_in()
    bad = roster(("E1", "张三", "13800138000", day(60)), ("E2", "李四", "1380013800", day(5)),
                 ("E3", "王五", "13800138002", "2026-02-30"))
    preview = upload(client, csrf, bad)
    page = client.get(preview).text
    assert "不是有效的中国大陆手机号" in page and "日期不存在" in page
    rejected = page[page.index('id="rejected"'):]
    assert re.search(r">\s*3\s*</td>\s*<td[^>]*>手机</td>", rejected)  # row 3, the phone column
    assert re.search(r'id="count-new">1<', page)  # what the good row would do
    assert 'id="confirm-import"' not in page
    assert client.post(preview + "/confirm", data={"csrf": csrf}).headers["location"] == preview
    assert web.holders() == {}
    client.cookies.set("pw_lang", "en", path="/web")
    assert "not a mainland China mobile number" in client.get(preview).text


def test_an_unreadable_file_or_no_file_is_explained_in_place(web: Web) -> None:
    client, csrf = web.signed_in()
    page = client.get(upload(client, csrf, b"PK\x03\x04 not really a workbook", name="花名册.xlsx")).text
    assert "不是可读取的 .xlsx 文件" in page
    missing = roster(("E1", "13800138000"), header=("工号", "手机"))
    assert "缺少此列" in client.get(upload(client, csrf, missing)).text
    empty = client.post("/web/upload", data={"csrf": csrf}, files={"file": ("r.csv", b"", "text/csv")})
    assert empty.status_code == 422 and "请先选择文件" in empty.text


def test_a_big_roster_gets_the_upload_size_limit_not_the_form_limit(web: Web) -> None:
    client, csrf = web.signed_in()
    rows = [(f"E{i:05d}", f"员工{i}", f"1380013{i:04d}", day(200), "上海某某科技有限公司" * 3) for i in range(2000)]
    data = roster(*rows, header=("工号", "姓名", "手机", "居住证有效期至", "用人单位"))
    assert len(data) > web.runtime.settings.api_max_body_bytes
    page = client.get(upload(client, csrf, data)).text
    assert re.search(r'id="count-new">2000<', page) and "另有 1800 行未显示" in page


# -- pages for one holder ---------------------------------------------------------------------

def test_confirm_a_renewal_with_errors_in_place(web: Web) -> None:
    client, csrf = imported(web)
    earlier = client.post("/web/holder/renewal?id=E2", data={"csrf": csrf, "expires_on": day(1)})
    assert earlier.status_code == 422 and "必须晚于当前有效期" in earlier.text and "李四" in earlier.text
    garbage = client.post("/web/holder/renewal?id=E2", data={"csrf": csrf, "expires_on": "明天"})
    assert garbage.status_code == 422 and "请填写有效日期" in garbage.text
    done = client.post("/web/holder/renewal?id=E2", data={"csrf": csrf, "expires_on": day(370)})
    assert done.headers["location"] == "/web/holder?id=E2"
    assert "已确认签注" in client.get("/web/holder?id=E2").text
    assert web.holders()["E2"].expires_on.isoformat() == day(370)


def test_edit_contact_details_with_roster_validation(web: Web) -> None:
    client, csrf = imported(web)
    form = {"csrf": csrf, "name": "张三", "phone": "12345", "email": "", "locale": "zh-CN"}
    bad = client.post("/web/holder/contact?id=E1", data=form)
    assert bad.status_code == 422 and "不是有效的中国大陆手机号" in bad.text and 'value="12345"' in bad.text
    ok = client.post("/web/holder/contact?id=E1", data={**form, "phone": "13800138000", "email": "zs@example.com"})
    assert ok.status_code == 303
    holder = web.holders()["E1"]
    assert holder.email == "zs@example.com" and holder.changed_fields == frozenset()


def test_the_wecom_account_is_edited_with_the_same_check_as_the_roster(web: Web) -> None:
    client, csrf = imported(web)
    form = {"csrf": csrf, "name": "张三", "phone": "13800138000", "email": "", "locale": "zh-CN"}
    bad = client.post("/web/holder/contact?id=E1", data={**form, "wecom_userid": "张 三"})
    assert bad.status_code == 422 and "不是有效的企业微信账号" in bad.text
    assert web.holders()["E1"].wecom_userid is None
    assert client.post("/web/holder/contact?id=E1", data={**form, "wecom_userid": "zhangsan"}).status_code == 303
    assert web.holders()["E1"].wecom_userid == "zhangsan"
    assert "zhangsan" in client.get("/web/holder?id=E1").text


def test_delete_a_holder(web: Web) -> None:
    client, csrf = imported(web)
    response = client.post("/web/holder/delete?id=E3", data={"csrf": csrf})
    assert response.headers["location"] == "/web/holders"
    assert "E3" not in web.holders()
    assert client.get("/web/holder?id=E3").status_code == 404


def test_the_overview_lists_who_needs_attention_most_urgent_first(web: Web) -> None:
    client, _ = imported(web, data=roster(("V", "有效", "13800138000", day(90)), ("P", "本人", "13800138001", day(8)),
                                          ("Q", "很急", "13800138002", day(1)), ("G", "逾期", "13800138003", day(-5)),
                                          ("L", "失效", "13800138004", day(-200))))
    page = client.get("/web/").text
    attention = page[page.index('id="attention"'):]
    assert re.findall(r'<tr data-id="([^"]+)"', attention) == ["Q", "P", "G"]
    assert re.search(r'data-stage="renew_in_person">\s*<span class="stat-label">[^<]+</span>\s*'
                     r'<span class="stat-value">2<', page)


def test_search_by_id_name_phone_or_stage(web: Web) -> None:
    client, _ = imported(web)

    def found(**params: str) -> list[str]:
        page = client.get("/web/holders", params=params).text
        return re.findall(r'<tr data-id="([^"]+)"', page)

    assert found(q="李") == ["E2"] and found(q="e3") == ["E3"]
    assert found(q="138 0013 8001") == ["E2"]  # as HR types a phone
    assert found(q="%") == [] and found(stage="expired_grace") == ["E3"]
    assert found() == ["E3", "E2", "E1"]  # by expiry


# -- downloads --------------------------------------------------------------------------------

def test_the_export_is_safe_from_formula_injection(web: Web) -> None:
    hostile = roster(("E1", "=HYPERLINK(\"http://evil\",\"x\")", "13800138000", day(-3), "+SUM(A1:A9)"),
                     ("E2", "@cmd", "13800138001", day(30), "-2+3"), ("E3", "王五", "13800138002", day(9), "\t=1"),
                     header=("工号", "姓名", "手机", "居住证有效期至", "用人单位"))
    client, _ = imported(web, data=hostile)
    response = client.get("/web/export.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["工号", "姓名", "手机", "邮箱", "居住证有效期至"]
    by_id = {r[0]: r for r in rows[1:]}
    for cell in [c for r in rows[1:] for c in r]:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        assert not cell.startswith("-") or re.fullmatch(r"-[0-9]+", cell), cell
    assert by_id["E1"][1] == "'=HYPERLINK(\"http://evil\",\"x\")" and by_id["E2"][1] == "'@cmd"
    assert "'+SUM(A1:A9)" in by_id["E1"] and "'-2+3" in by_id["E2"]
    assert by_id["E1"][2] == "13800138000" and "-3" in by_id["E1"]  # plain numbers stay numbers


def test_the_templates_have_the_chinese_headers_and_import_once_filled_in(web: Web) -> None:
    client, _ = web.signed_in()
    response = client.get("/web/template.xlsx")
    assert response.status_code == 200 and "filename*=UTF-8''" in response.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = book.worksheets[0]
    assert [c.value for c in sheet[1]] == list(CHINESE_HEADERS)
    sheet.append(["E1", "张三", "13800138000", None, day(30), "租赁", None, None, None, "中文"])
    out = io.BytesIO()
    book.save(out)
    [row] = parse_upload("t.xlsx", None, out.getvalue())
    assert (row.external_id, row.housing_type, row.locale) == ("E1", "rental", "zh-CN")
    text = client.get("/web/template.csv").content.decode("utf-8-sig")
    assert text.strip().split(",") == list(CHINESE_HEADERS)


# -- failures are pages -----------------------------------------------------------------------

def test_failures_are_pages_never_stack_traces(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = web.signed_in()
    for path, status in (("/web/nope", 404), ("/web/holders?page=abc", 400), ("/web/holder", 400),
                         ("/web/upload/not-an-id", 404)):
        response = client.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html") and "Traceback" not in response.text

    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr("worker.http.web.routes.overview", explode)
    response = client.get("/web/")
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text and "secret detail" not in response.text and "服务器暂时出错" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")


def test_the_language_switch_and_no_open_redirects(web: Web) -> None:
    client, _ = web.signed_in()
    response = client.get("/web/lang/en", params={"next": "/web/holders"})
    assert response.headers["location"] == "/web/holders" and "pw_lang=en" in response.headers["set-cookie"]
    assert "Employees" in client.get("/web/holders").text
    for target in ("https://evil.example/", "//evil.example/web", "/v1/holders"):
        assert client.get("/web/lang/zh-CN", params={"next": target}).headers["location"] == "/web/"
    fresh = web.client()
    csrf = csrf_of(fresh.get("/web/login").text)
    response = fresh.post("/web/login", data={"token": web.tokens["acme"], "csrf": csrf, "next": "https://evil.example"})
    assert response.headers["location"] == "/web/"


def test_a_holder_is_paused_and_resumed_from_their_page(web: Web) -> None:
    client, csrf = imported(web)
    until = (TODAY + timedelta(days=60)).isoformat()
    past = client.post("/web/holder/pause?id=E1", data={"csrf": csrf, "until": "2001-01-01", "reason": ""})
    assert past.status_code == 422 and "暂停截止日 2001-01-01 已经过去" in past.text and "--until" not in past.text
    far = client.post("/web/holder/pause?id=E1", data={"csrf": csrf, "until": "2099-01-01", "reason": ""})
    assert far.status_code == 422 and "超过两年" in far.text
    client.cookies.set("pw_lang", "en", path="/web")
    past_en = client.post("/web/holder/pause?id=E1", data={"csrf": csrf, "until": "2001-01-01", "reason": ""})
    assert past_en.status_code == 422 and "2001-01-01 is in the past" in past_en.text and "--until" not in past_en.text
    not_paused = client.post("/web/holder/resume?id=E1", data={"csrf": csrf})
    assert not_paused.status_code == 422 and "not paused" in not_paused.text
    client.cookies.set("pw_lang", "zh-CN", path="/web")
    assert client.post("/web/holder/pause?id=E1", data={"csrf": csrf, "until": until, "reason": "产假"}).status_code == 303
    page = client.get("/web/holder?id=E1").text
    assert f"提醒已暂停至 {until}（产假）" in page and "恢复提醒" in page
    assert web.holders()["E1"].paused_until.isoformat() == until
    assert client.post("/web/holder/resume?id=E1", data={"csrf": csrf}).status_code == 303
    assert web.holders()["E1"].paused_until is None
    assert client.post("/web/holder/pause?id=E1", data={"csrf": "wrong", "until": until}).status_code == 403


HOUSED = ("工号", "姓名", "手机", "居住证有效期至", "居住类型")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize(("offset", "stage", "deadline", "material"), [
    (90, "valid", None, None),
    (25, "upcoming", "expires_on", "租赁备案"),
    (5, "renew_in_person", "expires_on", "租赁备案"),
    (-20, "expired_grace", "grace_ends_on", "租赁备案"),
    (-70, "accumulation_reset", "reset_ends_on", "租赁备案"),
    (-200, "lapsed", None, None),
])
def test_the_holder_page_says_what_to_do_by_when_in_every_stage(web: Web, lang: str, offset: int, stage: str,
                                                                 deadline: str | None, material: str | None) -> None:
    client, _ = imported(web, data=roster(("E1", "张三", "13800138000", day(offset), "租赁"), header=HOUSED))
    client.cookies.set("pw_lang", lang, path="/web")
    page = client.get("/web/holder?id=E1").text
    todo = page[page.index('id="todo"'):page.index('class="grid-2"')]
    assert 'id="todo-what"' in todo and 'id="todo-planned"' in todo
    if deadline is None:
        assert 'id="todo-deadline"' not in todo and 'id="todo-materials"' not in todo
        return
    assert 'id="todo-deadline"' in todo and 'id="todo-last-day"' in todo
    words = {"zh-CN": ("所需材料", "最后可办理的工作日", material), "en": ("Materials to bring", "Last working day", "租赁备案")}
    assert all(w in todo for w in words[lang]), todo


def test_the_holder_page_shows_the_text_each_reminder_carried(web: Web) -> None:
    from worker.delivery.dispatch import Dispatcher
    from worker.planning.scan import scan

    from .support import RecordingNotifier

    client, _ = imported(web, data=roster(("E1", "张三", "13800138000", "", day(25)),
                                          ("E2", "李四", "", "li@example.com", day(25)),
                                          header=("工号", "姓名", "手机", "邮箱", "居住证有效期至")))
    notifier = RecordingNotifier()
    scan(web.runtime.factory, web.runtime.policy, web.runtime.settings.tz)
    dispatcher = Dispatcher(web.runtime.factory, {"sms": notifier, "email": notifier}, web.runtime.policy,
                            web.runtime.settings.tz, send_window=web.runtime.settings.send_window_override())
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=10, minute=0)
    while dispatcher.dispatch_one(now) is not None:
        pass
    sent = {m.to: m for m in notifier.sent}
    assert set(sent) == {"+8613800138000", "li@example.com"}
    for external_id, to in (("E1", "+8613800138000"), ("E2", "li@example.com")):
        page = client.get(f"/web/holder?id={external_id}").text
        history = page[page.index('id="history"'):]
        assert 'class="message-row"' in history and ("消息内容" in history)
        body = re.search(r'<pre class="message-body">(.*?)</pre>', history, re.S)
        assert body and html.unescape(body.group(1)) == sent[to].body
        if sent[to].subject:
            assert html.escape(sent[to].subject) in history


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_holder_page_lists_what_hr_prepares_when_a_points_renewal_is_near(web: Web, lang: str) -> None:
    client, _ = imported(web)
    client.cookies.set("pw_lang", lang, path="/web")
    with unit_of_work(web.runtime.factory) as session:
        session.execute(Holder.__table__.update().where(Holder.external_id == "E1").values(
            points_basis="education", points_valid_until=TODAY + timedelta(days=30)))
        session.execute(Holder.__table__.update().where(Holder.external_id == "E2").values(
            points_basis="education", points_valid_until=TODAY + timedelta(days=100)))
    near = client.get("/web/holder?id=E1").text
    materials = near[near.index('id="todo-points-materials"'):near.index('id="todo-planned"')]
    words = {"zh-CN": ("申报单位介绍信", "加盖单位公章", "人才服务中心"),
             "en": ("letter of introduction", "company seal", "talent service centre")}[lang]
    assert all(w in materials for w in words), materials
    assert 'id="todo-points-materials"' not in client.get("/web/holder?id=E2").text


def test_the_team_page_sends_a_marked_test_message_and_says_what_the_provider_answered(web: Web) -> None:
    client, csrf = web.signed_in()
    page = client.get("/web/team")
    assert page.status_code == 200 and 'data-channel="sms"' in page.text and "console" in page.text
    sent = client.post("/web/team/test-message", data={"csrf": csrf, "to": "138 0013 8000"})
    assert sent.status_code == 303 and sent.headers["location"] == "/web/team"
    shown = client.get("/web/team").text
    alert = re.search(r'<div class="alert alert-ok"[^>]*>(.*?)</div>', shown, re.S)
    assert alert and "console" in alert.group(1) and "sent" in alert.group(1)
    assert "13800138000" not in alert.group(1)  # the address is masked in what the page says back
    bad = client.post("/web/team/test-message", data={"csrf": csrf, "to": "not an address!"})
    assert bad.status_code == 303 and "无法发送测试" in client.get("/web/team").text
    assert client.post("/web/team/test-message", data={"csrf": "wrong", "to": "a@b.example"}).status_code == 403
    for _ in range(3):  # five in all, then one a minute
        client.post("/web/team/test-message", data={"csrf": csrf, "to": "hr@acme.example"})
    client.post("/web/team/test-message", data={"csrf": csrf, "to": "hr@acme.example"})
    assert "测试消息发送太频繁" in client.get("/web/team").text
    other, other_csrf = web.signed_in("beta")  # another team has its own allowance
    other.post("/web/team/test-message", data={"csrf": other_csrf, "to": "hr@beta.example"})
    assert "alert-ok" in other.get("/web/team").text


def test_a_full_roster_lists_the_leavers_and_deletes_only_them_once_ticked(web: Web) -> None:
    client, csrf = imported(web)  # E1, E2, E3
    imported(web, "beta")  # another team's E2 must survive
    data = roster(("E1", "张三", "13800138000", day(60)), ("E3", "王五", "13800138002", day(-10)))
    response = client.post("/web/upload", data={"csrf": csrf, "full_roster": "yes"},
                           files={"file": ("full.csv", data, "text/csv")})
    preview = response.headers["location"]
    page = client.get(preview).text
    start = page.index('id="leavers"')
    leavers = page[start:page.index("</div>", start)]
    assert 'data-id="E2"' in leavers and "李四" in leavers and 'data-id="E1"' not in leavers
    assert 'name="confirm_leavers"' in page
    # Without the tick nothing is written at all.
    assert client.post(preview + "/confirm", data={"csrf": csrf}).headers["location"] == preview
    assert set(web.holders()) == {"E1", "E2", "E3"}
    assert "请勾选确认删除离职员工" in client.get(preview).text
    done = client.post(preview + "/confirm", data={"csrf": csrf, "confirm_leavers": "yes"})
    assert done.status_code == 303 and done.headers["location"] == "/web/"
    assert set(web.holders()) == {"E1", "E3"} and set(web.holders("beta")) == {"E1", "E2", "E3"}
    assert "已删除 1 名离职员工" in client.get("/web/").text
    # The same file without the box deletes nobody, and says nothing about leavers.
    plain = upload(client, csrf, roster(("E1", "张三", "13800138000", day(60))))
    assert 'id="leavers"' not in client.get(plain).text
    confirm(client, csrf, plain)
    assert set(web.holders()) == {"E1", "E3"}
