"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from worker.db import make_engine, schema_is_current, upgrade
from worker.models import Base


def test_migrations_and_models_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_schema_is_current_only_after_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    assert not schema_is_current(engine)
    upgrade(url)
    assert schema_is_current(engine)
    upgrade(url)  # a second upgrade is a no-op
    assert {"teams", "holders", "notifications", "delivery_attempts", "scan_runs"} <= set(inspect(engine).get_table_names())
    engine.dispose()
