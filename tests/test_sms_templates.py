"""Approved SMS templates: the packaged file, `permit-worker sms templates`, a team's own file, the
start-up check for template providers, and `teams update` with its channel order and robot."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from notifiers.registry import get_notifier
from schedules.messages import MessageContext, render_message, render_sms, sms_kind
from schedules.sms_check import problems
from schedules.sms_templates import KINDS, TemplateFileError, load_sms_templates, packaged_path
from schedules.stages import EXPIRED_GRACE, RENEW_IN_PERSON, STAGES
from worker.cli.main import main
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.db import unit_of_work, upgrade
from worker.store.models import Team

EXPIRES = date(2027, 3, 8)


def ctx(stage: str, day: int, **fields: object) -> MessageContext:
    values: dict[str, object] = {
        "stage": stage, "touch_day": day, "today": EXPIRES + timedelta(days=day), "expires_on": EXPIRES,
        "grace_ends_on": EXPIRES + timedelta(days=60), "reset_ends_on": EXPIRES + timedelta(days=90), "name": "王小明"}
    values.update(fields)
    return MessageContext(**values)  # type: ignore[arg-type]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    upgrade(f"sqlite:///{tmp_path / 'permit-worker.db'}")
    return tmp_path


def own_file(tmp_path: Path, edit: dict[str, dict[str, object]]) -> Path:
    """The packaged templates with some entries replaced, as a team's own file."""
    raw = yaml.safe_load(Path(packaged_path()).read_text(encoding="utf-8"))
    for kind, by_locale in edit.items():
        raw["templates"].setdefault(kind, {}).update(by_locale)
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


# -- the packaged file ----------------------------------------------------------------------------
def test_the_packaged_templates_cover_every_kind_in_both_locales_and_pass_every_check() -> None:
    tset = load_sms_templates()
    assert {k for k, _ in tset.templates} == set(KINDS)
    assert all((kind, loc) in tset.templates for kind in KINDS for loc in ("zh-CN", "en"))
    for provider in (None, "aliyun", "tencent"):
        assert problems(tset, provider) == []


def test_the_sms_is_the_approved_text_with_its_parameters_filled_in() -> None:
    rendered = render_sms("zh-CN", ctx(RENEW_IN_PERSON, -10))
    assert rendered.template is not None and rendered.template.kind == "renew_in_person"
    text = rendered.template.text
    for name, value in rendered.params:
        text = text.replace(f"${{{name}}}", value)
    assert rendered.body == "【居住证提醒】" + text  # exactly what a template provider will show
    assert dict(rendered.params)["expires_on"] == "2027年3月8日"


@pytest.mark.parametrize(("context", "kind"), [
    (ctx(RENEW_IN_PERSON, -10), "renew_in_person"),
    (ctx(RENEW_IN_PERSON, -10, eligibility_reasons=("address_changed",)), "renew_in_person.reasons"),
    (ctx(RENEW_IN_PERSON, 0, today=EXPIRES, expires_on=date(2027, 3, 7)), "renew_in_person.closed"),  # a Sunday
    (ctx(EXPIRED_GRACE, 30), "expired_grace"),
    (ctx(EXPIRED_GRACE, 30, accumulated=(4, 2)), "expired_grace.accumulated"),
])
def test_each_case_picks_its_own_approved_template(context: MessageContext, kind: str) -> None:
    assert sms_kind(context) == kind


def test_a_signing_provider_shows_its_own_signature_and_an_english_holder_gets_the_filed_chinese_text() -> None:
    tset = load_sms_templates()
    ids = {key: dataclasses.replace(t, ids={"aliyun": f"SMS_{i}"}) for i, (key, t) in enumerate(tset.templates.items())}
    filed = dataclasses.replace(tset, templates=ids)
    english = render_message("sms", "en", ctx(RENEW_IN_PERSON, -10), sms_templates=filed, sign_name="某公司",
                             provider="aliyun")
    assert english.body.startswith("【某公司】") and "居住证" in english.body  # only zh-CN is filed by default
    assert render_message("sms", "en", ctx(RENEW_IN_PERSON, -10)).body.startswith("Residence permit reminder: ")


