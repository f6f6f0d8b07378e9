"""One measurement per process: `python -m benchmarks.steps STEP '{json args}'` prints one JSON
object. `benchmarks.run` starts each step in its own process, so the peak RSS it reads for a
step (from wait4) is that step's alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.city import CITY_STEPS


def build(url: str, holders: int, day: str, copy_to: str | None = None) -> dict[str, Any]:
    """Build a steady-state registry; optionally copy it (the naive baseline gets the copy)."""
    report = data.build_registry(url, holders, date.fromisoformat(day))
    result: dict[str, Any] = {"seconds": report.seconds, "holders": report.holders,
                              "notifications": report.notifications, "due_today": report.due_today}
    if copy_to:
        started = time.perf_counter()
        data.copy_database(url, copy_to)
        result["copy_seconds"] = time.perf_counter() - started
    return result


def scan(url: str, day: str, full: bool = False, warm_day_before: bool = False) -> dict[str, Any]:
    """The daemon's daily scan, scan(..., now=08:30 Shanghai); `full` is the naive ORM baseline.

    `seconds` is the whole job as a running daemon does it: every batch and the scan_runs record,
    with the process already warm as the daemon's is (its pool connected, policy and holiday
    calendar loaded, the scan's SQL compiled). `setup_seconds` is that warming: what a scan in a
    fresh process adds."""
    started = time.perf_counter()
    from sqlalchemy import text

    from schedules.policy import load_policy
    from schedules.stages import HolderFacts, next_touch_on
    from worker.planning.scan import scan as run_scan
    from worker.store.db import make_engine, session_factory
    from worker.store.maintenance import vacuum_holders

    scan_day = date.fromisoformat(day)
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    policy = load_policy(None)
    next_touch_on(HolderFacts(expires_on=scan_day + timedelta(days=5)), scan_day, policy)  # loads the calendar
    factory = session_factory(engine)
    if not full:
        # A daemon compiled the scan's statements on its first day; a dry run for a day before
        # any next_due_on (even DUE_NOW, 1900-01-01) compiles them here, reading and writing nothing.
        run_scan(factory, policy, data.SHANGHAI, today=date(1899, 12, 31), dry_run=True, record=False)
    if warm_day_before:
        # A daemon's second day: yesterday's real scan (nothing left due by then) compiled the
        # statements a real run adds (slices, the day's record).
        run_scan(factory, policy, data.SHANGHAI, now=data.scan_moment(scan_day - timedelta(days=1)))
    warm = time.perf_counter()
    report = run_scan(factory, policy, data.SHANGHAI, now=data.scan_moment(scan_day), naive=full)
    finished = time.perf_counter()
    # What the daemon does next (worker.store.maintenance), timed apart: the reminders are enqueued by
    # then, so it delays nothing, but the next scan's figure depends on it.
    vacuum_seconds = vacuum_holders(engine) if report.holders_seen and not full else None
    engine.dispose()
    return {"seconds": finished - warm, "setup_seconds": warm - started, "scan_seconds": report.seconds,
            "holders_seen": report.holders_seen, "enqueued": len(report.enqueued), "no_contact": report.no_contact,
            "vacuum_seconds": vacuum_seconds}


def dispatch(url: str, messages: int, latency_ms: float, rate: float | None = None,
             max_seconds: float = 120.0, concurrency: int | None = None, provider: str = "twilio") -> dict[str, Any]:
    """Send `messages` reminders through Runtime(settings).dispatcher(), the provider's real SDK (or
    HTTP client, for WeCom) and its fake in another process answering after `latency_ms`; `rate`
    sets PERMIT_RATE_LIMITS. Stops (warm) after `max_seconds`: the rate is then over what was
    sent by then. SMS providers that send by template get a templates file with every id filed."""
    fake = subprocess.Popen([sys.executable, "-m", "benchmarks.fake_provider", provider, str(latency_ms / 1000),
                             str(messages)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        provider_env: dict[str, str] = json.loads(fake.stdout.readline())
        backend = "twilio" if provider == "wecom" else provider
        os.environ.update({
            "PERMIT_DATABASE_URL": url, "PERMIT_SMS_BACKEND": "console", "PERMIT_EMAIL_BACKEND": "console",
            "PERMIT_SEND_WINDOW": "00:00-24:00", "PERMIT_RATE_LIMITS": f"{provider}={rate:g}" if rate else "",
            "PERMIT_LOG_LEVEL": "WARNING", **provider_env,
        })
        if backend in ("aliyun", "tencent"):
            os.environ["PERMIT_SMS_TEMPLATES"] = _filed_templates(backend, Path(tempfile.mkdtemp()))
        if concurrency is not None:  # else the dispatcher's own default
            os.environ["PERMIT_DISPATCH_CONCURRENCY"] = str(concurrency)
        _quiet_logs()
        from worker.ops.runtime import Runtime
        from worker.ops.settings import Settings

        runtime = Runtime(Settings())
        seeded = _seed_outbox(runtime.factory, messages, "wecom" if provider == "wecom" else "sms")
        dispatcher = runtime.dispatcher()
        now = datetime.now(UTC)
        counts: Counter[str] = Counter()
        started = time.perf_counter()
        deadline = started + max_seconds

        def late() -> bool:
            return time.perf_counter() > deadline

        while counts.total() < messages and not late():
            done = dispatcher.run_batch(now=now, limit=messages - counts.total(), should_stop=late)
            if not done:
                break
            counts.update(done)
        seconds = time.perf_counter() - started
        accepted = _accepted(fake)
    finally:
        if fake.poll() is None:
            fake.kill()
        fake.wait()
    sent = counts.get("sent", 0)
    return {"seconds": seconds, "messages": seeded, "sent": sent, "outcomes": dict(counts),
            "rate": sent / seconds if seconds else 0.0, "accepted_by_fake": accepted,
            "concurrency": getattr(dispatcher, "concurrency", 1), "provider": provider}


def _filed_templates(provider: str, workdir: Path) -> str:
    """The packaged templates with an id for every one, as a team's file is once approved."""
    import yaml

    from schedules.sms_templates import packaged_path

    raw = yaml.safe_load(Path(packaged_path()).read_text(encoding="utf-8"))
    for n, (kind, by_locale) in enumerate(raw["templates"].items()):
        for locale, text in by_locale.items():
            by_locale[locale] = {"text": text, provider: f"SMS_{100 + n}" if provider == "aliyun" else str(1000 + n)}
        raw["templates"][kind] = by_locale
    path = workdir / "templates.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return str(path)


