"""Shared fixtures: a real registry migrated by Alembic (a SQLite file, and a PostgreSQL database
when PERMIT_TEST_POSTGRES_URL points at a server), a policy and a team."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from schedules.policy import Policy, default_policy
from worker.registry import records as registry
from worker.store.db import make_engine, session_factory, unit_of_work, upgrade
from worker.store.models import Team

POSTGRES_URL = os.environ.get("PERMIT_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
# Per test run, so concurrent runs against one server do not drop each other's template.
_TEMPLATE = f"permit_template_{os.getpid()}"


def _admin(url: str) -> Engine:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)


# Outside the embedded default the keys must come from the environment (worker/ops/runtime.py), and a
# registry refuses a fingerprint key but its own: every test, and every CLI or daemon it starts,
# uses these. Tests of the generated keys and of the refusals unset or change them.
TEST_SECRETS = {"PERMIT_FINGERPRINT_KEY": "test-key", "PERMIT_SESSION_SECRET": "test-session-secret-" + "0" * 40}


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TEST_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated database to copy per test: CREATE DATABASE ... TEMPLATE is much faster than
    running the migrations every time."""
    if not POSTGRES_URL:
        yield None
        return
    admin = _admin(POSTGRES_URL)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{_TEMPLATE}"'))
    upgrade(make_url(POSTGRES_URL).set(database=_TEMPLATE).render_as_string(hide_password=False))
    yield _TEMPLATE
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite registry migrated once per run; each test gets a copy (the migrations cost far
    more than a copy, and test_schema.py still runs them on fresh files)."""
    path = tmp_path_factory.mktemp("template") / "registry.db"
    upgrade(f"sqlite:///{path}")
    return path


def copy_sqlite(template: Path, target: Path) -> None:
    # The backup API copies a consistent database whatever is still in the template's WAL.
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_template: str | None,
           sqlite_template: Path) -> Iterator[str]:
    if request.param == "sqlite":
        target = tmp_path / "registry.db"
        copy_sqlite(sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    assert POSTGRES_URL and postgres_template
    name = f"permit_t_{uuid.uuid4().hex[:12]}"
    admin = _admin(POSTGRES_URL)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def policy() -> Policy:
    return default_policy()


@pytest.fixture
def team(factory: sessionmaker[Session]) -> Team:
    with unit_of_work(factory) as session:
        return registry.create_team(session, "acme", "Acme 上海", "hr@acme.example")


# Fixtures that start the installed CLI in a subprocess (seconds each): a test using one is
# slow wherever it lives, so `make test-fast` leaves it out without a mark to forget.
_SUBPROCESS_FIXTURES = frozenset({"run", "cli", "run_cli"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SUBPROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
