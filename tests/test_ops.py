"""Operations: daemon roles, worker heartbeats, /healthz, /metrics and the deploy manifests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import PolicyError
from worker.cli.main import main
from worker.http.app import create_app
from worker.ops import heartbeat
from worker.ops.daemon import (
    DIGEST_JOB,
    DISPATCH_JOB,
    PRUNE_JOB,
    SCAN_JOB,
    SCAN_WATCH_JOB,
    Daemon,
    Role,
)
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.db import unit_of_work
from worker.store.models import (
    DeliveryAttempt,
    Notification,
    ScanRun,
    Team,
    WorkerHeartbeat,
    utcnow,
)

from .support import RecordingNotifier, add_holder, recording_daemon

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    rt = Runtime(Settings(database_url=db_url, send_window="00:00-24:00", dispatch_interval_seconds=0.2))
    yield rt
    rt.engine.dispose()


def client_for(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), raise_server_exceptions=False)


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics body, keyed by name and labels; parsing it also proves the format."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def metric(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def closed_port() -> int:
    """A port nothing listens on: bound, read, released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_beat(factory: sessionmaker[Session], worker_id: str, role: str, age: float,
             last_dispatch_age: float | None = None) -> None:
    now = utcnow()
    with unit_of_work(factory) as session:
        session.add(WorkerHeartbeat(
            worker_id=worker_id, role=role, started_at=now - timedelta(hours=1),
            heartbeat_at=now - timedelta(seconds=age),
            last_dispatch_at=None if last_dispatch_age is None else now - timedelta(seconds=last_dispatch_age)))


def scheduled_jobs(daemon: Daemon) -> set[str]:
    daemon.schedule()
    daemon.scheduler.start(paused=True)
    try:
        return {job.id for job in daemon.scheduler.get_jobs()}
    finally:
        daemon.scheduler.shutdown(wait=False)


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def heartbeat_rows(factory: sessionmaker[Session]) -> list[WorkerHeartbeat]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(WorkerHeartbeat)))


# -- roles --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "jobs"), [
    ("dispatcher", {DISPATCH_JOB}),
    ("scheduler", {SCAN_JOB, SCAN_WATCH_JOB, DIGEST_JOB, PRUNE_JOB}),
    ("all", {SCAN_JOB, SCAN_WATCH_JOB, DIGEST_JOB, DISPATCH_JOB, PRUNE_JOB}),
])
def test_each_role_schedules_only_its_own_jobs(runtime: Runtime, role: Role, jobs: set[str]) -> None:
    assert scheduled_jobs(recording_daemon(runtime, role)) == jobs