@pytest.mark.parametrize("stage", STAGES)
def test_a_kind_missing_from_a_teams_file_goes_out_as_its_fallback(tmp_path: Path, stage: str) -> None:
    raw = {"signature": "某公司", "templates": {"fallback": {"zh-CN": "${hello}，居住证有效期为${expires_on}。回T退订"}}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    body = render_sms("zh-CN", ctx(stage, 0), load_sms_templates(str(path))).body
    assert body == "【某公司】王小明您好，居住证有效期为2027年3月8日。回T退订"


@pytest.mark.parametrize(("content", "needle"), [
    ("templates: {}\nsignature: x\n", "a `fallback` template in zh-CN is required"),
    ("signature: x\ntemplates:\n  nonsense:\n    zh-CN: hi\n", "unknown kind 'nonsense'"),
    ("templates:\n  fallback:\n    zh-CN: hi\n", "`signature`"),
    ("signature: x\ntemplates: [1, 2\n", "not valid YAML"),
])
def test_a_malformed_templates_file_is_refused_with_one_line(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TemplateFileError, match=needle) as info:
        load_sms_templates(str(path))
    assert "\n" not in str(info.value)


# -- permit-worker sms templates -------------------------------------------------------------------
def test_sms_templates_prints_what_to_file_and_passes_on_the_packaged_file(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sms", "templates", "--provider", "aliyun"]) == 0
    out = capsys.readouterr()
    assert "signature (签名): 居住证提醒" in out.out and "通知" in out.out
    assert "[renew_in_person.closed] zh-CN  aliyun: not yet approved" in out.out
    assert "segment(s), signature counted" in out.out and out.err == ""
    assert "[upcoming] en" not in out.out  # English templates are not filed with Aliyun unless listed


def test_sms_templates_fails_with_one_line_per_problem(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    long_text = "${hello}，" + "请注意居住证签注的办理时间和所需材料，" * 8 + "回T退订"
    path = own_file(workdir, {
        "valid": {"zh-CN": "${hello}，详情见 https://example.com 。回T退订"},
        "upcoming": {"zh-CN": long_text},
        "lapsed": {"zh-CN": "${hello}，您的工号${employee_no}。回T退订"},
    })
    monkeypatch.setenv("PERMIT_SMS_TEMPLATES", str(path))
    assert main(["sms", "templates"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert any("valid (zh-CN): contains a link or site name (https://)" in line for line in err)
    assert any(line.startswith("permit-worker: upcoming (zh-CN): 3 segments at its longest") for line in err)
    assert any("lapsed (zh-CN): the worker cannot fill ${employee_no}" in line for line in err)


def test_a_template_provider_without_an_approved_fallback_stops_start_up_with_one_line(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sms = get_notifier("aliyun", {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI0000000000000000", "PERMIT_ALIYUN_SMS_SIGN_NAME": "x",
                                  "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s" * 30})
    runtime = Runtime(Settings())
    with pytest.raises(ValueError, match="no aliyun template id for `fallback`"):
        runtime.check_sms_templates(sms)
    path = own_file(workdir, {"fallback": {"zh-CN": {"text": load_sms_templates().templates[("fallback", "zh-CN")].text,
                                                     "aliyun": "SMS_123"}}})
    monkeypatch.setenv("PERMIT_SMS_TEMPLATES", str(path))
    Runtime(Settings()).check_sms_templates(sms)  # accepted: every other kind goes out as the fallback


# -- teams update ---------------------------------------------------------------------------------
def test_teams_update_sets_the_channel_order_and_the_robot(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teams", "create", "acme", "--name", "Acme", "--channels", "sms,email"]) == 0
    robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123"
    assert main(["teams", "update", "acme", "--channels", "wecom,sms,email", "--hr-wecom-webhook", robot]) == 0
    out = capsys.readouterr()
    assert "updated team acme: channels, hr_wecom_webhook" in out.out and "channels: wecom,sms,email" in out.out
    assert "PERMIT_WECOM_CORP_ID is not set" in out.err  # said, not refused: the worker may be configured elsewhere
    runtime = Runtime(Settings())
    with unit_of_work(runtime.factory) as session:
        team = session.scalars(select(Team)).one()
        assert (team.channels, team.hr_wecom_webhook) == ("wecom,sms,email", robot)
    assert main(["teams", "list"]) == 0
    listed = capsys.readouterr().out
    assert "wecom,sms,email" in listed and "abc-123" not in listed  # the robot's key is a secret
    assert main(["teams", "update", "acme", "--channels", ""]) == 0
    with unit_of_work(runtime.factory) as session:
        assert session.scalars(select(Team.channels)).one() is None  # back to the policy's order


@pytest.mark.parametrize(("args", "needle"), [
    (["--channels", "sms,fax"], "expected a comma-separated list of wecom, sms, email"),
    (["--channels", "sms,sms"], "listed twice"),
    (["--hr-wecom-webhook", "http://example.com/hook?key=1"], "robot webhook URL must use https://"),
    (["--hr-wecom-webhook", "https://evil.example/cgi-bin/webhook/send?key=1"], "must be on qyapi.weixin.qq.com"),
    (["--hr-email", "not-an-address"], "is not an email address"),
    ([], "nothing to change"),
])
def test_a_bad_team_update_is_one_line_and_changes_nothing(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                           args: list[str], needle: str) -> None:
    assert main(["teams", "create", "acme", "--name", "Acme"]) == 0
    capsys.readouterr()
    assert main(["teams", "update", "acme", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    with unit_of_work(Runtime(Settings()).factory) as session:
        team = session.scalars(select(Team)).one()
        assert (team.channels, team.hr_wecom_webhook, team.hr_email) == (None, None, None)
