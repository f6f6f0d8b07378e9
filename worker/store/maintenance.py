"""After the daily scan: give PostgreSQL back a quiet day's index.

The scan moves every due holder's `next_due_on` forward. PostgreSQL keeps the old row versions
and their index entries until a VACUUM, and its statistics still say ~1% of holders are due
today; so the next scan's range read walked a bitmap over ~11,000 dead rows per million holders
(40-60 ms measured, against a 50 ms target for a day with nothing due). Autovacuum's default
threshold (20% of the table changed) would not fire for weeks at ~1% a day. One
`VACUUM (ANALYZE) holders` after the scan removes the dead entries and refreshes the statistics:
the next empty day reads the index in a few milliseconds.

It runs after the scan is recorded, so it delays no reminder, and only on the replica that
scanned. SQLite updates rows in place and needs nothing. A failure (e.g. a role that does not
own the table) is logged and costs only the speed-up.
"""

from __future__ import annotations

import time
from time import perf_counter

import structlog
from sqlalchemy import Engine, text

log = structlog.get_logger("worker.maintenance")


def vacuum_holders(engine: Engine) -> float | None:
    """VACUUM (ANALYZE) the holders table on PostgreSQL; seconds taken, or None when there was
    nothing to do (another database) or it failed."""
    if engine.dialect.name != "postgresql":
        return None
    started = perf_counter()
    try:
        # VACUUM cannot run inside a transaction block.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) holders"))
    except Exception as error:  # the scan's work is done; only the next scan's speed is at stake
        log.warning("scan.vacuum_failed", error=str(error).splitlines()[0])
        return None
    return perf_counter() - started


# After an erasure: how long to keep asking for a checkpoint while readers hold old pages.
_CHECKPOINT_TRIES = 20
_CHECKPOINT_PAUSE = 0.1


def checkpoint_after_erasure(engine: Engine) -> bool:
    """SQLite: copy the WAL into the database file and truncate the WAL, so an erased holder's
    rows (still in the WAL's older frames) leave the disk now, not at some later checkpoint.
    secure_delete (worker.store.db) zeroes the freed pages in the database file itself. True when the
    WAL is empty afterwards (and on PostgreSQL, where VACUUM does this part: deploy/README.md)."""
    if engine.dialect.name != "sqlite":
        return True
    for _ in range(_CHECKPOINT_TRIES):
        with engine.connect() as conn:
            busy, _log, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if not busy:
            return True
        time.sleep(_CHECKPOINT_PAUSE)  # another process is reading an older snapshot: wait it out
    log.warning("erasure.checkpoint_busy", tries=_CHECKPOINT_TRIES)
    return False
