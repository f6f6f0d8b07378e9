"""Every route checks the role on the server: a viewer (a user, or a read token signed in) cannot
change anything by form or by crafted request, an editor cannot manage users or tokens, a read
API token gets 403 on every change. The routes are enumerated from the app itself, so a new route
without its check fails here. Both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import accounts, tokens
from worker.store.db import unit_of_work
from worker.store.models import ApiToken, AuditEntry, Holder, Notification, User

from .support import add_holder

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "Roles-Test-Pass-2026"
# Posts anyone may make, signed in or not: they change only the poster's own session or password.
OPEN_POSTS = {"/web/login", "/web/logout", "/web/invite/{secret}", "/web/reset/{secret}", "/web/reset",
              "/web/account/sessions/end"}
ADMIN_POSTS = {"/web/users/invite", "/web/users/update", "/web/tokens/create", "/web/tokens/revoke"}
ADMIN_PAGES = {"/web/users", "/web/tokens"}
FORM = {"id": "E1", "csrf": "", "until": "2099-01-01", "expires_on": "2099-01-01", "email": "x@acme.example",
        "role": "admin", "name": "hacked", "scope": "write", "action": "remove", "phone": "13900139000",
        "to": "13900139000", "confirm_leavers": "yes"}


@pytest.fixture
def app(db_url: str, factory, team) -> Iterator[tuple[TestClient, Runtime, dict[str, str]]]:
    runtime = Runtime(Settings(database_url=db_url))
    from datetime import date, timedelta
    add_holder(factory, team, "E1", date.today() + timedelta(days=20))
    secrets: dict[str, str] = {}
    with unit_of_work(factory) as session:
        acme = session.merge(team)
        for role in accounts.ROLES:
            user = accounts.add_user(session, acme, f"{role}@acme.example", role, "test")
            secrets[role] = accounts.issue_link(session, user, "invite")
        secrets["read"] = tokens.create_token(session, acme, "reader", "read", "test")[1]
        secrets["write"] = tokens.rotate_default(session, acme)
    for role in accounts.ROLES:
        with unit_of_work(factory) as session:
            accounts.use_link(session, secrets[role], PASSWORD)
    client = TestClient(create_app(runtime), raise_server_exceptions=False, follow_redirects=False)
    yield client, runtime, secrets
    runtime.engine.dispose()


def signed_in(client: TestClient, who: str, secrets: dict[str, str]) -> str:
    client.cookies.clear()
    csrf = CSRF.search(client.get("/web/login").text).group(1)  # type: ignore[union-attr]
    data = {"csrf": csrf, "token": secrets[who]} if who in ("read", "write") else \
        {"csrf": csrf, "email": f"{who}@acme.example", "password": PASSWORD}
    assert client.post("/web/login", data=data).status_code == 303, who
    return CSRF.search(client.get("/web/").text).group(1)  # type: ignore[union-attr]


def state(runtime: Runtime) -> tuple[object, ...]:
    """Everything a change could touch, to compare before and after."""
    with unit_of_work(runtime.factory) as session:
        holder = session.scalar(select(Holder).where(Holder.external_id == "E1"))
        return (session.scalar(select(func.count()).select_from(AuditEntry)),
                session.scalar(select(func.count()).select_from(Holder)),
                session.scalar(select(func.count()).select_from(Notification)),
                tuple(session.execute(select(User.email, User.role).order_by(User.email)).all()),
                tuple(session.execute(select(ApiToken.name, ApiToken.token_hash).order_by(ApiToken.name)).all()),
                holder and (holder.phone, holder.expires_on, holder.paused_until, holder.name))


def all_routes(routes: list[object], prefix: str = "") -> Iterator[APIRoute]:
    """Every APIRoute of the app, through the included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from all_routes(inner.routes)


def web_posts(client: TestClient) -> list[str]:
    routes = list(all_routes(client.app.routes))  # type: ignore[attr-defined]
    found = sorted({r.path for r in routes if r.path.startswith("/web/") and "POST" in r.methods
                    and "{rest:path}" not in r.path})
    assert {"/web/holder/renewal", "/web/upload", "/web/users/invite", "/web/tokens/create"} <= set(found)
    return found


def concrete(path: str) -> str:
    return path.replace("{upload_id}", "A" * 32).replace("{secret}", "x" * 20) + "?id=E1"