def test_an_unknown_role_is_refused(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        recording_daemon(runtime, "sender")  # type: ignore[arg-type]


@pytest.mark.parametrize(("argv", "jobs"), [
    (["run", "--role", "dispatcher"], {DISPATCH_JOB}),
    (["run", "--role", "scheduler"], {SCAN_JOB, SCAN_WATCH_JOB, DIGEST_JOB, PRUNE_JOB}),
    (["run"], {SCAN_JOB, SCAN_WATCH_JOB, DIGEST_JOB, DISPATCH_JOB, PRUNE_JOB}),
])
def test_run_role_option_reaches_the_daemon(db_url: str, monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                            jobs: set[str]) -> None:
    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    # main() would point the root logger at this test's captured stderr, closed once it ends.
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    seen: dict[str, Any] = {}

    def fake_run(self: Daemon, install_signals: bool = True) -> int:
        seen["role"], seen["jobs"] = self.role, scheduled_jobs(self)
        self.runtime.engine.dispose()
        return 0

    monkeypatch.setattr(Daemon, "run", fake_run)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert seen["jobs"] == jobs
    assert seen["role"] == (argv[2] if len(argv) > 1 else "all")


def test_run_rejects_an_unknown_role_as_usage_error(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    assert main(["run", "--role", "sender"]) == 2
    assert "--role" in capsys.readouterr().err


def test_a_scheduler_daemon_sends_nothing(runtime: Runtime, factory: sessionmaker[Session], team: Team) -> None:
    add_holder(factory, team, "S1", datetime.now(SHANGHAI).date() + timedelta(days=10))  # enqueued at once
    notifier = RecordingNotifier()
    daemon = recording_daemon(runtime, "scheduler", notifier)
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    thread.start()
    try:
        assert wait_for(lambda: any(r.role == "scheduler" for r in heartbeat_rows(factory)))
        # Running, with its scan job scheduled: and no dispatch job, so nothing can ever send
        # (rather than waiting a while and seeing that nothing happened yet).
        assert wait_for(lambda: daemon.scheduler.running and daemon.scheduler.get_job(SCAN_JOB) is not None)
        assert daemon.scheduler.get_job(DISPATCH_JOB) is None
    finally:
        daemon.stopping.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert notifier.sent == []
    with unit_of_work(factory) as session:
        assert set(session.scalars(select(Notification.status))) == {"pending"}


# -- heartbeats ---------------------------------------------------------------------------------
def test_a_dispatcher_daemon_keeps_a_heartbeat_and_removes_it_on_a_clean_stop(
        runtime: Runtime, factory: sessionmaker[Session]) -> None:
    daemon = recording_daemon(runtime, "dispatcher")
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    before = utcnow()
    thread.start()
    try:
        # The dispatch job runs at once (and every 0.2 s); each run stamps last_dispatch_at.
        assert wait_for(lambda: any(r.last_dispatch_at is not None for r in heartbeat_rows(factory)))
        [row] = heartbeat_rows(factory)
        assert row.worker_id == daemon.dispatcher.worker_id
        assert row.role == "dispatcher"
        assert before - timedelta(seconds=1) <= row.started_at <= row.heartbeat_at
        assert row.last_dispatch_at is not None and row.last_dispatch_at >= row.started_at
        first_dispatch = row.last_dispatch_at
        assert wait_for(lambda: heartbeat_rows(factory)[0].last_dispatch_at > first_dispatch)  # type: ignore[operator]
    finally:
        daemon.stopping.set()  # exactly what the SIGTERM handler does
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert heartbeat_rows(factory) == []


def test_the_heartbeat_thread_refreshes_the_row_without_clearing_the_last_dispatch(
        factory: sessionmaker[Session]) -> None:
    beat = heartbeat.Heartbeat(factory, "host-a:7", "all", interval=0.1)
    beat.start()
    try:
        [row] = heartbeat_rows(factory)
        assert row.last_dispatch_at is None
        beat.dispatched()
        dispatched_at = heartbeat_rows(factory)[0].last_dispatch_at
        assert dispatched_at is not None
        assert wait_for(lambda: heartbeat_rows(factory)[0].heartbeat_at > dispatched_at)
        assert heartbeat_rows(factory)[0].last_dispatch_at == dispatched_at
    finally:
        beat.stop()
    assert heartbeat_rows(factory) == []


def test_a_restart_under_the_same_worker_id_starts_a_fresh_row(factory: sessionmaker[Session]) -> None:
    # A restarted pod keeps its hostname and usually its pid (1): the row must not look old.
    add_beat(factory, "pod-x:1", "dispatcher", age=600, last_dispatch_age=600)
    beat = heartbeat.Heartbeat(factory, "pod-x:1", "dispatcher", interval=60)
    beat.start()
    try:
        [row] = heartbeat_rows(factory)
        assert row.last_dispatch_at is None
        assert utcnow() - row.heartbeat_at < timedelta(seconds=5)
        assert utcnow() - row.started_at < timedelta(seconds=5)
    finally:
        beat.stop()


def test_rows_of_workers_dead_for_a_day_are_pruned_at_the_next_start(factory: sessionmaker[Session]) -> None:
    add_beat(factory, "dead:1", "dispatcher", age=2 * 86400)
    add_beat(factory, "recent:1", "dispatcher", age=600)
    beat = heartbeat.Heartbeat(factory, "new:1", "scheduler", interval=60)
    beat.start()
    beat.stop()
    assert [r.worker_id for r in heartbeat_rows(factory)] == ["recent:1"]


def test_the_local_health_check_wants_a_fresh_heartbeat_from_this_host(factory: sessionmaker[Session]) -> None:
    assert heartbeat.check_local(factory, hostname="box") is False
    add_beat(factory, "box:12", "dispatcher", age=heartbeat.FRESH_SECONDS + 30)
    add_beat(factory, "box2:12", "dispatcher", age=1)  # another host whose name starts the same
    assert heartbeat.check_local(factory, hostname="box") is False
    add_beat(factory, "box:13", "scheduler", age=1)
    assert heartbeat.check_local(factory, hostname="box") is True


# -- /healthz -----------------------------------------------------------------------------------
def test_healthz_reports_the_last_scan_and_the_dispatcher_heartbeat(runtime: Runtime,
                                                                    factory: sessionmaker[Session]) -> None:
    now = utcnow()
    today = now.astimezone(SHANGHAI).date()
    with unit_of_work(factory) as session:
        session.add(ScanRun(scan_date=today - timedelta(days=1), status="finished", started_at=now - timedelta(days=1),
                            finished_at=now - timedelta(days=1), runs=1))
        session.add(ScanRun(scan_date=today, status="running", claimed_by="x:1", heartbeat_at=now, started_at=now,
                            runs=0))
    add_beat(factory, "disp:1", "dispatcher", age=40)
    add_beat(factory, "sched:1", "scheduler", age=1)  # fresher, but it sends nothing: not counted
    client = client_for(runtime)

    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert body["today"] == today.isoformat()
    assert body["last_scan_date"] == (today - timedelta(days=1)).isoformat()
    assert body["scan_finished_today"] is False
    assert 40 <= body["dispatcher_heartbeat_age_seconds"] < 60
    assert body["dispatchers_alive"] == 1

    with unit_of_work(factory) as session:
        run = session.get(ScanRun, today)
        assert run is not None
        run.status, run.finished_at = "finished", utcnow()
    body = client.get("/healthz").json()
    assert body["last_scan_date"] == today.isoformat()
    assert body["scan_finished_today"] is True


def test_healthz_of_an_empty_registry_is_ok_with_nothing_to_report(runtime: Runtime) -> None:
    response = client_for(runtime).get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["last_scan_date"] is None and body["scan_finished_today"] is False
    assert body["dispatcher_heartbeat_age_seconds"] is None and body["dispatchers_alive"] == 0


@pytest.mark.parametrize("url", [
    "sqlite:////nonexistent-permit-dir/registry.db",
    f"postgresql+psycopg://permit:permit@127.0.0.1:{closed_port()}/permit?connect_timeout=3",
], ids=["sqlite-missing-directory", "postgresql-closed-port"])
def test_an_unreachable_database_makes_healthz_503_and_metrics_say_down(url: str) -> None:
    runtime = Runtime(Settings(database_url=url))
    client = client_for(runtime)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] == "OperationalError"
    assert "unreachable" in body["reason"]
    assert "permit:permit" not in response.text  # no connection details on an open endpoint

    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert metric(samples(scrape.text), "permit_database_up") == 0
    runtime.engine.dispose()


def test_readyz_is_ready_only_with_the_database_the_schema_and_the_policy(runtime: Runtime, tmp_path,
                                                                         db_url: str) -> None:
    ready = client_for(runtime).get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "policy": runtime.policy.name}
    # A database one migration behind (the pod started before the migration Job finished).
    from worker.store.db import upgrade

    behind_url = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(behind_url, "0010")
    behind = Runtime(Settings(database_url=behind_url))
    answer = client_for(behind).get("/readyz")
    assert answer.status_code == 503 and "schema not current" in answer.json()["reason"]
    behind.engine.dispose()
    broken = tmp_path / "policy.yaml"
    broken.write_text("name: broken\nstages: nonsense\n", encoding="utf-8")
    bad_policy = Runtime(Settings(database_url=db_url, policy_file=str(broken)))
    with pytest.raises(PolicyError, match="send_window"):  # no app, so never ready: start-up says why
        client_for(bad_policy)
    bad_policy.engine.dispose()
    gone = Runtime(Settings(database_url="sqlite:////nonexistent-permit-dir/registry.db"))
    answer = client_for(gone).get("/readyz")
    assert answer.status_code == 503 and "unreachable" in answer.json()["reason"]
    gone.engine.dispose()


