"""The HR pages in a real browser: headless Chromium (Debian's, driven by Playwright) against the
app served by uvicorn on 127.0.0.1, over a real SQLite file.

One story, as an HR person would live it: sign in, upload a roster with a bad row and see it
rejected with its reason, fix it and upload again, check the preview, confirm, see who needs
attention, confirm a renewal, delete a holder, sign out; and a second team sees none of it.
Screenshots of the overview and the upload preview, at phone and desktop widths, go to
artifacts/screenshots/ (not committed).
"""

from __future__ import annotations

import csv
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import uvicorn
from sqlalchemy import select, update

from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import records as registry
from worker.store.db import unit_of_work, upgrade
from worker.store.models import Holder, Notification

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FilePayload, Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(.ci/run installs it: apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install -e '.[test]')")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
DESKTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
HEADER = ["工号", "姓名", "手机", "邮箱", "居住证有效期至", "居住类型", "租赁备案到期日", "用人单位"]
# (id, name, phone, days until expiry, housing, rental registration ends in days, employer)
PEOPLE = [
    ("SH-1001", "王芳", "13800138001", 240, "自有", None, "上海浦江数码科技有限公司"),
    ("SH-1002", "李娜", "13900139002", 120, "租赁", 400, "上海浦江数码科技有限公司"),
    ("SH-1003", "张伟", "13700137003", 75, "宿舍", None, "上海浦江数码科技有限公司"),
    ("SH-1004", "刘洋", "13600136004", 26, "租赁", 380, "上海浦江数码科技有限公司"),
    ("SH-1005", "陈静", "13500135005", 13, "自有", None, "上海浦江数码科技有限公司"),
    ("SH-1006", "杨磊", "13800138006", 12, "租赁", 5, "上海浦江数码科技有限公司"),
    ("SH-1007", "赵敏", "13900139007", 7, "亲属", None, "上海浦江数码科技有限公司"),
    ("SH-1008", "黄强", "13700137008", 2, "租赁", 300, "上海浦江数码科技有限公司"),
    ("SH-1009", "周婷", "13600136009", -6, "自有", None, "上海浦江数码科技有限公司"),
    ("SH-1010", "吴昊", "13500135010", -41, "宿舍", None, "上海浦江数码科技有限公司"),
    ("SH-1011", "徐丽", "13800138011", -72, "租赁", 200, "上海浦江数码科技有限公司"),
    ("SH-1012", "孙浩", "13900139012", -120, "自有", None, "上海浦江数码科技有限公司"),
    ("SH-1013", "马超", "13700137013", 190, "自有", None, "上海浦江数码科技有限公司"),
]
BAD_ROW = 6  # SH-1005's phone, one digit short, on sheet row 6 (header is row 1)


def _rows(bad: bool) -> list[list[str]]:
    rows = []
    for external_id, name, phone, days, housing, rental, employer in PEOPLE:
        if bad and external_id == "SH-1005":
            phone = phone[:-1]
        rental_ends = (TODAY + timedelta(days=rental)).isoformat() if rental is not None else ""
        rows.append([external_id, name, phone, "", (TODAY + timedelta(days=days)).isoformat(), housing,
                     rental_ends, employer])
    return rows


def roster_csv(bad: bool) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([HEADER, *_rows(bad)])
    return out.getvalue().encode("utf-8-sig")


