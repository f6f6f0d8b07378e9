"""Test helpers shared by several test modules: a recording notifier and holder registration."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, SendResult
from worker.delivery.dispatch import Dispatcher
from worker.ops.daemon import Daemon, Role
from worker.ops.runtime import Runtime
from worker.registry import records as registry
from worker.registry import roster_import
from worker.registry.roster import RosterRow
from worker.store.db import unit_of_work
from worker.store.models import Team


@dataclass
class RecordingNotifier:
    """A small fake: records every message and answers from a script (default: sent)."""

    name: str = "recording"
    channels: frozenset[str] = frozenset({"sms", "email"})
    script: list[SendResult] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> SendResult:
        self.sent.append(message)
        return self.script.pop(0) if self.script else SendResult.sent(f"rec-{len(self.sent)}")


def add_holder(factory: sessionmaker[Session], team: Team, external_id: str, expires_on: date, **fields: object) -> int:
    """Register one holder through the same path as a roster import."""
    values: dict[str, object] = {"phone": "+8613800138000", "housing_type": "own", "name": "张三"}
    values.update(fields)
    present = frozenset({"external_id", "expires_on", *values})
    row = RosterRow(row=2, external_id=external_id, expires_on=expires_on, present=present, **values)  # type: ignore[arg-type]
    with unit_of_work(factory) as session:
        roster_import.import_roster(session, session.merge(team), [row], "test-key")
        return registry.get_holder(session, session.merge(team), external_id).id


def recording_daemon(runtime: Runtime, role: Role, notifier: RecordingNotifier | None = None) -> Daemon:
    """A daemon of `role` on the runtime's registry, delivering to a recording notifier."""
    notifier = notifier or RecordingNotifier()
    dispatcher = Dispatcher(runtime.factory, {"sms": notifier, "email": notifier}, runtime.policy,
                            runtime.settings.tz, send_window=runtime.settings.send_window_override())
    return Daemon(runtime, dispatcher=dispatcher, role=role)


@contextmanager
def hanging_up_after(marker: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 that reads a request up to `marker` (all of it has left), then
    hangs up without answering: the base URL, for "the answer was lost" tests."""
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(2)
            received = b""
            while marker not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        thread.join(timeout=5)
        listener.close()


def serve(app: Any) -> Iterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1 until the generator is closed: its base
    URL (a fixture does `yield from serve(app)`)."""
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