# -- /metrics -----------------------------------------------------------------------------------
def _note(holder_id: int, touch_day: int, status: str, next_attempt_at: datetime, attempts: int = 0,
          created_at: datetime | None = None) -> Notification:
    expires = date(2027, 1, 20)
    return Notification(holder_id=holder_id, cycle_expires_on=expires, stage="renew_in_person", touch_day=touch_day,
                        touch_on=expires + timedelta(days=touch_day), channel="sms", status=status,
                        attempts=attempts, next_attempt_at=next_attempt_at,
                        created_at=created_at or next_attempt_at - timedelta(days=1))


def _attempt(note: Notification, no: int, outcome: str, finished: datetime, seconds: float,
             notifier: str = "twilio") -> DeliveryAttempt:
    return DeliveryAttempt(notification_id=note.id, attempt_no=no, notifier=notifier,
                           started_at=finished - timedelta(seconds=seconds), finished_at=finished, outcome=outcome)


def test_metrics_report_the_registry_as_it_is(runtime: Runtime, factory: sessionmaker[Session], team: Team) -> None:
    # Far from expiry: registering enqueues nothing, so every outbox row below is ours.
    holder_id = add_holder(factory, team, "M1", datetime.now(SHANGHAI).date() + timedelta(days=300))
    now = utcnow()
    today = now.astimezone(SHANGHAI).date()
    with unit_of_work(factory) as session:
        due_old = _note(holder_id, -30, "pending", now - timedelta(seconds=600))
        # Due since midnight, but enqueued only now (registration): it has not waited for hours.
        due_new = _note(holder_id, -15, "pending", now - timedelta(hours=8), created_at=now - timedelta(seconds=5))
        later = _note(holder_id, -10, "pending", now + timedelta(hours=2))  # waiting for the window
        sending = _note(holder_id, -3, "sending", now)
        sent_a = _note(holder_id, 0, "sent", now, attempts=1)
        sent_b = _note(holder_id, 1, "sent", now, attempts=2)
        failed = _note(holder_id, 30, "failed", now, attempts=3)
        cancelled = _note(holder_id, 50, "cancelled", now)
        session.add_all([due_old, due_new, later, sending, sent_a, sent_b, failed, cancelled])
        session.flush()
        session.add_all([
            _attempt(sent_a, 1, "sent", now - timedelta(minutes=1), 0.2),
            _attempt(sent_b, 1, "transient", now - timedelta(minutes=20), 3.0),
            _attempt(sent_b, 2, "sent", now - timedelta(minutes=2), 0.7, notifier="smtp"),
            _attempt(failed, 1, "transient", now - timedelta(hours=3), 0.1),  # outside the latency hour
            _attempt(failed, 2, "error", now - timedelta(hours=2), 0.1),
            _attempt(failed, 3, "permanent", now - timedelta(minutes=5), 12.0),
        ])
        # A dead worker's claim, reclaimed: it measures the lease, not the provider.
        abandoned = _attempt(sending, 1, "ambiguous", now - timedelta(minutes=3), 300.0)
        abandoned.error = "abandoned: the claim by x:1 ran out before a result was recorded"
        session.add(abandoned)
        session.add(ScanRun(scan_date=today - timedelta(days=1), status="finished", started_at=now - timedelta(days=1),
                            finished_at=now - timedelta(days=1), holders_seen=10, enqueued=3, runs=1))
        session.add(ScanRun(scan_date=today, status="finished", started_at=now - timedelta(minutes=30),
                            finished_at=now - timedelta(minutes=29), holders_seen=10, enqueued=4, runs=2))
    add_beat(factory, "disp:1", "dispatcher", age=20, last_dispatch_age=25)
    add_beat(factory, "disp:2", "dispatcher", age=400)  # dead: not alive, and not the freshest
    add_beat(factory, "sched:1", "scheduler", age=2)

    response = client_for(runtime).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    assert metric(found, "permit_database_up") == 1
    assert metric(found, "permit_scan_runs_total") == 3
    assert metric(found, "permit_scan_enqueued_total") == 7
    with unit_of_work(factory) as session:
        todays = session.get(ScanRun, today)
        assert todays is not None and todays.finished_at is not None
        finished_at = todays.finished_at
    assert metric(found, "permit_scan_last_finished_timestamp_seconds") == pytest.approx(finished_at.timestamp())
    assert metric(found, "permit_scan_finished_today") == 1

    for status, count in {"pending": 3, "sending": 1, "sent": 2, "failed": 1, "cancelled": 1}.items():
        assert metric(found, "permit_notifications", status=status) == count
    assert metric(found, "permit_notifications_sent_total") == 2
    assert metric(found, "permit_notifications_failed_total") == 1
    assert metric(found, "permit_outbox_pending") == 3
    assert metric(found, "permit_outbox_due") == 2
    assert 600 <= metric(found, "permit_outbox_oldest_pending_age_seconds") < 660

    for outcome, count in {"sent": 2, "transient": 2, "permanent": 1, "ambiguous": 1, "error": 1}.items():
        assert metric(found, "permit_delivery_attempts_total", outcome=outcome) == count
    assert metric(found, "permit_delivery_retries_total") == 3  # sent_b #2, failed #2 and #3
    # The same attempts by provider: what the dashboard's "sends and failures" panel reads.
    for (notifier, outcome), count in {("twilio", "sent"): 1, ("smtp", "sent"): 1, ("twilio", "transient"): 2,
                                       ("twilio", "permanent"): 1, ("twilio", "error"): 1}.items():
        assert metric(found, "permit_delivery_attempts_by_notifier_total", notifier=notifier, outcome=outcome) == count

    # Last hour only: twilio 0.2 s, 3.0 s and 12.0 s; smtp 0.7 s.
    assert metric(found, "permit_send_latency_seconds_bucket", le="0.25", notifier="twilio") == 1
    assert metric(found, "permit_send_latency_seconds_bucket", le="5.0", notifier="twilio") == 2
    assert metric(found, "permit_send_latency_seconds_bucket", le="+Inf", notifier="twilio") == 3
    assert metric(found, "permit_send_latency_seconds_gsum", notifier="twilio") == pytest.approx(15.2)
    assert metric(found, "permit_send_latency_seconds_bucket", le="0.5", notifier="smtp") == 0
    assert metric(found, "permit_send_latency_seconds_bucket", le="1.0", notifier="smtp") == 1

    assert 20 <= metric(found, "permit_dispatcher_heartbeat_age_seconds") < 80
    assert 25 <= metric(found, "permit_dispatcher_last_dispatch_age_seconds") < 85
    assert metric(found, "permit_workers_alive", role="dispatcher") == 1
    assert metric(found, "permit_workers_alive", role="scheduler") == 1
    assert metric(found, "permit_workers_alive", role="all") == 0
    assert all(name.startswith("permit_") for name, _ in found)


