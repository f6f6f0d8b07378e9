"""Secrets come from the environment outside the embedded default: `serve` and `run` refuse to
start without them (one line naming the variable), a registry refuses a key other than its own,
and a copy of the database alone cannot make a session cookie."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from worker.http.web.session import COOKIE
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import records as registry
from worker.registry import tokens
from worker.registry.fingerprint import FingerprintKeyError, fingerprint_key
from worker.store.db import unit_of_work, upgrade
from worker.store.models import AppMeta

from .test_cli import CMD
from .test_web import make_web, sign_in

SECRET = "s" * 64


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMIT_", "TWILIO_"))}
    return {**env, "PERMIT_DATABASE_URL": db_url, **extra}


def _production(db_url: str, tmp_path: Path) -> dict[str, str]:
    """db_url as production: PostgreSQL as it is, SQLite behind an https public URL."""
    if db_url.startswith("sqlite"):
        return {"PERMIT_PUBLIC_URL": "https://worker.example.com"}
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["run"]])
@pytest.mark.parametrize("missing", ["PERMIT_SESSION_SECRET", "PERMIT_FINGERPRINT_KEY"])
def test_production_refuses_to_start_without_a_secret(db_url: str, tmp_path: Path, command: list[str],
                                                      missing: str) -> None:
    given = {"PERMIT_SESSION_SECRET": SECRET, "PERMIT_FINGERPRINT_KEY": "test-key"}
    given.pop(missing)
    env = _env(db_url, **_production(db_url, tmp_path), **given)
    proc = subprocess.run([*CMD, *command], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"permit-worker: error: {missing} is not set: required outside the embedded default")


@pytest.mark.slow
def test_the_embedded_default_keeps_generated_keys_in_its_database(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERMIT_FINGERPRINT_KEY")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    upgrade(url)
    runtime = Runtime(Settings(database_url=url))
    assert runtime.settings.embedded and runtime.settings.missing_secrets() == []
    runtime.require_secrets()  # nothing to refuse: a fresh clone runs without configuration
    with unit_of_work(runtime.factory) as session:
        assert session.get(AppMeta, "address_fingerprint_key") is not None
    runtime.engine.dispose()


def test_postgresql_never_generates_a_fingerprint_key(factory, db_url: str) -> None:
    with unit_of_work(factory) as session:
        if db_url.startswith("postgresql"):
            with pytest.raises(FingerprintKeyError, match="PERMIT_FINGERPRINT_KEY is not set"):
                fingerprint_key(session, None)
        else:
            assert len(fingerprint_key(session, None)) == 32


def test_a_registry_refuses_a_fingerprint_key_other_than_its_own(factory) -> None:
    with unit_of_work(factory) as session:
        first = fingerprint_key(session, "the-first-key")
    with unit_of_work(factory) as session, pytest.raises(FingerprintKeyError, match="not the key this registry"):
        fingerprint_key(session, "another-key")
    with unit_of_work(factory) as session:
        assert fingerprint_key(session, "the-first-key") == first


@pytest.mark.slow
def test_a_generated_key_moves_into_the_environment_unchanged(run_cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    run_cli(url, "db", "upgrade")
    run_cli(url, "teams", "create", "acme", "--name", "Acme")
    roster = tmp_path / "r.csv"
    roster.write_text("external_id,phone,expires_on,address\nE1,13800138000,2027-06-01,浦东新区1号\n", encoding="utf-8")
    run_cli(url, "holders", "import", str(roster), "--team", "acme")  # generates the key, embedded
    lines = run_cli(url, "keys", "export").stdout.splitlines()
    key = next(line.split("=", 1)[1] for line in lines if line.startswith("PERMIT_FINGERPRINT_KEY="))
    assert key.startswith("hex:")
    # The same key from the environment: the same fingerprint (the address is unchanged), and the
    # copy kept in the database is gone.
    out = run_cli(url, "holders", "import", str(roster), "--team", "acme", PERMIT_FINGERPRINT_KEY=key).stdout
    assert "1 unchanged" in out
    assert "PERMIT_FINGERPRINT_KEY" not in run_cli(url, "keys", "export", PERMIT_FINGERPRINT_KEY=key).stdout
    wrong = run_cli(url, "holders", "import", str(roster), "--team", "acme", PERMIT_FINGERPRINT_KEY="nope", check=2)
    assert "not the key this registry" in wrong.stderr


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(url: str, *args: str, check: int = 0, **extra: str) -> subprocess.CompletedProcess[str]:
        env = _env(url, **extra)
        proc = subprocess.run([*CMD, *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == check, proc.stderr
        return proc
    return run


def test_a_copy_of_the_database_cannot_make_a_session_cookie(db_url: str) -> None:
    web = make_web(db_url, session_secret=SECRET)
    try:
        client = web.client()
        sign_in(client, web.tokens["acme"])
        assert client.get("/web/").status_code == 200
        with unit_of_work(web.runtime.factory) as session:
            team = registry.get_team(session, "acme")
            default = tokens.tokens_of(session, team)[0]
            token_hash, team_id, token_id = default.token_hash, team.id, default.id
            kept = session.scalar(select(AppMeta.value).where(AppMeta.key == "web_session_secret"))
        assert kept is None  # with the secret in the environment, the database holds no signing key
        forger = web.client()
        # Everything the database tells: the team id and its token hash. Without the secret, the
        # cookie cannot be signed, and the old tag (a prefix of the hash) no longer binds it.
        for key in ("", token_hash or ""):
            signer = URLSafeTimedSerializer(key or "guess", salt="permit-worker.web.session")
            forged = signer.dumps({"s": "x" * 24, "c": "y" * 32, "t": team_id, "k": token_id,
                                   "g": (token_hash or "")[:16], "f": []})
            forger.cookies.set(COOKIE, forged, path="/web")
            assert forger.get("/web/").status_code == 303  # to the sign-in page
        real = URLSafeTimedSerializer(SECRET, salt="permit-worker.web.session")
        forger.cookies.set(COOKIE, real.dumps({"s": "x" * 24, "c": "y" * 32, "t": team_id, "k": token_id,
                                               "g": (token_hash or "")[:16], "f": []}), path="/web")
        assert forger.get("/web/").status_code == 303  # even signed, a hash prefix is not the tag
    finally:
        web.runtime.engine.dispose()
