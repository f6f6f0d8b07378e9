"""The SMTP adapter, end to end: the real adapter talks to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifiers import Message, NotifierConfigError, SendStatus, get_notifier
from notifiers.smtp.fake import (
    FakeSmtp,
    free_port,
    make_self_signed_cert,
    openssl_available,
)
from notifiers.smtp.transport import SmtpEmailNotifier, text_to_html

FROM = "居住证提醒 <reminders@permit.example>"
TO = "zhang.san@example.com"
SUBJECT = "【居住证提醒】您的上海市居住证将于2025年3月1日到期"
BODY = "张三您好：\n\n您的居住证将在30天后到期，请及时办理签注。\n\n需要携带：\n- 身份证\n- 居住证\n- 租赁合同\n\n上海市居住证服务"


def email(body: str = BODY, *, to: str = TO, key: str = "outbox-1", subject: str | None = SUBJECT) -> Message:
    return Message(channel="email", to=to, subject=subject, body=body, idempotency_key=key)


def plain_notifier(smtp: FakeSmtp, **overrides: object) -> SmtpEmailNotifier:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "tls": "none",
        "from_address": FROM,
        "timeout_seconds": 5.0,
    }
    settings.update(overrides)
    return SmtpEmailNotifier(**settings)  # type: ignore[arg-type]


def parts(received: EmailMessage) -> tuple[str, str]:
    """(text/plain, text/html) bodies, decoded."""
    plain = received.get_body(("plain",))
    rich = received.get_body(("html",))
    assert plain is not None and rich is not None
    return plain.get_content(), rich.get_content()


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp(reject={"nobody@example.com": "550 5.1.1 No such user"}) as server:
        yield server


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    if not openssl_available():
        pytest.skip("the openssl command-line tool is not installed: cannot make a test certificate")
    return make_self_signed_cert(tmp_path)


# -- content ---------------------------------------------------------------------------------


def test_a_chinese_subject_and_body_arrive_intact(smtp: FakeSmtp) -> None:
    result = plain_notifier(smtp).send(email())

    assert result.status is SendStatus.SENT
    [received] = smtp.messages
    assert received.message["Subject"] == SUBJECT
    assert parts(received.message)[0].rstrip("\n") == BODY
    assert received.rcpt_tos == (TO,)
    assert received.mail_from == "reminders@permit.example"  # the bare address, not the display name
    assert received.message["From"].addresses[0].display_name == "居住证提醒"


def test_the_raw_message_is_7bit_clean_so_any_relay_accepts_it(smtp: FakeSmtp) -> None:
    # smtplib never declares 8BITMIME: Chinese must travel RFC 2047 / base64 encoded.
    plain_notifier(smtp).send(email())
    assert smtp.messages[0].raw.isascii()


def test_the_message_is_multipart_alternative_with_plain_text_first(smtp: FakeSmtp) -> None:
    plain_notifier(smtp).send(email())

    received = smtp.messages[0].message
    assert received.get_content_type() == "multipart/alternative"
    # Clients show the last alternative they understand, so HTML must come after plain text.
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]
    assert '<html lang="zh-CN">' in parts(received)[1]


def test_markup_in_the_body_arrives_escaped_in_the_html_part(smtp: FakeSmtp) -> None:
    hostile = "张三 <script>alert('x')</script> & co"
    plain_notifier(smtp).send(email(hostile))

    plain, rich = parts(smtp.messages[0].message)
    assert "<script>" not in rich
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in rich
    assert hostile in plain  # the text part stays as written


def test_bullet_lines_arrive_as_list_items(smtp: FakeSmtp) -> None:
    plain_notifier(smtp).send(email())

    rich = parts(smtp.messages[0].message)[1]
    assert rich.count("<li") == 3 and ">身份证</li>" in rich and ">租赁合同</li>" in rich


def test_unsubscribe_auto_submitted_and_message_id_headers_are_set(smtp: FakeSmtp) -> None:
    result = plain_notifier(smtp).send(email())

    headers = smtp.messages[0].message
    assert headers["List-Unsubscribe"] == "<mailto:reminders@permit.example?subject=unsubscribe>"
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["Date"]
    assert headers["Message-ID"].endswith("@permit.example>")
    assert result.provider_message_id == headers["Message-ID"]


def test_a_resend_of_the_same_outbox_row_keeps_its_message_id(smtp: FakeSmtp) -> None:
    # Mail clients fold duplicates with one Message-ID, so a retry after a lost reply is harmless.
    notifier = plain_notifier(smtp)
    first = notifier.send(email(key="outbox-7"))
    again = notifier.send(email(key="outbox-7"))
    other = notifier.send(email(key="outbox-8"))

    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert ids[0] == ids[1] != ids[2]
    assert first.provider_message_id == again.provider_message_id != other.provider_message_id


def test_a_configured_https_unsubscribe_uri_is_used(smtp: FakeSmtp) -> None:
    plain_notifier(smtp, unsubscribe="https://permit.example/u/abc").send(email())
    assert smtp.messages[0].message["List-Unsubscribe"] == "<https://permit.example/u/abc>"


# -- authentication and TLS --------------------------------------------------------------------


# aiosmtpd rightly warns about AUTH without TLS; plain AUTH is what these two tests exercise.
PLAIN_AUTH_WARNING = "ignore:Requiring AUTH while not requiring TLS:UserWarning"


@pytest.mark.filterwarnings(PLAIN_AUTH_WARNING)
def test_login_with_the_right_password_delivers() -> None:
    with FakeSmtp(user="relay", password="s3cret pass!") as smtp:
        result = plain_notifier(smtp, user="relay", password="s3cret pass!").send(email())

        assert result.status is SendStatus.SENT, result.error
        assert smtp.messages[0].login == "relay"


@pytest.mark.filterwarnings(PLAIN_AUTH_WARNING)
def test_a_wrong_password_is_transient_and_never_echoes_the_password() -> None:
    # A config mistake must delay mail, not mark every recipient as undeliverable.
    with FakeSmtp(user="relay", password="right") as smtp:
        result = plain_notifier(smtp, user="relay", password="wrong-pass").send(email())

        assert result.status is SendStatus.TRANSIENT
        assert "PERMIT_SMTP_USER/PERMIT_SMTP_PASSWORD" in (result.error or "")
        assert "wrong-pass" not in (result.error or "")
        assert smtp.messages == []


def test_starttls_with_a_trusted_self_signed_certificate_delivers(cert: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(cert[0]))
    with FakeSmtp(cert=cert, user="relay", password="pw") as smtp:
        notifier = plain_notifier(smtp, tls="starttls", ssl_context=trusting, user="relay", password="pw")
        result = notifier.send(email())

        assert result.status is SendStatus.SENT, result.error
        assert smtp.messages[0].tls and smtp.messages[0].login == "relay"


def test_starttls_with_an_untrusted_certificate_is_transient(cert: tuple[Path, Path]) -> None:
    # The default context verifies the certificate: a self-signed one must not be accepted.
    with FakeSmtp(cert=cert) as smtp:
        result = plain_notifier(smtp, tls="starttls").send(email())

        assert result.status is SendStatus.TRANSIENT
        assert "TLS" in (result.error or "")
        assert smtp.messages == []


def test_starttls_against_a_server_without_it_is_transient_not_a_plain_text_fallback(smtp: FakeSmtp) -> None:
    result = plain_notifier(smtp, tls="starttls").send(email())

    assert result.status is SendStatus.TRANSIENT
    assert "PERMIT_SMTP_TLS" in (result.error or "")
    assert smtp.messages == []


def test_implicit_tls_delivers(cert: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(cert[0]))
    with FakeSmtp(cert=cert, implicit_tls=True) as smtp:
        result = plain_notifier(smtp, tls="ssl", ssl_context=trusting).send(email())

        assert result.status is SendStatus.SENT, result.error
        assert smtp.messages[0].tls


# -- classification ----------------------------------------------------------------------------


def test_a_refused_recipient_is_permanent_with_the_smtp_code(smtp: FakeSmtp) -> None:
    result = plain_notifier(smtp).send(email(to="nobody@example.com"))

    assert result.status is SendStatus.PERMANENT
    assert result.error_code == "550"
    assert "No such user" in (result.error or "")


def test_a_temporarily_refused_recipient_is_transient(smtp: FakeSmtp) -> None:
    smtp.handler.reject("grey@example.com", "450 4.2.0 Greylisted, try again")
    result = plain_notifier(smtp).send(email(to="grey@example.com"))

    assert result.status is SendStatus.TRANSIENT
    assert result.error_code == "450"


def test_relay_access_denied_is_transient_because_it_is_our_configuration(smtp: FakeSmtp) -> None:
    # An open-relay guard refuses every recipient with 5xx; burning each row would be wrong.
    smtp.handler.reject("far@elsewhere.example", "554 5.7.1 Relay access denied")
    result = plain_notifier(smtp).send(email(to="far@elsewhere.example"))

    assert result.status is SendStatus.TRANSIENT
    assert result.error_code == "554"


def test_a_451_at_data_is_transient_and_the_retry_goes_through(smtp: FakeSmtp) -> None:
    smtp.handler.fail_next_data(1)
    notifier = plain_notifier(smtp)

    first = notifier.send(email())
    second = notifier.send(email())

    assert first.status is SendStatus.TRANSIENT and first.error_code == "451"
    assert second.status is SendStatus.SENT
    assert len(smtp.messages) == 1


def test_a_5xx_at_data_is_permanent(smtp: FakeSmtp) -> None:
    smtp.handler.fail_next_data(1, "554 5.6.0 Message content rejected")
    result = plain_notifier(smtp).send(email())

    assert result.status is SendStatus.PERMANENT and result.error_code == "554"


def test_a_closed_port_is_transient() -> None:
    notifier = SmtpEmailNotifier(host="127.0.0.1", port=free_port(), tls="none", from_address=FROM, timeout_seconds=2.0)
    result = notifier.send(email())

    assert result.status is SendStatus.TRANSIENT
    assert "refused" in (result.error or "")


def test_a_malformed_recipient_is_permanent_without_connecting() -> None:
    # The port is closed: had it tried the network, the answer would have been TRANSIENT.
    notifier = SmtpEmailNotifier(host="127.0.0.1", port=free_port(), tls="none", from_address=FROM)

    assert notifier.send(email(to="+8613800138000")).status is SendStatus.PERMANENT
    assert notifier.send(email(to="a@example.com\r\nBcc: x@evil.example")).status is SendStatus.PERMANENT


# -- configuration -----------------------------------------------------------------------------

GOOD_ENV = {"PERMIT_SMTP_HOST": "smtp.permit.example", "PERMIT_EMAIL_FROM": FROM}


def test_from_env_applies_defaults() -> None:
    notifier = SmtpEmailNotifier.from_env(GOOD_ENV)

    assert (notifier.host, notifier.port, notifier.tls, notifier.user) == ("smtp.permit.example", 587, "starttls", None)
    assert notifier.from_address == "reminders@permit.example"
    assert notifier.unsubscribe == "mailto:reminders@permit.example?subject=unsubscribe"
    assert notifier.timeout_seconds == 15.0


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("ssl", 465), ("none", 25), ("SSL", 465)])
def test_the_default_port_follows_the_tls_mode(tls: str, port: int) -> None:
    assert SmtpEmailNotifier.from_env({**GOOD_ENV, "PERMIT_SMTP_TLS": tls}).port == port


def test_empty_variables_count_as_unset() -> None:
    env = {
        **GOOD_ENV,
        "PERMIT_SMTP_PORT": "",
        "PERMIT_SMTP_USER": "",
        "PERMIT_SMTP_PASSWORD": "",
        "PERMIT_SMTP_TLS": "",
    }
    notifier = SmtpEmailNotifier.from_env({**env, "PERMIT_EMAIL_UNSUBSCRIBE": "", "PERMIT_SMTP_TIMEOUT_SECONDS": ""})

    assert (notifier.port, notifier.tls, notifier.user) == (587, "starttls", None)


def test_the_registry_builds_it_from_the_environment() -> None:
    notifier = get_notifier("smtp", env={**GOOD_ENV, "PERMIT_SMTP_PORT": "2525"})

    assert isinstance(notifier, SmtpEmailNotifier) and notifier.port == 2525
    assert notifier.channels == {"email"}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"PERMIT_SMTP_HOST": ""}, "PERMIT_SMTP_HOST is not set"),
        ({"PERMIT_EMAIL_FROM": ""}, "PERMIT_EMAIL_FROM is not set"),
        ({"PERMIT_EMAIL_FROM": "not-an-address"}, "PERMIT_EMAIL_FROM"),
        ({"PERMIT_SMTP_PORT": "smtp"}, "PERMIT_SMTP_PORT"),
        ({"PERMIT_SMTP_PORT": "70000"}, "PERMIT_SMTP_PORT"),
        ({"PERMIT_SMTP_TLS": "tls"}, "PERMIT_SMTP_TLS"),
        ({"PERMIT_SMTP_USER": "relay"}, "PERMIT_SMTP_PASSWORD"),
        ({"PERMIT_SMTP_PASSWORD": "pw"}, "PERMIT_SMTP_USER"),
        ({"PERMIT_SMTP_USER": "relay", "PERMIT_SMTP_PASSWORD": "密码"}, "PERMIT_SMTP_PASSWORD must be ASCII"),
        ({"PERMIT_EMAIL_UNSUBSCRIBE": "http://insecure.example/u"}, "PERMIT_EMAIL_UNSUBSCRIBE"),
        ({"PERMIT_SMTP_TIMEOUT_SECONDS": "soon"}, "PERMIT_SMTP_TIMEOUT_SECONDS"),
        ({"PERMIT_SMTP_TIMEOUT_SECONDS": "0"}, "PERMIT_SMTP_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_setting_fails_with_one_line_naming_the_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(NotifierConfigError) as caught:
        SmtpEmailNotifier.from_env({**GOOD_ENV, **overrides})
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_a_config_error_never_shows_the_password() -> None:
    with pytest.raises(NotifierConfigError) as caught:
        SmtpEmailNotifier.from_env({**GOOD_ENV, "PERMIT_SMTP_PASSWORD": "hunter2", "PERMIT_SMTP_USER": ""})
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(SmtpEmailNotifier(host="h", user="u", password="hunter2", from_address=FROM))


def test_the_constructor_validates_eagerly() -> None:
    # Misconfiguration must stop start-up, not surface at the first reminder.
    with pytest.raises(NotifierConfigError, match="PERMIT_SMTP_PASSWORD"):
        SmtpEmailNotifier(host="smtp.permit.example", user="relay", from_address=FROM)
    with pytest.raises(NotifierConfigError, match="PERMIT_SMTP_TLS"):
        SmtpEmailNotifier(host="smtp.permit.example", tls="tls1.3", from_address=FROM)


# -- text_to_html ------------------------------------------------------------------------------


def test_blank_lines_separate_paragraphs_and_single_breaks_become_br() -> None:
    rendered = text_to_html("第一段\n第一段第二行\n\n第二段", "zh-CN")

    assert rendered.count("<p") == 2
    assert "第一段<br>\n第一段第二行</p>" in rendered


def test_consecutive_dash_lines_become_one_list() -> None:
    rendered = text_to_html("请携带：\n- 身份证\n- 居住证\n结束", "zh-CN")

    assert rendered.count("<ul") == 1 and rendered.count("<li") == 2
    assert ">请携带：</p>" in rendered and ">结束</p>" in rendered  # text around the list stays paragraphs
    assert rendered.index("请携带") < rendered.index("<ul") < rendered.index("结束")


def test_everything_is_escaped_including_list_items() -> None:
    rendered = text_to_html('<b>x</b> & "y"\n- <img src=x onerror=alert(1)>', "zh-CN")

    assert "<b>" not in rendered and "<img" not in rendered
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;" in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;</li>" in rendered


def test_the_lang_attribute_follows_the_locale_and_is_escaped() -> None:
    assert '<html lang="en">' in text_to_html("hi", "en")
    assert '<html lang="&quot;&gt;">' in text_to_html("hi", '">')


def test_windows_line_endings_and_trailing_blank_lines_are_tolerated() -> None:
    rendered = text_to_html("a\r\nb\r\n\r\n\r\n", "zh-CN")

    assert rendered.count("<p") == 1 and "a<br>\nb</p>" in rendered