def test_metrics_of_an_empty_registry_are_zero_and_ages_infinite(runtime: Runtime) -> None:
    found = samples(client_for(runtime).get("/metrics").text)
    assert metric(found, "permit_notifications", status="failed") == 0
    assert metric(found, "permit_delivery_attempts_total", outcome="sent") == 0
    assert metric(found, "permit_outbox_oldest_pending_age_seconds") == 0
    assert metric(found, "permit_scan_last_finished_timestamp_seconds") == 0
    assert metric(found, "permit_dispatcher_heartbeat_age_seconds") == float("inf")


def test_every_replica_reports_the_same_numbers(db_url: str, factory: sessionmaker[Session], team: Team) -> None:
    """The numbers live in the database, not in the process: two apps, one answer."""
    holder_id = add_holder(factory, team, "R1", datetime.now(SHANGHAI).date() + timedelta(days=300))
    with unit_of_work(factory) as session:
        session.add(_note(holder_id, -30, "failed", datetime.now(UTC), attempts=1))
    replicas = [Runtime(Settings(database_url=db_url)) for _ in range(2)]
    bodies = [samples(client_for(rt).get("/metrics").text) for rt in replicas]
    for body in bodies:
        assert metric(body, "permit_notifications_failed_total") == 1
    assert {k: v for k, v in bodies[0].items() if "age" not in k[0]} == \
           {k: v for k, v in bodies[1].items() if "age" not in k[0]}
    for rt in replicas:
        rt.engine.dispose()


