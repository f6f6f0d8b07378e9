"""The Tencent SMS notifier's settings, read from the environment and checked at start-up.

Each problem is one NotifierConfigError line naming the variable, and never echoing a secret.
PERMIT_TENCENT_SMS_ENDPOINT takes a host ("sms.tencentcloudapi.com", HTTPS) or a URL; plain
http:// is allowed only to this machine (a local fake): message texts and numbers would
otherwise cross the network unencrypted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from notifiers.base import NotifierConfigError

DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
DEFAULT_REGION = "ap-guangzhou"
DEFAULT_TIMEOUT_SECONDS = 10.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+(-\d+)?$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


@dataclass(frozen=True)
class TencentSettings:
    secret_id: str
    secret_key: str = field(repr=False)
    sdk_app_id: str
    sign_name: str
    region: str = DEFAULT_REGION
    endpoint: str = DEFAULT_ENDPOINT  # host[:port], as the SDK's HttpProfile wants it
    scheme: str = "https"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


def parse_endpoint(value: str) -> tuple[str, str]:
    """(scheme, host[:port]) from a bare host or an http(s):// URL."""
    if "://" not in value:
        if not _HOST.match(value):
            raise NotifierConfigError("PERMIT_TENCENT_SMS_ENDPOINT must be a host name or an http(s):// URL")
        return "https", value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise NotifierConfigError("PERMIT_TENCENT_SMS_ENDPOINT must be https://host[:port] (no path)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise NotifierConfigError("PERMIT_TENCENT_SMS_ENDPOINT may use plain http:// only to 127.0.0.1 (a local fake)")
    return parts.scheme, parts.netloc


def check(settings: TencentSettings) -> None:
    if not settings.secret_id:
        raise NotifierConfigError("TENCENTCLOUD_SECRET_ID is not set")
    if not settings.secret_key:
        raise NotifierConfigError("TENCENTCLOUD_SECRET_KEY is not set")
    if not settings.sdk_app_id:
        raise NotifierConfigError("PERMIT_TENCENT_SMS_SDK_APP_ID is not set")
    if not settings.sdk_app_id.isdigit():
        raise NotifierConfigError("PERMIT_TENCENT_SMS_SDK_APP_ID must be the SmsSdkAppId, digits only (1400...)")
    if not settings.sign_name:
        raise NotifierConfigError("PERMIT_TENCENT_SMS_SIGN_NAME is not set")
    if not _REGION.match(settings.region):
        raise NotifierConfigError(f"PERMIT_TENCENT_SMS_REGION must look like ap-guangzhou, got {settings.region!r}")
    timeout = settings.timeout_seconds
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise NotifierConfigError("PERMIT_TENCENT_TIMEOUT_SECONDS must be a positive number of seconds")


def settings_from_env(env: Mapping[str, str]) -> TencentSettings:
    def get(name: str) -> str:
        return (env.get(name) or "").strip()  # empty counts as unset

    raw_timeout = get("PERMIT_TENCENT_TIMEOUT_SECONDS")
    timeout = DEFAULT_TIMEOUT_SECONDS
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise NotifierConfigError(
                f"PERMIT_TENCENT_TIMEOUT_SECONDS must be a number of seconds, got {raw_timeout!r}") from None
    scheme, endpoint = parse_endpoint(get("PERMIT_TENCENT_SMS_ENDPOINT") or DEFAULT_ENDPOINT)
    settings = TencentSettings(
        secret_id=get("TENCENTCLOUD_SECRET_ID"),
        secret_key=get("TENCENTCLOUD_SECRET_KEY"),
        sdk_app_id=get("PERMIT_TENCENT_SMS_SDK_APP_ID"),
        # The filed signature without its brackets: Tencent adds 【】 itself.
        sign_name=get("PERMIT_TENCENT_SMS_SIGN_NAME").strip("【】").strip(),
        region=get("PERMIT_TENCENT_SMS_REGION") or DEFAULT_REGION,
        endpoint=endpoint,
        scheme=scheme,
        timeout_seconds=timeout,
    )
    check(settings)
    return settings