def _accepted(fake: subprocess.Popen[str]) -> int:
    assert fake.stdin is not None and fake.stdout is not None
    fake.stdin.write("count\n")
    fake.stdin.flush()
    return int(fake.stdout.readline())


def _quiet_logs() -> None:
    # One log line per delivery would measure the terminal, not the dispatcher.
    import logging

    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))  # noqa: SIM115
    logging.disable(logging.WARNING)


def _seed_outbox(factory: Any, messages: int, channel: str = "sms") -> int:
    """`messages` pending touches due now on `channel`, for holders in the upcoming stage (a real
    reminder renders for them), written straight to the tables. WeCom members are bench0..N-1."""
    from sqlalchemy import insert, select

    from worker.store.bulk import table_of
    from worker.store.models import Holder, Notification, Team

    today = datetime.now(data.SHANGHAI).date()
    expires = today + timedelta(days=30)
    now = datetime.now(UTC)
    with factory() as session, session.begin():
        team_id = session.scalar(select(Team.id).where(Team.slug == "dispatch"))
        if team_id is None:
            team_id = session.execute(insert(Team).values(slug="dispatch", name="Dispatch Co.", created_at=now)
                                      .returning(Team.id)).scalar_one()
        ids = session.scalars(insert(table_of(Holder)).returning(table_of(Holder).c.id), [
            {"team_id": team_id, "external_id": f"D{i:07d}-{now.timestamp():.0f}", "name": f"测试{i}",
             "phone": f"+861380000{i % 10000:04d}", "email": None, "expires_on": expires, "housing_type": "own",
             "wecom_userid": f"bench{i}",
             "locale": "zh-CN", "changed_since_endorsement": "", "next_due_on": expires,
             "created_at": now, "updated_at": now} for i in range(messages)]).all()
        session.execute(insert(table_of(Notification)), [
            {"holder_id": hid, "cycle_expires_on": expires, "stage": "upcoming", "touch_day": -30, "touch_on": today,
             "channel": channel, "status": "pending", "attempts": 0, "next_attempt_at": now - timedelta(minutes=1),
             "created_at": now, "updated_at": now} for hid in ids])
    return len(ids)


