"""HR accounts against a real registry (SQLite and PostgreSQL): invitations (expired, reused),
password rules, sign-in and its throttling, password reset, sessions listed and revoked, a
removed user signed out at once, and the CLI's `users` and `tokens` commands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import func, select

from worker.cli.main import main
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import accounts
from worker.registry import records as registry
from worker.registry.records import BadInput
from worker.store.db import unit_of_work
from worker.store.models import User, UserSession

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
GOOD = "Pujiang-签注-2026"


class Web:
    def __init__(self, db_url: str) -> None:
        self.runtime = Runtime(Settings(database_url=db_url))
        self.app = create_app(self.runtime)
        with unit_of_work(self.runtime.factory) as session:
            for slug in ("acme", "beta"):
                registry.issue_token(session, registry.create_team(session, slug, slug.title(), None))

    def client(self) -> TestClient:
        return TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)

    def warm(self) -> None:
        """Let FastAPI build its routes on the real clock (under freezegun, `date` is a fake
        class it cannot build a parameter for)."""
        client = self.client()
        for path in ("/web/login", "/web/invite/x", "/web/reset/x", "/web/reset", "/web/", "/web/account"):
            client.get(path)
        client.post("/web/login", data={})

    def invite(self, email: str, role: str = "editor", slug: str = "acme") -> str:
        with unit_of_work(self.runtime.factory) as session:
            user = accounts.add_user(session, registry.get_team(session, slug), email, role, "test")
            return accounts.issue_link(session, user, "invite")

    def user(self, email: str) -> User | None:
        with unit_of_work(self.runtime.factory) as session:
            found = session.scalar(select(User).where(User.email == email))
            if found is not None:
                session.expunge(found)
            return found


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    built = Web(db_url)
    yield built
    built.runtime.engine.dispose()


def csrf_of(client: TestClient, path: str = "/web/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, path
    return match.group(1)


def set_password(client: TestClient, secret: str, password: str = GOOD, purpose: str = "invite",
                 again: str | None = None) -> tuple[int, str]:
    csrf = csrf_of(client, f"/web/{purpose}/{secret}")
    response = client.post(f"/web/{purpose}/{secret}", data={"csrf": csrf, "password": password,
                                                              "again": password if again is None else again})
    return response.status_code, response.text


def sign_in(client: TestClient, email: str, password: str = GOOD) -> int:
    csrf = csrf_of(client)
    return client.post("/web/login", data={"csrf": csrf, "email": email, "password": password}).status_code


def test_an_invitation_sets_the_password_once_and_signs_in(web: Web) -> None:
    secret = web.invite("Li.Na@Acme.Example")
    client = web.client()
    assert "li.na@acme.example" in client.get(f"/web/invite/{secret}").text
    assert set_password(client, secret) == (303, "")
    page = client.get("/web/").text
    assert "li.na@acme.example" in page and "编辑者" in page
    user = web.user("li.na@acme.example")
    assert user is not None and user.password_hash and user.password_hash.startswith("$argon2id$")
    again = web.client()
    assert 'id="link-gone"' in again.get(f"/web/invite/{secret}").text  # no form on a used link ...
    reused = again.post(f"/web/invite/{secret}", data={"csrf": csrf_of(again), "password": "Another-Pass-2026",
                                                      "again": "Another-Pass-2026"})  # ... nor a crafted post
    assert reused.status_code == 404 and "已过期或已使用" in reused.text
    assert sign_in(web.client(), "li.na@acme.example", "Another-Pass-2026") == 401
    assert sign_in(web.client(), "LI.NA@acme.example") == 303


def test_an_invitation_expires_after_72_hours(web: Web) -> None:
    web.warm()
    start = datetime.now(UTC)
    with freeze_time(start):
        secret = web.invite("late@acme.example")
    with freeze_time(start + timedelta(hours=71, minutes=59)):
        assert web.client().get(f"/web/invite/{secret}").status_code == 200
    with freeze_time(start + timedelta(hours=72, seconds=1)):
        page = web.client().get(f"/web/invite/{secret}")
        assert page.status_code == 404 and 'id="link-gone"' in page.text
    assert web.user("late@acme.example").password_hash is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("password", "again", "why"), [
    ("short1!", None, "密码太短"),
    ("password123", None, "常见密码"),
    ("qwertyuiop", None, "常见密码"),
    ("weak@acme.example", None, "常见密码"),  # the email itself
    (GOOD, GOOD + "x", "不一致"),
])
def test_a_weak_or_mistyped_password_is_refused_and_the_link_still_works(web: Web, password: str,
                                                                        again: str | None, why: str) -> None:
    secret = web.invite("weak@acme.example")
    client = web.client()
    status, text = set_password(client, secret, password, again=again)
    assert status == 422 and why in text
    assert web.user("weak@acme.example").password_hash is None  # type: ignore[union-attr]
    assert set_password(client, secret)[0] == 303


def test_sign_in_fails_alike_and_is_throttled_per_account_and_per_address(web: Web) -> None:
    web.warm()
    set_password(web.client(), web.invite("hr@acme.example"))
    client = web.client()
    unknown = client.post("/web/login", data={"csrf": csrf_of(client), "email": "nobody@acme.example",
                                              "password": GOOD})
    wrong = client.post("/web/login", data={"csrf": csrf_of(client), "email": "hr@acme.example", "password": "nope"})
    assert unknown.status_code == wrong.status_code == 401 and "邮箱或密码不正确" in unknown.text
    for _ in range(accounts.PER_ACCOUNT - 1):
        assert sign_in(client, "hr@acme.example", "wrong-password") == 401
    # Locked now: even the right password is refused, and says why.
    locked = client.post("/web/login", data={"csrf": csrf_of(client), "email": "hr@acme.example", "password": GOOD})
    assert locked.status_code == 401 and "15 分钟" in locked.text
    later = datetime.now(UTC) + accounts.WINDOW + timedelta(seconds=5)
    with freeze_time(later):
        assert sign_in(web.client(), "hr@acme.example") == 303
    # Per address: many accounts from one address.
    with freeze_time(later + timedelta(hours=2)):
        for n in range(accounts.PER_ADDRESS):
            sign_in(client, f"guess{n}@acme.example", "x")
        assert sign_in(web.client(), "hr@acme.example") == 401  # the test client is one address


def test_a_reset_link_sets_a_new_password_and_ends_other_sessions(web: Web) -> None:
    set_password(web.client(), web.invite("hr@acme.example"))
    elsewhere = web.client()
    assert sign_in(elsewhere, "hr@acme.example") == 303
    assert elsewhere.get("/web/").status_code == 200
    with unit_of_work(web.runtime.factory) as session:
        user = accounts.get_user(session, registry.get_team(session, "acme"), "hr@acme.example")
        secret = accounts.issue_link(session, user, "reset")
    assert set_password(web.client(), secret, "Brand-New-Pass-26", purpose="reset")[0] == 303
    assert elsewhere.get("/web/").status_code == 303  # the old session is over
    assert sign_in(web.client(), "hr@acme.example") == 401
    assert sign_in(web.client(), "hr@acme.example", "Brand-New-Pass-26") == 303
    # The forgot-password form says the same for an account that exists and one that does not.
    client = web.client()
    known = client.post("/web/reset", data={"csrf": csrf_of(client, "/web/reset"), "email": "hr@acme.example"})
    unknown = client.post("/web/reset", data={"csrf": csrf_of(client, "/web/reset"), "email": "no@acme.example"})
    assert known.status_code == unknown.status_code == 200
    assert re.sub(r'value="[^"]+"', "", known.text) == re.sub(r'value="[^"]+"', "", unknown.text)


def test_sessions_are_listed_and_ended_and_removing_a_user_signs_them_out_at_once(web: Web) -> None:
    set_password(web.client(), web.invite("boss@acme.example", "admin"))
    set_password(web.client(), web.invite("hr@acme.example"))
    laptop, phone, boss = web.client(), web.client(), web.client()
    for client, email in ((laptop, "hr@acme.example"), (phone, "hr@acme.example"), (boss, "boss@acme.example")):
        assert sign_in(client, email) == 303
    account = laptop.get("/web/account").text
    assert account.count('data-sid="other"') == 2 and account.count('data-sid="current"') == 1  # invite + phone
    laptop.post("/web/account/sessions/end", data={"csrf": csrf_of(laptop, "/web/account"), "others": "yes"})
    assert phone.get("/web/").status_code == 303 and laptop.get("/web/").status_code == 200
    # The admin removes the user: the laptop's next request is the sign-in page.
    response = boss.post("/web/users/update", data={"csrf": csrf_of(boss, "/web/users"), "email": "hr@acme.example",
                                                   "action": "remove"})
    assert response.status_code == 303
    assert laptop.get("/web/").status_code == 303
    assert web.user("hr@acme.example") is None
    with unit_of_work(web.runtime.factory) as session:
        assert session.scalar(select(func.count()).select_from(UserSession)
                              .where(UserSession.user_id.not_in(select(User.id)))) == 0
    # An admin cannot remove themselves (the team would be left without one by accident).
    boss.post("/web/users/update", data={"csrf": csrf_of(boss, "/web/users"), "email": "boss@acme.example",
                                         "action": "remove"})
    assert web.user("boss@acme.example") is not None


def test_an_email_belongs_to_one_account(web: Web) -> None:
    web.invite("one@acme.example")
    with unit_of_work(web.runtime.factory) as session, pytest.raises(BadInput, match="already has an account"):
        accounts.add_user(session, registry.get_team(session, "beta"), "ONE@acme.example", "viewer", "test")
    with unit_of_work(web.runtime.factory) as session, pytest.raises(BadInput, match="role"):
        accounts.add_user(session, registry.get_team(session, "beta"), "two@acme.example", "owner", "test")


def test_the_cli_adds_lists_and_removes_users_and_makes_read_and_write_tokens(db_url: str, tmp_path, capsys,
                                                                              monkeypatch) -> None:
    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    assert main(["teams", "create", "acme", "--name", "Acme"]) == 0
    capsys.readouterr()
    assert main(["users", "add", "HR@acme.example", "--team", "acme", "--role", "editor"]) == 0
    printed = capsys.readouterr().out
    link = re.search(r"(http://127\.0\.0\.1:8080/web/invite/\S+)", printed)
    assert link and "invited hr@acme.example to acme as editor" in printed
    assert main(["users", "add", "hr@acme.example", "--team", "acme", "--role", "viewer"]) == 2
    assert "already has an account" in capsys.readouterr().err
    assert main(["users", "list", "--team", "acme", "--json"]) == 0
    assert '"email": "hr@acme.example"' in capsys.readouterr().out
    assert main(["tokens", "create", "--team", "acme", "--name", "payroll", "--scope", "read"]) == 0
    read_token = capsys.readouterr().out.strip()
    assert read_token.startswith("pwt_")
    assert main(["tokens", "create", "--team", "acme", "--name", "payroll", "--scope", "write"]) == 2
    assert main(["tokens", "list", "--team", "acme", "--json"]) == 0
    listed = capsys.readouterr().out
    assert '"name": "default"' in listed and '"name": "payroll"' in listed and read_token not in listed
    client = TestClient(create_app(Runtime(Settings(database_url=db_url))), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {read_token}"}
    assert client.get("/v1/holders", headers=headers).status_code == 200
    assert main(["tokens", "revoke", "payroll", "--team", "acme"]) == 0
    assert client.get("/v1/holders", headers=headers).status_code == 401
    assert main(["users", "remove", "hr@acme.example", "--team", "acme"]) == 0
    assert main(["users", "remove", "hr@acme.example", "--team", "acme"]) == 2


def test_with_email_configured_the_invitation_and_a_reset_link_are_sent(db_url: str, capsys, monkeypatch) -> None:
    from notifiers.smtp.fake import FakeSmtp

    with FakeSmtp() as smtp:
        for key, value in {"PERMIT_DATABASE_URL": db_url, "PERMIT_EMAIL_BACKEND": "smtp",
                           "PERMIT_SMTP_HOST": "127.0.0.1", "PERMIT_SMTP_PORT": str(smtp.port),
                           "PERMIT_SMTP_TLS": "none", "PERMIT_EMAIL_FROM": "reminders@acme.example",
                           "PERMIT_PUBLIC_URL": "https://hr.acme.example"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
        assert main(["teams", "create", "acme", "--name", "Acme"]) == 0
        assert main(["users", "add", "hr@acme.example", "--team", "acme", "--role", "viewer"]) == 0
        printed = capsys.readouterr().out
        assert "; emailed" in printed and "https://hr.acme.example/web/invite/" in printed
        [mail] = smtp.messages
        assert mail.rcpt_tos == ("hr@acme.example",)
        link = re.search(r"https://hr\.acme\.example(/web/invite/[A-Za-z0-9_-]+)",
                         mail.message.get_body(preferencelist=("plain",)).get_content())
        assert link and link.group(1) in printed
        runtime = Runtime(Settings())
        client = TestClient(create_app(runtime), raise_server_exceptions=False, follow_redirects=False)
        assert set_password(client, link.group(1).rsplit("/", 1)[1])[0] == 303
        forgot = TestClient(create_app(runtime), raise_server_exceptions=False, follow_redirects=False)
        forgot.post("/web/reset", data={"csrf": csrf_of(forgot, "/web/reset"), "email": "HR@acme.example"})
        assert len(smtp.messages) == 2 and "/web/reset/" in smtp.messages[1].message.get_body().get_content()
        runtime.engine.dispose()
