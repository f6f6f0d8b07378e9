"""`permit-worker config check`: the effective configuration with secrets masked, every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cli.main import main
from worker.store.db import upgrade


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    for name in ("PERMIT_FINGERPRINT_KEY", "PERMIT_SESSION_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_embedded_default_checks_clean_once_migrated(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upgrade(f"sqlite:///{workdir / 'permit-worker.db'}")
    assert main(["config", "check"]) == 0
    out = capsys.readouterr()
    assert "PERMIT_DATABASE_URL=sqlite:///permit-worker.db" in out.out.splitlines()
    assert "PERMIT_SESSION_SECRET=(unset)" in out.out.splitlines()
    assert out.out.rstrip().endswith("# configuration ok") and out.err == ""


def test_a_fresh_directory_is_told_to_upgrade_and_no_file_is_created(workdir: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 2
    assert "run `permit-worker db upgrade`" in capsys.readouterr().err
    assert not (workdir / "permit-worker.db").exists()


def test_every_bad_setting_is_one_line_not_only_the_first(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PERMIT_TIMEZONE", "Mars/Base")
    monkeypatch.setenv("PERMIT_SCAN_TIME", "25:00")
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "permit-worker: problem: PERMIT_TIMEZONE: unknown time zone 'Mars/Base'" in err
    assert any(line.startswith("permit-worker: problem: PERMIT_SCAN_TIME: ") for line in err)
    assert len(err) == 2


def test_secrets_are_masked_and_production_needs_them(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PERMIT_DATABASE_URL", "postgresql+psycopg://permit:hunter2pw@127.0.0.1:1/permit")
    monkeypatch.setenv("PERMIT_FINGERPRINT_KEY", "fingerprint-key-value")
    monkeypatch.setenv("PERMIT_SMS_BACKEND", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-token-value")
    assert main(["config", "check"]) == 2
    out = capsys.readouterr()
    printed = out.out + out.err
    for secret in ("hunter2pw", "fingerprint-key-value", "twilio-token-value"):
        assert secret not in printed
    assert "PERMIT_FINGERPRINT_KEY=(set, hidden)" in out.out.splitlines()
    assert "TWILIO_AUTH_TOKEN=(set, hidden)" in out.out.splitlines()
    problems = out.err.splitlines()
    assert "permit-worker: problem: PERMIT_SESSION_SECRET: not set; required outside the embedded default " \
           "(PostgreSQL or https)" in problems
    assert any(p.startswith("permit-worker: problem: PERMIT_SMS_BACKEND=twilio: ") for p in problems)
    assert any(p.startswith("permit-worker: problem: PERMIT_DATABASE_URL: cannot use the database") for p in problems)