def team_reads(url: str, rounds: int = 20) -> dict[str, Any]:
    """Issue 13: what HR opens on a team of 100k holders, through the whole HTTP app in process
    (FastAPI's TestClient: routing, auth, SQL, rendering, JSON; no network): `rounds` requests
    each of the API's list and summary and of the web overview, and the web CSV export's time to
    its first byte and in total. Every figure is seconds; p50/p95 over the rounds."""
    import re

    from fastapi.testclient import TestClient

    _quiet_logs()
    # The per-token rate limit would measure the limiter: this is one client asking many times.
    os.environ.update({"PERMIT_DATABASE_URL": url, "PERMIT_LOG_LEVEL": "WARNING", "PERMIT_API_BURST": "100000",
                       "PERMIT_API_RATE_PER_MINUTE": "1000000"})
    from worker.http.app import create_app
    from worker.ops.runtime import Runtime
    from worker.ops.settings import Settings
    from worker.registry import records as registry
    from worker.store.db import unit_of_work

    runtime = Runtime(Settings())
    with unit_of_work(runtime.factory) as session:
        token = registry.issue_token(session, registry.get_team(session, data.TEAM_SLUG))
    # As context managers, so the app's lifespan runs as under uvicorn (serve).
    api = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {token}"}).__enter__()
    web = TestClient(create_app(runtime), follow_redirects=False).__enter__()
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/web/login").text)
    assert csrf and web.post("/web/login", data={"token": token, "csrf": csrf.group(1)}).status_code == 303

    def timed(get: Callable[[], Any]) -> dict[str, float]:
        get()  # the first request compiles statements and fills caches, as a running server has
        runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = get()
            runs.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:200]
        runs.sort()
        return {"p50": runs[len(runs) // 2], "p95": runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))]}

    result: dict[str, Any] = {
        "list": timed(lambda: api.get("/v1/holders", params={"limit": 50})),
        "list_stage": timed(lambda: api.get("/v1/holders", params={"limit": 50, "stage": "renew_in_person"})),
        "summary": timed(lambda: api.get("/v1/summary")),
        "overview": timed(lambda: web.get("/web/")),
        "search": timed(lambda: web.get("/web/holders", params={"q": "测试12"})),
    }
    result["holders"] = api.get("/v1/holders", params={"limit": 1}).json()["total"]
    started = time.perf_counter()
    first = None
    size = 0
    with web.stream("GET", "/web/export.csv") as response:
        for chunk in response.iter_bytes():
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
    result["export"] = {"first_byte": first, "total": time.perf_counter() - started, "bytes": size}
    api.__exit__(None, None, None)
    web.__exit__(None, None, None)
    runtime.engine.dispose()
    return result


STEPS: dict[str, Callable[..., dict[str, Any]]] = {"build": build, "scan": scan, "dispatch": dispatch,
                                                   "team_reads": team_reads}


STEPS.update(CITY_STEPS)


def main(argv: list[str]) -> None:
    step, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    result = STEPS[step](**args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main(sys.argv[1:])
