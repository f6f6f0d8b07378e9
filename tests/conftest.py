"""Shared fixtures: a real SQLite file migrated by Alembic, a policy and a team."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy, default_policy
from worker import registry
from worker.db import make_engine, session_factory, unit_of_work, upgrade
from worker.models import Team


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    return url


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
