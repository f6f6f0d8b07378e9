"""The audit trail against a real registry (SQLite and PostgreSQL): an entry for each action with
the right actor (a user's email, "token NAME", "cli ...", "system"), personal data masked,
erasure scrubbing it while the entries stay, GET /v1/audit paging, `permit-worker audit`, and
retention (`prune`), which never deletes a touch that could still be due."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notifiers.base import Reply
from worker.cli.main import main
from worker.delivery.dispatch import Dispatcher
from worker.delivery.inbound import Inbox
from worker.http.app import create_app
from worker.ops.retention import prune
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning.scan import scan
from worker.registry import audit
from worker.registry import records as registry
from worker.store.db import unit_of_work
from worker.store.models import AuditEntry, Holder, Notification

from .support import RecordingNotifier

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def entries(runtime: Runtime, team: str = "acme") -> list[audit.Entry]:
    with unit_of_work(runtime.factory) as session:
        return list(reversed(audit.entries(session, registry.get_team(session, team).id, limit=1000)))


def api(db_url: str) -> tuple[TestClient, Runtime, dict[str, str]]:
    runtime = Runtime(Settings(database_url=db_url))
    with unit_of_work(runtime.factory) as session:
        token = registry.issue_token(session, registry.create_team(session, "acme", "Acme", None))
        registry.issue_token(session, registry.create_team(session, "beta", "Beta", None))
    return TestClient(create_app(runtime), raise_server_exceptions=False), runtime, {"Authorization": f"Bearer {token}"}


def test_each_api_change_is_an_entry_by_the_token_with_personal_data_masked(db_url: str) -> None:
    client, runtime, headers = api(db_url)
    expiry = (TODAY + timedelta(days=200)).isoformat()
    assert client.post("/v1/holders", headers=headers, json={
        "external_id": "E1", "name": "张三丰", "phone": "13800138000", "expires_on": expiry}).status_code == 201
    assert client.patch("/v1/holders/E1", headers=headers, json={"phone": "13900139000",
                                                                  "email": "zhang@example.com"}).status_code == 200
    renewed = (TODAY + timedelta(days=500)).isoformat()
    assert client.post("/v1/holders/E1/renewal", headers=headers, json={"expires_on": renewed}).status_code == 200
    until = (TODAY + timedelta(days=30)).isoformat()
    assert client.post("/v1/holders/E1/pause", headers=headers, json={"until": until, "reason": "产假"}).status_code == 200
    assert client.delete("/v1/holders/E1/pause", headers=headers).status_code == 200
    found = entries(runtime)
    assert [e.action for e in found] == ["token.created", "holder.created", "holder.updated",
                                         "holder.renewal_confirmed", "holder.paused", "holder.resumed"]
    assert found[0].actor == "teams create" and found[0].changes == {"name": "default", "scope": "write"}
    mine = [e for e in found if e.action.startswith("holder.")]
    assert {e.actor for e in mine} == {"token default"} and {e.holder for e in mine} == {"E1"}
    updated = next(e for e in mine if e.action == "holder.updated")
    assert updated.changes["phone"] == ["+86138****8000", "+86139****9000"]
    assert updated.changes["email"][0] is None and "zhang@example.com" not in json.dumps(updated.changes)
    confirmed = next(e for e in mine if e.action == "holder.renewal_confirmed")
    assert confirmed.changes == {"expires_on": [expiry, renewed]}
    paused = next(e for e in mine if e.action == "holder.paused")
    assert paused.changes["paused_until"] == [None, until] and "产假" not in json.dumps(paused.changes)
    # Another team sees none of it.
    assert [e.action for e in entries(runtime, "beta")] == ["token.created"]
    runtime.engine.dispose()


def test_an_import_is_one_entry_with_counts_and_one_per_holder_it_changed(db_url: str) -> None:
    client, runtime, headers = api(db_url)
    expiry = (TODAY + timedelta(days=200)).isoformat()
    roster = f"工号,姓名,手机,居住证有效期至\nE1,张三,13800138000,{expiry}\nE2,李四,13800138001,{expiry}\n"
    assert client.post("/v1/holders/import", headers=headers, files={"file": ("r.csv", roster.encode(), "text/csv")}) \
        .status_code == 200
    again = roster.replace("13800138001", "13800138009")
    assert client.post("/v1/holders/import", headers=headers, files={"file": ("r.csv", again.encode(), "text/csv")}) \
        .status_code == 200
    dry = client.post("/v1/holders/import?dry_run=true", headers=headers,
                      files={"file": ("r.csv", roster.encode(), "text/csv")})
    assert dry.status_code == 200
    found = [e for e in entries(runtime) if e.action in ("roster.imported", "holder.created", "holder.updated")]
    assert [(e.action, e.holder) for e in found] == [
        ("holder.created", "E1"), ("holder.created", "E2"), ("roster.imported", None),
        ("holder.updated", "E2"), ("roster.imported", None)]  # the dry run left no entry
    assert found[2].changes["created"] == 2 and found[4].changes["updated"] == 1
    assert found[3].changes == {"phone": ["+86138****8001", "+86138****8009"]}
    runtime.engine.dispose()


def test_erasing_a_holder_keeps_the_entries_without_their_personal_data(db_url: str) -> None:
    client, runtime, headers = api(db_url)
    expiry = (TODAY + timedelta(days=200)).isoformat()
    client.post("/v1/holders", headers=headers, json={"external_id": "E1", "name": "张三丰", "phone": "13800138000",
                                                      "expires_on": expiry})
    client.patch("/v1/holders/E1", headers=headers, json={"name": "张三", "phone": "13900139000"})
    assert client.delete("/v1/holders/E1", headers=headers).status_code == 204
    found = [e for e in entries(runtime) if e.holder == "E1"]
    assert [e.action for e in found] == ["holder.created", "holder.updated", "holder.deleted"]
    assert found[1].changes == {"name": [audit.ERASED, audit.ERASED], "phone": [audit.ERASED, audit.ERASED]}
    with unit_of_work(runtime.factory) as session:
        stored = " ".join(session.scalars(select(AuditEntry.changes)))
        assert "138" not in stored and "139" not in stored and "张" not in stored
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.holder_id.is_not(None))) == 0
    runtime.engine.dispose()


def test_the_daemons_own_acts_are_by_system(db_url: str) -> None:
    client, runtime, headers = api(db_url)
    expires = TODAY + timedelta(days=25)
    for external_id, phone in (("E1", "13800138001"), ("E2", "13800138002")):
        client.post("/v1/holders", headers=headers, json={"external_id": external_id, "phone": phone,
                                                          "expires_on": expires.isoformat()})
    scan(runtime.factory, runtime.policy, runtime.settings.tz)
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(runtime.factory, {"sms": notifier, "email": notifier}, runtime.policy,
                            runtime.settings.tz, send_window=runtime.settings.send_window_override())
    at_ten = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=10, minute=0)
    while dispatcher.dispatch_one(at_ten) is not None:
        pass
    inbox = Inbox(runtime.factory, max_attempts=3, policy=runtime.policy)
    assert inbox.reply(Reply("recording", "+8613800138001", "TD", "r1")) == "opt_out"
    inbox.reply(Reply("recording", "+8613800138002", "已续签", "r2"))
    system = [e for e in entries(runtime) if e.actor == audit.SYSTEM]
    assert [(e.action, e.holder) for e in system] == [("holder.opted_out", "E1"), ("holder.renewal_reported", "E2")]
    assert system[1].changes["expires_on"][0] == expires.isoformat()
    assert system[0].changes == {"how": "re***"}  # free text from a holder: never kept verbatim
    runtime.engine.dispose()


def test_get_audit_pages_backwards_and_the_cli_prints_the_same(db_url: str, capsys, monkeypatch) -> None:
    client, runtime, headers = api(db_url)
    for n in range(7):
        client.post("/v1/holders", headers=headers, json={"external_id": f"E{n}", "phone": f"1380013800{n}",
                                                          "expires_on": (TODAY + timedelta(days=200)).isoformat()})
    seen, before = [], None
    while True:
        page = client.get("/v1/audit", headers=headers, params={"limit": 3, **({"before": before} if before else {})})
        assert page.status_code == 200
        body = page.json()
        seen += body["entries"]
        before = body["next_before"]
        if before is None:
            break
    assert len(seen) == len(entries(runtime)) and seen[0]["holder"] == "E6"
    assert set(seen[0]) == {"at", "actor", "action", "holder", "changes"}
    for bad in ("yesterday", "²", "9" * 30):  # never a 500 for a cursor a client made up
        assert client.get("/v1/audit", headers=headers, params={"before": bad}).status_code == 422, bad
    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    capsys.readouterr()
    assert main(["audit", "--team", "acme", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == seen
    assert main(["holders", "confirm-renewal", "E0", "--team", "acme", "--expires-on",
                 (TODAY + timedelta(days=500)).isoformat()]) == 0
    latest = entries(runtime)[-1]
    assert latest.action == "holder.renewal_confirmed" and latest.actor.startswith("cli")
    runtime.engine.dispose()


def test_prune_counts_then_deletes_only_what_is_past_its_retention(db_url: str, capsys, monkeypatch) -> None:
    _, runtime, _ = api(db_url)
    now = datetime.now(UTC)
    old = now - timedelta(days=500)
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, "acme")
        long_ago, current = Holder(team_id=team.id, external_id="OLD", expires_on=TODAY + timedelta(days=300),
                                   phone="+8613800138000"), \
            Holder(team_id=team.id, external_id="NOW", expires_on=TODAY - timedelta(days=30), phone="+8613800138001")
        session.add_all([long_ago, current])
        session.flush()
        lapsed = Holder(team_id=team.id, external_id="LAPSED", expires_on=TODAY - timedelta(days=600),
                        phone="+8613800138002")
        session.add(lapsed)
        session.flush()
        # A lapsed holder's +91 touch stays due while nobody renews: its row must stay, however old.
        session.add(Notification(holder_id=lapsed.id, cycle_expires_on=lapsed.expires_on, stage="lapsed",
                                 touch_day=91, touch_on=lapsed.expires_on + timedelta(days=91), channel="sms",
                                 status="sent", attempts=1, next_attempt_at=old, created_at=old, updated_at=old))
        for holder, cycle in ((long_ago, TODAY - timedelta(days=400)), (current, TODAY - timedelta(days=30))):
            session.add(Notification(holder_id=holder.id, cycle_expires_on=cycle, stage="upcoming", touch_day=-30,
                                     touch_on=cycle - timedelta(days=30), channel="sms", status="sent", attempts=1,
                                     next_attempt_at=old, created_at=old, updated_at=old))
        session.add(AuditEntry(team_id=team.id, at=old, actor="test", action="holder.updated", changes="{}"))
    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    capsys.readouterr()
    assert main(["prune", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "notifications: would delete 1" in dry and "audit_entries: would delete 1" in dry
    with unit_of_work(runtime.factory) as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 3
    counts = {p.table: p.rows for p in prune(runtime.factory, runtime.settings)}
    assert counts["notifications"] == 1 and counts["audit_entries"] == 1
    with unit_of_work(runtime.factory) as session:
        # The cycle that ended 30 days ago keeps its row: its later touches could still be due.
        # and the lapsed holder's current cycle keeps its +91 row: no second "lapsed" SMS.
        assert sorted(session.scalars(select(Notification.cycle_expires_on)).all()) == [
            TODAY - timedelta(days=600), TODAY - timedelta(days=30)]
    assert {p.table: p.rows for p in prune(runtime.factory, runtime.settings)}["notifications"] == 0
    runtime.engine.dispose()


def test_values_are_recorded_masked_and_dates_as_iso() -> None:
    assert audit.masked("expires_on", date(2027, 1, 2)) == "2027-01-02"
    assert audit.masked("name", "王芳") == "王*" and audit.masked("phone", "+8613800138000") == "+86138****8000"
    assert audit.masked("email", "wang.fang@example.com") == "wang.fang***@example.com" or \
        audit.masked("email", "wang.fang@example.com") != "wang.fang@example.com"


def test_accounts_tokens_and_team_settings_are_entries_by_whoever_did_them(db_url: str, capsys,
                                                                           monkeypatch) -> None:
    import re

    from worker.registry import accounts

    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    assert main(["teams", "create", "acme", "--name", "Acme"]) == 0
    assert main(["users", "add", "boss@acme.example", "--team", "acme", "--role", "admin"]) == 0
    secret = re.search(r"/web/invite/([A-Za-z0-9_-]+)", capsys.readouterr().out).group(1)  # type: ignore[union-attr]
    assert main(["teams", "update", "acme", "--channels", "email,sms", "--hr-wecom-webhook", ""]) == 0
    runtime = Runtime(Settings(database_url=db_url))
    with unit_of_work(runtime.factory) as session:
        accounts.use_link(session, secret, "Boss-Password-2026")
    client = TestClient(create_app(runtime), raise_server_exceptions=False, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text).group(1)  # type: ignore[union-attr]
    client.post("/web/login", data={"csrf": csrf, "email": "boss@acme.example", "password": "Boss-Password-2026"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/users").text).group(1)  # type: ignore[union-attr]
    client.post("/web/users/invite", data={"csrf": csrf, "email": "hr@acme.example", "role": "viewer"})
    client.post("/web/users/update", data={"csrf": csrf, "email": "hr@acme.example", "action": "role", "role": "editor"})
    client.post("/web/tokens/create", data={"csrf": csrf, "name": "hris", "scope": "read"})
    client.post("/web/tokens/revoke", data={"csrf": csrf, "name": "hris"})
    client.post("/web/users/update", data={"csrf": csrf, "email": "hr@acme.example", "action": "remove"})
    found = [(e.actor.split(" ")[0] if e.actor.startswith("cli") else e.actor, e.action) for e in entries(runtime)]
    assert found == [("cli", "team.created"), ("teams create", "token.created"), ("cli", "user.added"),
                     ("cli", "team.updated"), ("boss@acme.example", "user.activated"),
                     ("boss@acme.example", "user.added"), ("boss@acme.example", "user.role_changed"),
                     ("boss@acme.example", "token.created"), ("boss@acme.example", "token.revoked"),
                     ("boss@acme.example", "user.removed")]
    updated = entries(runtime)[3]
    assert updated.changes == {"fields": ["channels", "hr_wecom_webhook"]}  # the webhook's key is never recorded
    # The activity page filters by person, action and day.
    page = client.get("/web/activity", params={"actor": "boss@acme.example", "action": "token.created"}).text
    assert page.count('data-action="token.created"') == 1 and 'data-action="user.added"' not in page
    today = datetime.now(runtime.settings.tz).date()
    assert client.get("/web/activity", params={"on": today.isoformat()}).text.count("<tr data-action=") == 10
    yesterday = (today - timedelta(days=1)).isoformat()
    assert 'id="activity-empty"' in client.get("/web/activity", params={"on": yesterday}).text
    assert client.get("/web/activity", params={"before": "9" * 20}).status_code == 400  # a page, not a 500
    runtime.engine.dispose()
