"""`make bench BENCH_ARGS=--city`: a whole city on PostgreSQL (issue 15).

A 10M-holder registry (and a 1M one in the same run, to compare with the --big figures): the
normal day's scan by 1, 2 and 4 scheduler processes sharing the day's slices, the empty day
after it, peak RSS per process, and two baselines of the same job from the same run: the
set-based SQL probe (due holders and their facts in one read, nothing planned or written), and
the single-process scan. Then a 1M-row roster through the CLI.

Each scheduler process is the daemon's scan job, warm as a daemon is: it claims the day or, when
another process has it, helps with its slices (worker/planning/scan_slices.py). All start at one
agreed moment; the figure is from that moment to the last process's end.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks import data

# -- steps (each in a process of its own: benchmarks.steps runs them) -------------------------


def scan_replica(url: str, day: str, name: str, start_at: float) -> dict[str, Any]:
    """One scheduler process's daily scan job, started at `start_at` (epoch seconds)."""
    from sqlalchemy import text

    from schedules.policy import load_policy
    from schedules.stages import HolderFacts, next_touch_on
    from worker.planning.scan import help_with_scan, scan
    from worker.planning.scan_runs import claim_scan_day, keeping_claim
    from worker.store.db import make_engine, session_factory

    scan_day = date.fromisoformat(day)
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    policy = load_policy(None)
    next_touch_on(HolderFacts(expires_on=scan_day + timedelta(days=5)), scan_day, policy)
    factory = session_factory(engine)
    scan(factory, policy, data.SHANGHAI, today=date(1899, 12, 31), dry_run=True, record=False)  # compiles the SQL
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    now = data.scan_moment(scan_day)
    if claim_scan_day(factory, scan_day, name, now):
        with keeping_claim(factory, scan_day, name):
            report = scan(factory, policy, data.SHANGHAI, now=now, worker_id=name)
        role = "claimant"
    else:
        report = help_with_scan(factory, policy, data.SHANGHAI, name, now=now)
        role = "helper"
    finished = time.time()
    engine.dispose()
    return {"role": role, "started": started, "finished": finished, "holders_seen": report.holders_seen,
            "enqueued": len(report.enqueued), "shared_seen": report.shared_seen}


def probe(url: str, day: str) -> dict[str, Any]:
    """The set-based floor: every due holder and their facts in one read, nothing else."""
    from sqlalchemy import select

    from worker.planning.outbox import DUE_COLUMNS
    from worker.store.db import make_engine
    from worker.store.models import Holder, Team

    engine = make_engine(url)
    query = select(*DUE_COLUMNS).join(Team).where(Holder.next_due_on <= date.fromisoformat(day))
    with engine.connect() as conn:
        conn.execute(query.where(Holder.id < 0)).all()  # connected, compiled
        started = time.perf_counter()
        rows = sum(1 for _ in conn.execution_options(stream_results=True, yield_per=5000).execute(query))
        seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": rows}


def vacuum(url: str) -> dict[str, Any]:
    from worker.store.db import make_engine
    from worker.store.maintenance import vacuum_holders

    engine = make_engine(url)
    took = vacuum_holders(engine)
    engine.dispose()
    return {"seconds": took}


CITY_STEPS: dict[str, Callable[..., dict[str, Any]]] = {"scan_replica": scan_replica, "probe": probe, "vacuum": vacuum}


# -- the orchestration (in benchmarks.run's process) ------------------------------------------
def replicas(python: str, repo: Path, url: str, day: str, processes: int, lead: float = 6.0) -> dict[str, Any]:
    """Start `processes` scheduler processes on one registry, all at one moment; wall time from
    that moment to the last one's end, and each one's peak RSS (wait4)."""
    start_at = time.time() + lead + processes  # time for every process to import and warm up
    results: list[dict[str, Any]] = []
    rss: list[float] = []
    with ExitStack() as files:
        procs = []
        for i in range(processes):
            args = json.dumps({"url": url, "day": day, "name": f"scheduler-{i}", "start_at": start_at})
            out = files.enter_context(tempfile.TemporaryFile())
            procs.append((subprocess.Popen([python, "-m", "benchmarks.steps", "scan_replica", args], cwd=repo,
                                           stdout=out, stderr=subprocess.DEVNULL), out))
        for proc, out in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            rss.append(usage.ru_maxrss / 1024)
            out.seek(0)
            text = out.read().decode().strip()
            if os.waitstatus_to_exitcode(status) != 0 or not text:
                return {"ok": False, "error": f"scheduler process exited {os.waitstatus_to_exitcode(status)}"}
            results.append(json.loads(text.splitlines()[-1]))
    late = max(r["started"] for r in results) - start_at
    return {"ok": True, "seconds": max(r["finished"] for r in results) - start_at, "late_start": late,
            "holders_seen": sum(r["holders_seen"] for r in results),
            "enqueued": sum(r["enqueued"] for r in results),
            "per_process": [r["holders_seen"] for r in results], "rss_mb": max(rss)}


