"""A provider's local fake in a process of its own, so serving HTTP does not compete for the
dispatcher's GIL: `python -m benchmarks.fake_provider NAME LATENCY_SECONDS [USERS]` prints one JSON
line of the environment that points the worker at it (NAME: twilio, aliyun, tencent, wecom;
USERS: how many WeCom members exist, bench0..benchN-1), answers "count" on stdin with the messages
it accepted so far, and stops when stdin closes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` lives at the repo root


def _twilio(_: int) -> tuple[Any, dict[str, str], Callable[[], int]]:
    from notifiers.twilio.fake import FakeTwilio
    fake = FakeTwilio().start()
    return fake, {"PERMIT_SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": fake.account_sid,
                  "TWILIO_AUTH_TOKEN": fake.auth_token, "TWILIO_FROM_NUMBER": "+15005550006",
                  "PERMIT_TWILIO_BASE_URL": fake.base_url}, lambda: len(fake.accepted)


def _aliyun(_: int) -> tuple[Any, dict[str, str], Callable[[], int]]:
    from notifiers.aliyun.fake import FakeAliyun
    fake = FakeAliyun().start()
    return fake, {"PERMIT_SMS_BACKEND": "aliyun", "ALIBABA_CLOUD_ACCESS_KEY_ID": fake.access_key_id,
                  "ALIBABA_CLOUD_ACCESS_KEY_SECRET": fake.access_key_secret, "PERMIT_ALIYUN_SMS_SIGN_NAME": "居住证提醒",
                  "PERMIT_ALIYUN_SMS_ENDPOINT": fake.endpoint}, lambda: len(fake.accepted)


def _tencent(_: int) -> tuple[Any, dict[str, str], Callable[[], int]]:
    from notifiers.tencent.fake import FakeTencentSms
    fake = FakeTencentSms().start()
    fake.report_on_accept = False  # the benchmark never reconciles: keep the fake's memory flat
    return fake, {"PERMIT_SMS_BACKEND": "tencent", "TENCENTCLOUD_SECRET_ID": fake.secret_id,
                  "TENCENTCLOUD_SECRET_KEY": fake.secret_key, "PERMIT_TENCENT_SMS_SDK_APP_ID": fake.sdk_app_id,
                  "PERMIT_TENCENT_SMS_SIGN_NAME": "居住证提醒", "PERMIT_TENCENT_SMS_ENDPOINT": fake.endpoint}, \
        lambda: len(fake.accepted)


def _wecom(users: int) -> tuple[Any, dict[str, str], Callable[[], int]]:
    from notifiers.wecom.fake import FakeWeCom
    fake = FakeWeCom(users={f"bench{i}" for i in range(max(users, 1))}).start()
    return fake, {"PERMIT_WECOM_CORP_ID": fake.corp_id, "PERMIT_WECOM_AGENT_ID": str(fake.agent_id),
                  "PERMIT_WECOM_SECRET": fake.secret, "PERMIT_WECOM_BASE_URL": fake.base_url, "PERMIT_WECOM_TEAMS": "*"}, \
        lambda: len(fake.delivered)


PROVIDERS = {"twilio": _twilio, "aliyun": _aliyun, "tencent": _tencent, "wecom": _wecom}


def main() -> None:
    name, latency = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    fake, env, accepted = PROVIDERS[name](int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    fake.latency_seconds = latency
    try:
        print(json.dumps(env), flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(accepted(), flush=True)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
