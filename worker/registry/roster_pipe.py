"""A big roster CSV validated on a second core while the import writes it.

Validating costs about 25 µs a row in Python and writing about as much again plus the
database's own time; done one after the other, a million-row file spent half a minute checking
before the first row was written. Here a child process reads and validates the file and sends
the valid rows, a chunk at a time, through a pipe; the import writes each chunk as it comes.
The pipe holds a chunk or two, so the child never runs far ahead: memory stays flat in the file
size, and no temporary file is needed.

A file is still all-or-nothing: once a row is bad the child sends no more rows, reads on to
count every problem, and the rows iterator then raises the file's RosterError, which rolls the
import's transaction back. Small files (most of them) keep the plain two passes: a process start
costs more than it saves below a few megabytes.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from worker.registry.roster import RosterError, RosterRow, RowError, iter_roster_csv

# Files at least this big are validated in a child process (about 90,000 rows of a typical roster).
PIPELINE_FROM_BYTES = 8 << 20
_CHUNK = 1000


def _validate(path: str, conn: Connection) -> None:
    """The child: every valid row of the file, `_CHUNK` at a time, then how it ended."""
    # Ctrl-C reaches the whole process group: the parent handles it (and ends this process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    chunk: list[RosterRow] = []
    try:
        with open(path, "rb") as stream:
            for row in iter_roster_csv(stream):
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    conn.send(("rows", chunk, stream.tell()))
                    chunk = []
            if chunk:
                conn.send(("rows", chunk, stream.tell()))
        conn.send(("done", None, None))
    except RosterError as exc:
        # As data, not the exception: what it carries is what the parent rebuilds.
        conn.send(("invalid", (exc.errors, exc.total, exc.counts), None))
    except BrokenPipeError:  # the parent stopped listening (it failed, or was interrupted)
        return
    except OSError as exc:
        conn.send(("invalid", ([RowError(0, "file", f"cannot read the file: {exc.strerror}")], None, None), None))
    except Exception as exc:  # a bug: said in one line by the parent, not as a child's traceback
        conn.send(("crashed", f"{type(exc).__name__}: {exc}", None))
    finally:
        conn.close()


@contextmanager
def validated_in_background(path: Path, on_progress: Callable[[int], object] | None = None,
                            ) -> Iterator[Iterator[RosterRow]]:
    """The file's valid rows as a child process validates them; the iterator raises the file's
    RosterError at the end if any row was bad. `on_progress(bytes_read)` after each chunk."""
    # spawn, not fork: the parent may hold database connections and threads a fork would copy.
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_validate, args=(str(path), sender), name="roster-validation", daemon=True)
    child.start()
    sender.close()  # the child's end: EOF for the parent once the child is gone

    def rows() -> Iterator[RosterRow]:
        while True:
            try:
                kind, payload, position = receiver.recv()
            except EOFError:
                raise RosterError([RowError(0, "file", "the roster check stopped unexpectedly")]) from None
            if kind == "rows":
                yield from payload
                if on_progress is not None:
                    on_progress(position)
            elif kind == "done":
                return
            elif kind == "crashed":
                raise RuntimeError(f"the roster check failed: {payload}")
            else:
                errors, total, counts = payload
                raise RosterError(errors, total, counts)

    try:
        yield rows()
    finally:
        receiver.close()
        child.join(timeout=5)
        if child.is_alive():  # the import failed or was interrupted mid-file: the check is moot
            child.terminate()
            child.join()