def roster_xlsx(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in [HEADER, *_rows(bad=False)]:
        sheet.append(row)
    book.save(path)
    return path


@dataclass
class Server:
    url: str
    runtime: Runtime
    token_a: str
    token_b: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("web-e2e")
    url = f"sqlite:///{base / 'registry.db'}"
    upgrade(url)
    runtime = Runtime(Settings(database_url=url))
    with unit_of_work(runtime.factory) as session:
        token_a = registry.issue_token(session, registry.create_team(session, "pujiang", "浦江数码 · 人事部", None))
        token_b = registry.issue_token(session, registry.create_team(session, "beta", "Beta Trading", None))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(runtime)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", runtime, token_a, token_b)
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    runtime.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def shoot(page: Page, name: str) -> None:
    """The page at desktop and phone widths, full length, then back to desktop."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def sign_in(page: Page, base: str, token: str) -> None:
    page.goto(base + "/web/")
    assert "/web/login" in page.url
    page.click("details.token-login summary")  # the token form sits under the email/password one
    page.fill("#token", token)
    page.click("details.token-login button[type=submit]")
    page.wait_for_url(base + "/web/")


def add_delivery_trouble(runtime: Runtime) -> None:
    """What the daemon would have recorded meanwhile: a reminder that bounced, and an opt-out."""
    now = datetime.now(UTC)
    with unit_of_work(runtime.factory) as session:
        bounced = session.scalar(select(Holder).where(Holder.external_id == "SH-1004"))
        assert bounced is not None
        # Registering SH-1004 (26 days left) enqueued its "upcoming" reminder: it went out, and
        # the carrier reported it undelivered.
        [note] = session.scalars(select(Notification).where(Notification.holder_id == bounced.id))
        note.status, note.delivery_status, note.delivery_error_code, note.sent_at = "sent", "undelivered", "30006", now
        session.execute(update(Holder).where(Holder.external_id == "SH-1002")
                        .values(sms_opted_out_at=now - timedelta(days=2)))


def test_hr_story_in_a_real_browser(server: Server, browser: Browser, tmp_path: Path) -> None:
    expect = sync_api.expect
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []  # script errors, CSP violations, failed loads: none expected
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    base = server.url
    page.goto(base + "/web/login")
    shoot(page, "login")
    sign_in(page, base, server.token_a)
    expect(page.locator("h1")).to_have_text("概览")
    cookie = next(c for c in context.cookies() if c["name"] == "pw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain http here

    # A roster with one bad row: rejected with its reason, nothing imported.
    page.click(".tabs a[href='/web/upload']")
    page.wait_for_url(base + "/web/upload")
    bad_file: FilePayload = {"name": "花名册.csv", "mimeType": "text/csv", "buffer": roster_csv(bad=True)}
    page.set_input_files("#file", files=[bad_file])
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/web/upload")) as sent:
        page.click("#upload-form button[type=submit]")
    assert sent.value.resource_type == "xhr"  # upload.js sent it, with its progress bar
    page.wait_for_url(f"{base}/web/upload/*")
    rejected = page.locator("#rejected tr.rejected-row")
    expect(rejected).to_have_count(1)
    expect(rejected.first).to_contain_text(str(BAD_ROW))
    expect(rejected.first).to_contain_text("手机")
    expect(rejected.first).to_contain_text("不是有效的中国大陆手机号")
    expect(page.locator("#confirm-import")).to_have_count(0)
    expect(page.locator("#count-new")).to_have_text(str(len(PEOPLE) - 1))  # what the rest would do
    shoot(page, "upload-preview-rejected")
    with unit_of_work(server.runtime.factory) as session:
        assert session.scalar(select(Holder.id)) is None

    # Fixed, saved as Excel, uploaded again: the preview shows what will happen, and only
    # confirming writes it.
    page.click(".actions-bar a[href='/web/upload']")
    page.wait_for_url(base + "/web/upload")
    page.set_input_files("#file", str(roster_xlsx(tmp_path / "花名册.xlsx")))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{base}/web/upload/*")
    expect(page.locator("#count-new")).to_have_text(str(len(PEOPLE)))
    expect(page.locator("#count-rejected")).to_have_text("0")
    expect(page.locator("#pv-new tbody tr")).to_have_count(len(PEOPLE))
    shoot(page, "upload-preview")
    with unit_of_work(server.runtime.factory) as session:
        assert session.scalar(select(Holder.id)) is None  # previewing wrote nothing
    page.click("#confirm-import")
    page.wait_for_url(base + "/web/")
    expect(page.locator(".alert-ok")).to_contain_text(f"新增 {len(PEOPLE)} 人")

    # The overview: counts by stage, and who must act, most urgent first.
    add_delivery_trouble(server.runtime)
    page.reload()
    expect(page.locator(".stat-renew_in_person .stat-value")).to_have_text("3")
    attention = page.locator("#attention tbody tr")
    ids = [attention.nth(i).get_attribute("data-id") for i in range(attention.count())]
    assert ids[:2] == ["SH-1008", "SH-1007"], ids  # 2 and 7 days left
    assert {"SH-1002", "SH-1004", "SH-1006", "SH-1009", "SH-1010", "SH-1011"} <= set(ids)
    assert "SH-1001" not in ids and "SH-1012" not in ids  # valid, and lapsed
    expect(page.locator("#attention tr[data-id=SH-1004]")).to_contain_text("提醒发送失败")
    expect(page.locator("#attention tr[data-id=SH-1002]")).to_contain_text("已退订短信")
    page.click("#attention tr[data-id=SH-1004] a")
    expect(page.locator("#delivery-failed")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("未送达")
    page.go_back()
    shoot(page, "overview")

    # Confirm a renewal from the attention list.
    page.click("#attention tr[data-id=SH-1008] a")
    expect(page.locator(".holder-status .badge")).to_have_text("需本人办理")
    new_expiry = (TODAY + timedelta(days=2 + 365)).isoformat()
    page.fill("#expires_on", new_expiry)
    page.click("#renewal button[type=submit]")
    expect(page.locator(".alert-ok")).to_contain_text(new_expiry)
    expect(page.locator(".holder-status .badge")).to_have_text("有效")
    shoot(page, "holder")

    # The holder page says what to do, by when, with what, at both widths and in both languages.
    for lang_label, words in (("zh", ("需要做什么", "所需材料", "亲属关系证明")), ("en", ("What to do", "Materials to bring", "亲属关系证明"))):
        page.goto(base + "/web/holder?id=SH-1007")  # 7 days left, staying with a relative
        if lang_label == "en":
            page.click("a.lang")
        for size in (DESKTOP, PHONE):
            page.set_viewport_size(size)
            todo = page.locator("#todo")
            expect(todo).to_be_visible()
            for word in words:
                expect(todo).to_contain_text(word)
            expect(page.locator("#todo-last-day")).to_be_visible()
            expect(page.locator("#todo-planned li").first).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), size
        page.set_viewport_size(DESKTOP)
        if lang_label == "en":
            page.click("a.lang")
    shoot(page, "holder-todo")

    # Delete a holder.
    page.goto(base + "/web/holder?id=SH-1013")
    page.click("#delete summary")
    page.click("#delete button[type=submit]")
    page.wait_for_url(base + "/web/holders")
    expect(page.locator(".alert-ok")).to_contain_text("SH-1013")
    expect(page.locator("#holders tr[data-id=SH-1013]")).to_have_count(0)
    expect(page.locator("#holders tbody tr")).to_have_count(len(PEOPLE) - 1)
    shoot(page, "holders")

    # English on request.
    page.click("a.lang")
    expect(page.locator("h1")).to_have_text("Employees")
    page.click("a.lang")

    # A second team, in another browser: none of the first team's data, by page or by URL.
    other = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    spy = other.new_page()
    sign_in(spy, base, server.token_b)
    expect(spy.locator("#attention")).to_have_count(0)
    assert "王芳" not in spy.content()
    spy.goto(base + "/web/holders?q=SH-10")
    expect(spy.locator(".empty")).to_be_visible()
    response = spy.goto(base + "/web/holder?id=SH-1001")
    assert response is not None and response.status == 404
    assert "王芳" not in spy.content()
    with spy.expect_download() as download:
        spy.evaluate("window.location.href = '/web/export.csv'")
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert exported.count("\n") == 1 and "SH-10" not in exported  # the header only
    other.close()

    assert problems == []

    # Sign out: back to sign-in, and the pages are closed again.
    page.click("[data-test=signout]")
    expect(page.locator(".alert-ok")).to_contain_text("已安全退出")
    page.goto(base + "/web/")
    assert "/web/login" in page.url
    context.close()


def test_an_admin_invites_an_editor_who_confirms_a_renewal_and_the_pages_say_who(server: Server, browser: Browser) \
        -> None:
    from worker.registry import accounts

    base = server.url
    with unit_of_work(server.runtime.factory) as session:
        team = registry.get_team(session, "beta")
        admin = accounts.add_user(session, team, "lead@beta.example", "admin", "cli ops")
        admin_link = accounts.issue_link(session, admin, "invite")
    expires = TODAY + timedelta(days=20)
    admin_page = browser.new_context(viewport=DESKTOP, locale="zh-CN").new_page()
    # The admin's own invitation: set a password (a common one is refused first), signed in.
    admin_page.goto(f"{base}/web/invite/{admin_link}")
    admin_page.fill("#password", "password123")
    admin_page.fill("#again", "password123")
    admin_page.click("#set-password")
    assert "常见密码" in admin_page.inner_text("#password-error")
    admin_page.fill("#password", "浦江-签注-2026-lead")
    admin_page.fill("#again", "浦江-签注-2026-lead")
    admin_page.click("#set-password")
    admin_page.wait_for_url(base + "/web/")
    # A holder to renew, imported by the admin through the upload page.
    admin_page.goto(base + "/web/upload")
    admin_page.set_input_files("#file", files=[{"name": "r.csv", "mimeType": "text/csv", "buffer": (
        "工号,姓名,手机,居住证有效期至\nB-7,钱七,13800138077," + expires.isoformat() + "\n").encode("utf-8")}])
    admin_page.click("#upload-form button[type=submit]")
    admin_page.wait_for_url(lambda u: "/web/upload/" in u)
    admin_page.click("#confirm-import")
    admin_page.wait_for_url(base + "/web/")
    # The admin invites an editor on the users page and reads the one-time link off the page.
    admin_page.goto(base + "/web/users")
    admin_page.fill("#invite-email", "hr.editor@beta.example")
    admin_page.select_option("#invite-role", "editor")
    admin_page.click("#send-invite")
    flash = admin_page.inner_text(".alert-ok")
    link = flash[flash.index("http"):].split()[0]
    assert "/web/invite/" in link and "hr.editor@beta.example" in flash
    # The editor, in a browser of their own: sets a password, signs out, signs in with it.
    editor = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
    editor.goto(link.replace("http://127.0.0.1:8080", base))
    editor.fill("#password", "Editor-居住证-2026")
    editor.fill("#again", "Editor-居住证-2026")
    editor.click("#set-password")
    editor.wait_for_url(base + "/web/")
    editor.click("[data-test=signout]")
    editor.wait_for_url(lambda u: "/web/login" in u)
    editor.fill("#email", "hr.editor@beta.example")
    editor.fill("#password", "Editor-居住证-2026")
    editor.click("#password-login button[type=submit]")
    editor.wait_for_url(base + "/web/")
    assert "hr.editor@beta.example" in editor.inner_text("#who") and "编辑者" in editor.inner_text("#who")
    assert editor.locator("a[href='/web/users']").count() == 0  # not an admin
    # The editor confirms the renewal on the holder page.
    editor.goto(base + "/web/holder?id=B-7")
    renewed = (expires + timedelta(days=365)).isoformat()
    editor.fill("#renewal input[name=expires_on]", renewed)
    editor.click("#renewal button[type=submit]")
    editor.wait_for_url(lambda u: "/web/holder" in u)
    audit_section = editor.inner_text("#audit")
    assert "hr.editor@beta.example" in audit_section and "确认续签" in audit_section and renewed in audit_section
    # The admin's activity page says who did what: the renewal, the invitation, the import.
    admin_page.goto(base + "/web/activity?" + "action=holder.renewal_confirmed")
    rows = admin_page.inner_text("table.audit")
    assert "hr.editor@beta.example" in rows and "B-7" in rows
    admin_page.goto(base + "/web/activity")
    everything = admin_page.inner_text("table.audit")
    assert "lead@beta.example" in everything and "邀请用户" in everything and "导入花名册" in everything
    shoot(admin_page, "activity")
