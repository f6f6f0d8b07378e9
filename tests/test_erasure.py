"""Erasure leaves nothing readable: after a deletion on a running server no byte of the holder is
left in the SQLite file or its WAL, and unconfirmed uploads go at sign-out and on a timer."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from worker.http.app import _purge_uploads
from worker.http.web.preview import MAX_AGE_SECONDS, UploadStore
from worker.store.db import unit_of_work
from worker.store.maintenance import checkpoint_after_erasure
from worker.store.models import Holder

from .test_api import holder, make_api
from .test_web import Web, make_web, roster, upload

NAME, PHONE, EMAIL = "欧阳独特", "13912345678", "ouyang.unique@example.com"
SECRETS = (NAME.encode(), PHONE.encode(), EMAIL.encode())


def _files(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name)}


def test_a_deleted_holder_is_in_neither_the_database_file_nor_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    from worker.store.db import upgrade
    upgrade(f"sqlite:///{db}")
    api = make_api(f"sqlite:///{db}")
    try:
        body = holder("E1", name=NAME, phone=PHONE, email=EMAIL, employer="独特公司")
        assert api.client.post("/v1/holders", json=body, headers=api.a).status_code == 201
        # Other writes after it, as on a live server: the holder's pages get rewritten in the WAL.
        for i in range(20):
            api.client.post("/v1/holders", json=holder(f"X{i}", phone=f"1380013{i:04d}"), headers=api.a)
        assert any(NAME.encode() in data for data in _files(db).values())  # it really was on disk
        assert api.client.delete("/v1/holders/E1", headers=api.a).status_code == 204
        files = _files(db)
        assert files.get("registry.db-wal", b"") == b""  # checkpointed and truncated
        for name, data in files.items():
            for secret in SECRETS:
                assert secret not in data, f"{secret!r} still readable in {name}"
    finally:
        api.runtime.engine.dispose()


def test_the_checkpoint_waits_out_a_reader_in_another_connection(tmp_path: Path) -> None:
    import sqlite3
    import threading

    from worker.store.db import make_engine, upgrade

    db = tmp_path / "r.db"
    upgrade(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO app_meta (key, value) VALUES ('k', 'v')")
    reader = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM app_meta").fetchall()  # holds a snapshot: a checkpoint must wait
    release = threading.Timer(0.3, lambda: reader.execute("COMMIT"))
    release.start()
    try:
        assert checkpoint_after_erasure(engine) is True
        assert (tmp_path / "r.db-wal").stat().st_size == 0
    finally:
        release.join()
        reader.close()
        engine.dispose()


@pytest.fixture
def site(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    built: Web = make_web(db_url)
    yield built
    built.runtime.engine.dispose()


def _store_files(web: Web) -> list[str]:
    store = _store(web)
    return sorted(p.name for p in store.directory.iterdir()) if store.directory.is_dir() else []


def _store(web: Web) -> UploadStore:
    store = web.app.state.upload_store  # type: ignore[attr-defined]
    assert isinstance(store, UploadStore)
    return store


def test_signing_out_removes_the_sessions_unconfirmed_uploads(site: Web) -> None:
    client, csrf = site.signed_in()
    other, other_csrf = site.signed_in()
    mine = upload(client, csrf, roster(("E1", "张三", "13800138000", "2027-06-01"))).rsplit("/", 1)[1]
    theirs = upload(other, other_csrf, roster(("E2", "李四", "13800138001", "2027-06-01"))).rsplit("/", 1)[1]
    assert {f"{mine}.bin", f"{theirs}.bin"} <= set(_store_files(site))
    client.post("/web/logout", data={"csrf": csrf})
    left = set(_store_files(site))
    assert f"{mine}.bin" not in left and f"{mine}.json" not in left
    assert f"{theirs}.bin" in left  # another session's upload stays until it signs out or expires


def test_forgotten_uploads_are_purged_on_a_timer(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    store.directory.mkdir()
    old, fresh = store.directory / "old.bin", store.directory / "fresh.bin"
    old.write_bytes(b"roster"), fresh.write_bytes(b"roster")
    aged = time.time() - MAX_AGE_SECONDS - 60
    os.utime(old, (aged, aged))

    async def run_timer() -> None:
        timer = asyncio.create_task(_purge_uploads(store, every=0.01))
        for _ in range(200):
            if not old.exists():
                break
            await asyncio.sleep(0.01)
        timer.cancel()

    asyncio.run(run_timer())
    assert not old.exists() and fresh.exists()


def test_the_app_starts_the_purge_timer_with_its_lifespan(site: Web) -> None:
    store = _store(site)
    store.directory.mkdir(parents=True, exist_ok=True)
    stale = store.directory / "stale.bin"
    stale.write_bytes(b"x")
    aged = time.time() - MAX_AGE_SECONDS - 60
    os.utime(stale, (aged, aged))
    with TestClient(site.app):  # type: ignore[arg-type]  # runs the lifespan: the first purge is at once
        for _ in range(100):
            if not stale.exists():
                break
            time.sleep(0.02)
    assert not stale.exists()


def test_erasure_on_either_database_leaves_no_row(site: Web) -> None:
    client, csrf = site.signed_in()
    from .test_web import confirm
    confirm(client, csrf, upload(client, csrf, roster(("E1", NAME, PHONE, "2027-06-01"))))
    page = client.get("/web/holder?id=E1").text
    import re
    token = re.search(r'action="/web/holder/delete\?id=E1">\s*<input type="hidden" name="csrf" value="([^"]+)"', page)
    assert token
    assert client.post("/web/holder/delete?id=E1", data={"csrf": token.group(1)}).status_code == 303
    with unit_of_work(site.runtime.factory) as session:
        assert session.query(Holder).count() == 0