# -- deploy/ ------------------------------------------------------------------------------------
def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in load_all(path):
            if doc["kind"] != "Kustomization":
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_every_deploy_yaml_file_parses() -> None:
    paths = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(paths) >= 5
    for path in paths:
        assert load_all(path), f"{path} is empty"


def test_k8s_runs_one_scheduler_several_dispatchers_and_a_probed_api() -> None:
    objects = k8s_objects()
    scheduler = objects[("Deployment", "permit-worker-scheduler")]
    dispatcher = objects[("Deployment", "permit-worker-dispatcher")]
    api = objects[("Deployment", "permit-worker-api")]
    assert ("Service", "permit-worker-api") in objects

    assert scheduler["spec"]["replicas"] == 1
    assert dispatcher["spec"]["replicas"] >= 2
    for deployment, role in ((scheduler, "scheduler"), (dispatcher, "dispatcher")):
        command = [*container(deployment).get("command", []), *container(deployment).get("args", [])]
        assert command[-3:] == ["run", "--role", role]
        # Room for the warm stop: the message in hand is finished before the pod goes.
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    api_container = container(api)
    assert "serve" in [*api_container.get("command", []), *api_container.get("args", [])]
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # alive
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # and on the current schema

    for deployment in (scheduler, dispatcher, api):
        env_from = container(deployment)["envFrom"]
        assert {"configMapRef", "secretRef"} <= {key for ref in env_from for key in ref}

    for deployment in (scheduler, dispatcher, api):  # started only once the migration Job is done
        [wait] = deployment["spec"]["template"]["spec"]["initContainers"]
        assert wait["command"][:3] == ["permit-worker", "db", "wait"]
    assert objects[("PodDisruptionBudget", "permit-worker-api")]["spec"]["minAvailable"] == 1
    ingress = objects[("Ingress", "permit-worker")]
    assert ingress["spec"]["tls"] and ingress["spec"]["tls"][0]["secretName"]
    routed = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert {"/v1", "/web", "/webhooks"} <= routed and "/metrics" not in routed

    [job] = [doc for (kind, _), doc in objects.items() if kind == "Job"]
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    assert [*job_container.get("command", []), *job_container.get("args", [])][-2:] == ["db", "upgrade"]
    # Namespace-agnostic: `kubectl apply -n NS` decides.
    assert all("namespace" not in doc["metadata"] for doc in objects.values())