@pytest.mark.parametrize("who", ["viewer", "read"])
def test_a_viewer_changes_nothing_by_any_form_or_crafted_post(app, who: str) -> None:
    client, runtime, secrets = app
    csrf = signed_in(client, who, secrets)
    before = state(runtime)
    for path in web_posts(client):
        if path in OPEN_POSTS:
            continue
        response = client.post(concrete(path), data=FORM | {"csrf": csrf},
                               files={"file": ("r.csv", b"\xe5\xb7\xa5\xe5\x8f\xb7\nE9\n", "text/csv")}
                               if path == "/web/upload" else None)
        assert response.status_code == 403, (path, response.status_code)
        assert "您的角色无权执行此操作" in response.text, path
    assert state(runtime) == before
    page = client.get("/web/holder?id=E1").text  # the page does not offer what the role cannot do
    assert 'action="/web/holder/renewal' not in page and 'action="/web/holder/delete' not in page
    assert 'href="/web/upload"' not in client.get("/web/").text
    assert 'action="/web/team/test-message"' not in client.get("/web/team").text
    assert client.get("/web/upload").status_code == 403
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 403
    for path in ("/web/", "/web/holders", "/web/holder?id=E1", "/web/activity", "/web/team", "/web/export.csv"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("who", ["editor", "write"])
def test_an_editor_changes_holders_but_not_users_or_tokens(app, who: str) -> None:
    client, runtime, secrets = app
    csrf = signed_in(client, who, secrets)
    before = state(runtime)
    for path in sorted(ADMIN_POSTS):
        assert client.post(concrete(path), data=FORM | {"csrf": csrf}).status_code == 403, path
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 403
    assert state(runtime) == before
    done = client.post("/web/holder/pause?id=E1", data={"csrf": csrf, "until": "2099-01-01"})
    assert done.status_code == 422  # allowed to try: refused only for being years away
    assert client.post("/web/holder/renewal?id=E1", data={"csrf": csrf, "expires_on": "2030-01-01"}) \
        .status_code in (303, 422)


def test_an_admin_manages_users_and_tokens(app) -> None:
    client, runtime, secrets = app
    csrf = signed_in(client, "admin", secrets)
    assert client.get("/web/users").status_code == 200 and client.get("/web/tokens").status_code == 200
    invited = client.post("/web/users/invite", data={"csrf": csrf, "email": "new@acme.example", "role": "viewer"})
    assert invited.status_code == 200 and "/web/invite/" in invited.text
    # With no email configured, a reset link is shown to the admin, and the trail says who asked.
    reset = client.post("/web/users/update", data={"csrf": csrf, "email": "editor@acme.example", "action": "reset"})
    assert reset.status_code == 200 and "/web/reset/" in reset.text
    with unit_of_work(runtime.factory) as session:
        issued = session.scalar(select(AuditEntry).where(AuditEntry.action == "user.reset_link_issued"))
        assert issued is not None and issued.actor == "admin@acme.example"
    created = client.post("/web/tokens/create", data={"csrf": csrf, "name": "hris", "scope": "read"})
    assert created.status_code == 200 and re.search(r"pwt_[A-Za-z0-9_-]{40,}", created.text)
    assert "pwt_" not in client.get("/web/tokens").text  # shown once, and never in the session cookie
    assert "pwt_" not in "".join(created.headers.get_list("set-cookie"))
    assert client.post("/web/users/update", data={"csrf": csrf, "email": "viewer@acme.example", "action": "role",
                                                 "role": "editor"}).status_code == 303
    with unit_of_work(runtime.factory) as session:
        assert session.scalar(select(User.role).where(User.email == "viewer@acme.example")) == "editor"
        assert session.scalar(select(User.id).where(User.email == "new@acme.example")) is not None


def api_changes(client: TestClient) -> list[tuple[str, str]]:
    routes = list(all_routes(client.app.routes))  # type: ignore[attr-defined]
    found = sorted({(m, r.path) for r in routes if r.path.startswith("/v1") for m in r.methods if m != "GET"})
    assert ("POST", "/v1/holders") in found and ("DELETE", "/v1/holders/{external_id}") in found
    return found


def test_a_read_token_reads_everything_and_gets_403_on_every_change(app) -> None:
    client, runtime, secrets = app
    read = {"Authorization": f"Bearer {secrets['read']}"}
    before = state(runtime)
    for method, path in api_changes(client):
        response = client.request(method, path.replace("{external_id}", "E1"), headers=read,
                                  json={"external_id": "E9", "expires_on": "2099-01-01", "until": "2099-01-01",
                                        "phone": "13900139000"})
        assert response.status_code == 403, (method, path, response.status_code)
        assert "read-only" in response.text, response.text
    assert state(runtime) == before
    for path in ("/v1/holders", "/v1/summary", "/v1/holders/E1", "/v1/holders/E1/explain", "/v1/audit"):
        assert client.get(path, headers=read).status_code == 200, path
    write = {"Authorization": f"Bearer {secrets['write']}"}
    assert client.post("/v1/holders/E1/pause", headers=write, json={"until": "2099-01-01"}).status_code == 422
    assert client.delete("/v1/holders/E1/pause", headers=write).status_code in (200, 422)