def city(report: Any, run: Any, day: str, workdir: Path, pg_url: str, sizes: tuple[int, ...] = (1_000_000, 10_000_000),
         processes: tuple[int, ...] = (1, 2, 4)) -> None:
    """The --city rows of benchmarks.run's table (PostgreSQL only)."""
    backend = "postgresql"
    for size in sizes:
        tag = f"{size // 1_000_000}M"
        pristine = run.db_url(backend, f"city_{tag}", workdir, pg_url)
        work = run.db_url(backend, f"city_{tag}_work", workdir, pg_url)
        run.say(f"city: building a {tag} registry")
        built = run.step("build", url=pristine, holders=size, day=day)
        if not built.ok:
            report.put(f"city {tag}: build", backend, f"failed: {built.error}")
            continue
        r = built.result
        report.put(f"city {tag}: build registry (holders + outbox rows)", backend,
                   f"{run.secs(r['seconds'])} ({run.count(r['holders'])} + {run.count(r['notifications'])}), "
                   f"{run.mb(built)}")
        run.say(f"city: {tag} set-based probe")
        data.copy_database(pristine, work)
        probed = run.step("probe", url=work, day=day)
        if probed.ok:
            report.put(f"city {tag}: set-based probe (due facts, one read, nothing written)", backend,
                       f"{run.secs(probed.result['seconds'])} ({run.count(probed.result['rows'])} rows), "
                       f"{run.mb(probed)}")
        if size < 10_000_000:  # at 10M the ORM baseline would hold ten million objects: not run
            run.say(f"city: {tag} naive full ORM scan (slow)")
            data.copy_database(pristine, work)
            naive = run.step("scan", url=work, day=day, full=True)
            if naive.ok:
                report.put(f"city {tag}: naive baseline (full ORM scan, one process)", backend,
                           f"{run.secs(naive.result['seconds'])} ({run.count(naive.result['holders_seen'])} read), "
                           f"{run.mb(naive)}")
        for n in processes:
            run.say(f"city: {tag} normal day, {n} scheduler process(es)")
            data.copy_database(pristine, work)
            m = replicas(run.PYTHON, run.REPO, work, day, n)
            label = f"city {tag}: normal day, {n} scheduler process{'es' if n > 1 else ''}"
            if not m["ok"]:
                report.put(label, backend, f"failed: {m['error']}")
                continue
            big = size >= 10_000_000
            verdict = (m["seconds"] <= 3.0 and m["rss_mb"] <= 150) if big else None
            split = "/".join(run.count(x) for x in m["per_process"])
            report.put(label, backend,
                       f"{run.secs(m['seconds'])} ({run.count(m['holders_seen'])} read, "
                       f"{run.count(m['enqueued'])} enqueued; per process {split}), {m['rss_mb']:.0f} MB",
                       verdict, "≤ 3 s, ≤ 150 MB" if big else "")
            report.raw[f"city/{label}"] = m
            if n == processes[-1]:
                run.step("vacuum", url=work)  # as the daemon does after a scan that moved rows
                run.say(f"city: {tag} empty day")
                empty = [run.step("scan", url=work, day=day, warm_day_before=True) for _ in range(3)]
                ok = sorted((e for e in empty if e.ok), key=lambda e: e.result["seconds"])
                if ok:
                    mid = ok[len(ok) // 2].result
                    report.put(f"city {tag}: empty day (the scan again, right after)", backend,
                               f"{run.secs(mid['seconds'])} ({run.count(mid['holders_seen'])} read; median of "
                               f"{len(ok)}), {max(e.rss_mb for e in ok):.0f} MB",
                               mid["seconds"] <= 0.01 if big else None, "≤ 10 ms" if big else "")
        run.drop(work)
        run.drop(pristine)


def city_import(report: Any, run: Any, day: str, workdir: Path, pg_url: str) -> None:
    """A 1M-row roster into an empty PostgreSQL registry through the CLI, and 100k rows beside it
    (memory must not grow with the file)."""
    backend = "postgresql"
    # A PostgreSQL registry needs a configured fingerprint key (a benchmark-only value, not a secret).
    env = {"PERMIT_LOG_LEVEL": "WARNING", "PERMIT_LOG_FORMAT": "json", "PERMIT_FINGERPRINT_KEY": "benchmark-only-key"}
    rss: dict[int, float] = {}
    for rows in (100_000, 1_000_000):
        tag = f"{rows // 1000}k" if rows < 1_000_000 else "1M"
        roster = workdir / f"roster_{tag}.csv"
        if not roster.exists():
            run.say(f"city: writing the {tag}-row roster")
            data.write_roster_csv(roster, rows, date.fromisoformat(day))
        url = run.db_url(backend, f"city_import_{tag}", workdir, pg_url)
        env["PERMIT_DATABASE_URL"] = url
        data.fresh_database(url)
        run.child([*run.CLI, "teams", "create", "hr", "--name", "HR"], env)
        run.say(f"city: importing the {tag}-row roster through the CLI")
        m = run.child([*run.CLI, "holders", "import", str(roster), "--team", "hr"], env)
        label = f"city import {tag} rows (new holders), CLI"
        if not m.ok:
            report.put(label, backend, f"failed: {m.error}")
            continue
        rss[rows] = m.rss_mb
        big = rows == 1_000_000
        out = m.result.get("stdout", "")
        enq = out.split(";")[-1].strip().split(" ")[0] if ";" in out else "?"
        report.put(label, backend, f"{run.secs(m.wall)} ({enq} reminders enqueued), {m.rss_mb:.0f} MB",
                   m.wall <= 60 if big else None, "≤ 60 s" if big else "")
        report.raw[f"city/{label}"] = {"seconds": m.wall, "rss_mb": m.rss_mb, "stdout": out}
        run.drop(url)
    if len(rss) == 2:
        report.put("city import: peak RSS, 1M-row file minus 100k-row file", backend,
                   f"{rss[1_000_000] - rss[100_000]:+.0f} MB", rss[1_000_000] - rss[100_000] <= 20,
                   "flat in file size")
