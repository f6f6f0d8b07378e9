"""The HR API over HTTP (FastAPI's test client) against a real SQLite file."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import records as registry
from worker.registry import tokens
from worker.store.db import unit_of_work
from worker.store.models import Notification

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    a: dict[str, str]  # Authorization headers of team A ("acme") and team B ("beta")
    b: dict[str, str]


def make_api(db_url: str, **settings: object) -> Api:
    runtime = Runtime(Settings(database_url=db_url, **settings))  # type: ignore[arg-type]
    with unit_of_work(runtime.factory) as session:
        tokens = []
        for slug in ("acme", "beta"):
            team = registry.create_team(session, slug, slug.title(), f"hr@{slug}.example")
            tokens.append(registry.issue_token(session, team))
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    return Api(client, runtime, {"Authorization": f"Bearer {tokens[0]}"}, {"Authorization": f"Bearer {tokens[1]}"})


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    api = make_api(db_url)
    yield api
    api.runtime.engine.dispose()


def holder(external_id: str = "E1", days: int = 60, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {"external_id": external_id, "name": "张三", "phone": "13800138000",
                               "expires_on": (TODAY + timedelta(days=days)).isoformat(), "housing_type": "own"}
    body.update(fields)
    return body


def pending(api: Api) -> list[tuple[str, int, str]]:
    with unit_of_work(api.runtime.factory) as session:
        return [(n.stage, n.touch_day, n.status) for n in session.scalars(select(Notification).order_by(Notification.id))]


# -- the endpoints ----------------------------------------------------------------------------

def test_create_read_update_delete_a_holder(api: Api) -> None:
    created = api.client.post("/v1/holders", json=holder(email="zhang@example.com"), headers=api.a)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone"] == "+8613800138000" and body["stage"] == "valid" and body["enqueued"] == []
    assert api.client.get("/v1/holders/E1", headers=api.a).json()["email"] == "zhang@example.com"
    updated = api.client.patch("/v1/holders/E1", json={"name": "张三丰"}, headers=api.a)
    assert updated.status_code == 200 and updated.json()["name"] == "张三丰"
    assert updated.json()["phone"] == "+8613800138000"  # untouched fields keep their values
    assert api.client.delete("/v1/holders/E1", headers=api.a).status_code == 204
    assert api.client.get("/v1/holders/E1", headers=api.a).status_code == 404


def test_creating_a_holder_already_inside_a_stage_enqueues_at_once(api: Api) -> None:
    response = api.client.post("/v1/holders", json=holder(days=10), headers=api.a)
    assert response.json()["enqueued"] == [{"stage": "renew_in_person", "touch_day": -10, "channel": "sms"}]
    assert pending(api) == [("renew_in_person", -10, "pending")]
    # The daily scan finds it already enqueued.
    from worker.planning.scan import scan

    assert scan(api.runtime.factory, api.runtime.policy, api.runtime.settings.tz).enqueued == []


def test_an_address_change_makes_the_holder_go_in_person_at_once(api: Api) -> None:
    api.client.post("/v1/holders", json=holder(days=13, address="浦东新区A路1号"), headers=api.a)
    assert pending(api) == [("auto_renewal_window", -15, "pending")]
    response = api.client.patch("/v1/holders/E1", json={"address": "静安区B路2号"}, headers=api.a)
    body = response.json()
    assert body["eligible_for_auto_renewal"] is False and body["eligibility_reasons"] == ["address_changed"]
    assert body["enqueued"] == [{"stage": "renew_in_person", "touch_day": -15, "channel": "sms"}]
    assert pending(api) == [("auto_renewal_window", -15, "cancelled"), ("renew_in_person", -15, "pending")]


def test_list_filters_by_stage_and_expiry_and_pages(api: Api) -> None:
    for i, days in enumerate((5, 10, 25, 90, -3)):
        api.client.post("/v1/holders", json=holder(f"E{i}", days=days), headers=api.a)
    in_person = api.client.get("/v1/holders", params={"stage": "renew_in_person"}, headers=api.a).json()
    assert [h["external_id"] for h in in_person["items"]] == ["E0", "E1"]
    before = (TODAY + timedelta(days=11)).isoformat()
    soon = api.client.get("/v1/holders", params={"expires_before": before}, headers=api.a).json()
    assert [h["external_id"] for h in soon["items"]] == ["E4", "E0", "E1"]
    page = api.client.get("/v1/holders", params={"limit": 2, "offset": 2}, headers=api.a).json()
    assert ([h["external_id"] for h in page["items"]], page["total"], page["next_offset"]) == (["E1", "E2"], 5, 4)
    bad = api.client.get("/v1/holders", params={"stage": "nope"}, headers=api.a)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "stage"


def test_confirm_a_renewal_stops_the_old_cycle(api: Api) -> None:
    api.client.post("/v1/holders", json=holder(days=3), headers=api.a)
    new_expiry = (TODAY + timedelta(days=368)).isoformat()
    response = api.client.post("/v1/holders/E1/renewal", json={"expires_on": new_expiry}, headers=api.a)
    assert response.status_code == 200 and response.json()["stage"] == "valid"
    assert pending(api) == [("renew_in_person", -3, "cancelled")]
    backwards = api.client.post("/v1/holders/E1/renewal", json={"expires_on": "2020-01-01"}, headers=api.a)
    assert backwards.status_code == 422 and "must be after" in backwards.json()["errors"][0]["message"]


def test_notifications_show_their_delivery_status(api: Api) -> None:
    api.client.post("/v1/holders", json=holder(days=10), headers=api.a)
    [note] = api.client.get("/v1/holders/E1/notifications", headers=api.a).json()
    assert (note["stage"], note["touch_day"], note["channel"], note["status"]) == ("renew_in_person", -10, "sms", "pending")
    assert note["attempts"] == []


def test_summary_counts_by_stage_and_lists_the_next_30_days(api: Api) -> None:
    for i, days in enumerate((5, 10, 25, 90, -3)):
        api.client.post("/v1/holders", json=holder(f"E{i}", days=days), headers=api.a)
    summary = api.client.get("/v1/summary", headers=api.a).json()
    assert summary["holders"] == 5
    assert summary["by_stage"] == {"valid": 1, "upcoming": 1, "auto_renewal_window": 0, "renew_in_person": 2,
                                   "expired_grace": 1, "accumulation_reset": 0, "lapsed": 0}
    assert [s["external_id"] for s in summary["expiring_next_30_days"]] == ["E0", "E1", "E2"]


def test_export_gives_everything_held_on_one_holder(api: Api) -> None:
    api.client.post("/v1/holders", json=holder(days=10, address="浦东新区A路1号"), headers=api.a)
    export = api.client.get("/v1/holders/E1/export", headers=api.a).json()
    assert export["holder"]["name"] == "张三" and len(export["address_fingerprint"]) == 64
    assert [n["stage"] for n in export["notifications"]] == ["renew_in_person"]
    assert export["hr_events"] == []


# -- imports ---------------------------------------------------------------------------------

CSV_OK = ("external_id,name,phone,email,expires_on,housing_type\n"
          f"C1,王芳,13800138001,,{(TODAY + timedelta(days=10)).isoformat()},own\n"
          f"C2,李强,,li@example.com,{(TODAY + timedelta(days=200)).isoformat()},rental\n")


def test_import_a_csv_roster_enqueues_what_is_due(api: Api) -> None:
    response = api.client.post("/v1/holders/import", files={"file": ("r.csv", CSV_OK.encode("gbk"), "text/csv")},
                               headers=api.a)
    assert response.status_code == 200, response.text
    assert response.json() | {"created": None} == {"dry_run": False, "rows": 2, "created": None, "updated": [],
                                                   "unchanged": [], "renewed": [], "enqueued": 1,
                                                   "changes": [], "losing_auto_renewal": []}
    assert sorted(response.json()["created"]) == ["C1", "C2"]


def test_import_an_xlsx_roster_with_chinese_headers(api: Api) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["工号", "姓名", "手机", "居住证有效期至", "居住类型"])
    sheet.append(["X1", "赵敏", 13800138002, datetime.combine(TODAY + timedelta(days=100), datetime.min.time()), "宿舍"])
    data = io.BytesIO()
    book.save(data)
    response = api.client.post("/v1/holders/import", files={"file": ("花名册.xlsx", data.getvalue())}, headers=api.a)
    assert response.status_code == 200, response.text
    assert api.client.get("/v1/holders/X1", headers=api.a).json()["housing_type"] == "dormitory"


def test_a_bad_import_lists_every_bad_row_and_writes_nothing(api: Api) -> None:
    bad = CSV_OK + "C3,坏,021-1234567,,2027-02-30,castle\n"
    response = api.client.post("/v1/holders/import", files={"file": ("r.csv", bad.encode())}, headers=api.a)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {(e["row"], e["field"]) for e in errors} == {(4, "phone"), (4, "expires_on"), (4, "housing_type")}
    assert api.client.get("/v1/holders", headers=api.a).json()["total"] == 0


def test_import_dry_run_writes_nothing(api: Api) -> None:
    response = api.client.post("/v1/holders/import", params={"dry_run": "true"},
                               files={"file": ("r.csv", CSV_OK.encode())}, headers=api.a)
    assert response.json()["dry_run"] is True and len(response.json()["created"]) == 2
    assert api.client.get("/v1/holders", headers=api.a).json()["total"] == 0 and pending(api) == []


# -- authentication, isolation, limits -------------------------------------------------------

ENDPOINTS = [
    ("GET", "/v1/holders/E1", None), ("PATCH", "/v1/holders/E1", {"name": "x"}), ("DELETE", "/v1/holders/E1", None),
    ("POST", "/v1/holders/E1/renewal", {"expires_on": "2030-01-01"}), ("GET", "/v1/holders/E1/notifications", None),
    ("GET", "/v1/holders/E1/export", None),
]


@pytest.mark.parametrize(("method", "path", "body"), [*ENDPOINTS, ("GET", "/v1/holders", None),
                                                               ("GET", "/v1/summary", None),
                                                               ("POST", "/v1/holders", holder())])
@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_without_a_valid_token_every_endpoint_is_401(api: Api, method: str, path: str, body: object,
                                                    auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = api.client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["errors"][0]["message"] in ("missing bearer token", "invalid bearer token")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_another_teams_holder_looks_exactly_like_a_missing_one(api: Api, method: str, path: str, body: object) -> None:
    api.client.post("/v1/holders", json=holder(days=10), headers=api.a)
    theirs = api.client.request(method, path, json=body, headers=api.b)
    missing = api.client.request(method, path.replace("E1", "E404"), json=body, headers=api.a)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert api.client.get("/v1/holders/E1", headers=api.a).json()["name"] == "张三"  # untouched


def test_another_teams_holders_are_not_listed_or_counted(api: Api) -> None:
    api.client.post("/v1/holders", json=holder(days=10), headers=api.a)
    assert api.client.get("/v1/holders", headers=api.b).json()["total"] == 0
    assert api.client.get("/v1/summary", headers=api.b).json()["holders"] == 0
    # The same external_id in another team is another person.
    assert api.client.post("/v1/holders", json=holder(days=10), headers=api.b).status_code == 201


def test_a_rotated_token_stops_working(api: Api) -> None:
    with unit_of_work(api.runtime.factory) as session:
        new = registry.issue_token(session, registry.get_team(session, "acme"))
    assert api.client.get("/v1/summary", headers=api.a).status_code == 401
    assert api.client.get("/v1/summary", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_only_a_hash_of_the_token_is_stored(api: Api) -> None:
    token = api.a["Authorization"].split()[1]
    with unit_of_work(api.runtime.factory) as session:
        [stored] = [t.token_hash for t in tokens.tokens_of(session, registry.get_team(session, "acme"))]
    assert stored != token and len(stored) == 64
    assert not any(token in cell for cell in all_text_cells(api))


def test_too_many_requests_get_429_with_retry_after(db_url: str) -> None:
    api = make_api(db_url, api_rate_per_minute=60, api_burst=3)
    codes = [api.client.get("/v1/summary", headers=api.a).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = api.client.get("/v1/summary", headers=api.a)
    assert limited.headers["Retry-After"] == "1"
    assert api.client.get("/v1/summary", headers=api.b).status_code == 200  # per token, not global
    api.runtime.engine.dispose()


def test_oversized_bodies_get_413(db_url: str) -> None:
    api = make_api(db_url, api_max_body_bytes=2048, api_max_upload_bytes=4096)
    big = api.client.post("/v1/holders", json=holder(name="x" * 5000), headers=api.a)
    assert big.status_code == 413 and "too large" in big.json()["errors"][0]["message"]
    upload = api.client.post("/v1/holders/import", files={"file": ("r.csv", b"a" * 10_000)}, headers=api.a)
    assert upload.status_code == 413
    api.runtime.engine.dispose()


def test_validation_errors_are_json_with_field_and_message(api: Api) -> None:
    response = api.client.post("/v1/holders", json=holder(expires_on="soon", phone="12345"), headers=api.a)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"expires_on"}
    phone = api.client.post("/v1/holders", json=holder(phone="12345"), headers=api.a)
    assert phone.status_code == 422 and phone.json()["errors"][0]["field"] == "phone"
    unknown = api.client.post("/v1/holders", json=holder(id_card="310101199001011234"), headers=api.a)
    assert unknown.status_code == 422  # an ID-card number has nowhere to go: it is never stored
    assert "Traceback" not in response.text


def test_the_openapi_document_describes_the_v1_api(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert {"/v1/holders", "/v1/holders/{external_id}", "/v1/holders/import", "/v1/holders/{external_id}/renewal",
            "/v1/holders/{external_id}/notifications", "/v1/holders/{external_id}/export",
            "/v1/summary"} <= set(doc["paths"])


# -- deletion --------------------------------------------------------------------------------

def test_deleting_a_holder_leaves_no_personal_data_in_any_table(api: Api, db_url: str) -> None:
    from notifiers.base import Reply
    from worker.delivery.inbound import apply_reply
    from worker.store.models import utcnow

    api.client.post("/v1/holders", json=holder(days=10, name="欧阳娜娜", phone="13912345678",
                                               email="ouyang.nana@example.com", address="徐汇区秘密路88号"),
                    headers=api.a)
    dispatcher = api.runtime.dispatcher()
    dispatcher.window = api.runtime.policy.send_window.__class__(datetime.min.time(), datetime.min.time())
    dispatcher.run_batch()
    with unit_of_work(api.runtime.factory) as session:
        apply_reply(session, Reply("twilio", "+8613912345678", "请问怎么办理", None), utcnow())
    assert api.client.delete("/v1/holders/E1", headers=api.a).status_code == 204
    needles = ("欧阳娜娜", "13912345678", "ouyang.nana", "秘密路")
    assert not [cell for cell in all_text_cells(api) if any(n in cell for n in needles)]
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        raw = Path(path).read_bytes()
        assert not any(n.encode("utf-8") in raw for n in needles)  # secure_delete: not even in free pages


def all_text_cells(api: Api) -> list[str]:
    """Every value of every row of every table, as text."""
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(api.runtime.engine)
    with api.runtime.engine.connect() as conn:
        return [str(cell) for table in meta.sorted_tables for row in conn.execute(table.select()) for cell in row]


# -- points columns ---------------------------------------------------------------------------

@pytest.mark.parametrize(("ends_on", "under_one_year"), [
    ("2027-08-31", False),  # 2026-09-01 … 2027-08-31 is exactly one year
    ("2027-08-30", True),   # a day short
])
def test_the_contract_start_round_trips_and_a_term_under_one_year_shows_in_explain(
        api: Api, ends_on: str, under_one_year: bool) -> None:
    points = {"points_basis": "education", "points_valid_until": "2027-03-01",
              "labor_contract_starts_on": "2026-09-01", "labor_contract_ends_on": ends_on}
    created = api.client.post("/v1/holders", json=holder(**points), headers=api.a)
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in points} == points
    explained = api.client.get("/v1/holders/E1/explain", headers=api.a).json()
    assert explained["points"]["labor_contract_starts_on"] == "2026-09-01"
    codes = [f["code"] for f in explained["points"]["findings"]]
    assert codes == (["labor_contract_under_one_year"] if under_one_year else [])


def test_a_contract_start_after_its_end_is_refused_and_changes_nothing(api: Api) -> None:
    api.client.post("/v1/holders", json=holder(labor_contract_ends_on="2027-06-30"), headers=api.a)
    response = api.client.patch("/v1/holders/E1", json={"labor_contract_starts_on": "2027-07-01"}, headers=api.a)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"row": None, "field": "labor_contract_starts_on",
                                          "message": "after the contract's end (2027-06-30)"}]
    assert api.client.get("/v1/holders/E1", headers=api.a).json()["labor_contract_starts_on"] is None