def test_the_kustomization_lists_existing_files_but_no_placeholder_secret() -> None:
    [kustomization] = load_all(DEPLOY / "k8s" / "kustomization.yaml")
    resources = kustomization["resources"]
    assert all((DEPLOY / "k8s" / name).is_file() for name in resources)
    assert {"scheduler.yaml", "dispatcher.yaml", "api.yaml", "migrate-job.yaml", "pdb.yaml", "ingress.yaml"} \
        <= set(resources)
    assert not any("secret" in name for name in resources)


def test_the_alerts_and_the_dashboard_read_only_metrics_the_worker_exports(runtime: Runtime) -> None:
    import json
    import re

    body = client_for(runtime).get("/metrics").text  # families are listed even without samples yet
    exported = {family.name for family in text_string_to_metric_families(body)}
    exported |= {name for name, _ in samples(body)}
    [rules] = load_all(DEPLOY / "monitoring" / "alerts.yaml")
    alerts = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    assert {"PermitNoScanToday", "PermitOutboxBacklogOld", "PermitDeliveryFailureRatio",
            "PermitProviderPermanentForEveryone", "PermitNoDispatcherHeartbeat"} <= set(alerts)
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [*alerts.values(), *(t["expr"] for p in dashboard["panels"] for t in p["targets"])]
    used = {re.sub(r"_bucket$", "", m) for e in exprs for m in re.findall(r"\bpermit_[a-z_]+", e)}
    assert used and used <= exported, used - exported


def test_db_wait_returns_once_the_schema_is_current_and_gives_up_in_one_line(tmp_path, capsys, monkeypatch) -> None:
    from worker.cli.main import main
    from worker.store.db import upgrade

    url = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.setenv("PERMIT_DATABASE_URL", url)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    upgrade(url, "0010")
    assert main(["db", "wait", "--timeout", "0"]) == 1
    assert "schema not current" in capsys.readouterr().err
    upgrade(url)
    assert main(["db", "wait", "--timeout", "0"]) == 0
    assert "database schema is current" in capsys.readouterr().out


def test_compose_runs_postgres_a_scheduler_two_dispatchers_and_the_api() -> None:
    [compose] = load_all(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert {"postgres", "scheduler", "dispatcher", "api"} <= set(services)
    assert services["scheduler"]["command"][-2:] == ["--role", "scheduler"]
    assert services["dispatcher"]["command"][-2:] == ["--role", "dispatcher"]
    assert services["dispatcher"]["deploy"]["replicas"] == 2
    for name in ("postgres", "scheduler", "dispatcher", "api"):
        assert "healthcheck" in services[name], name
    for name in ("scheduler", "dispatcher", "api"):
        assert services[name]["env_file"], name


def _docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _docker_compose(), reason="docker compose is not installed here")
def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    # As an operator has it: the env file made from the example, the database password set.
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(DEPLOY / "docker-compose.yml", deploy)
    shutil.copy(DEPLOY / "env.example", deploy / "permit-worker.env")
    env = {**os.environ, "POSTGRES_PASSWORD": "0123456789abcdef"}
    proc = subprocess.run(["docker", "compose", "-f", str(deploy / "docker-compose.yml"), "config", "--quiet"],
                          cwd=deploy, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
