"""Checks for the WeCom notifiers' settings: each failure is one NotifierConfigError line naming
the variable, raised at start-up (values that are secrets are never echoed).

Plain http:// is accepted only for a loopback host (a local fake): the API URL carries the corp
secret and access tokens in its query, so it must not cross a network unencrypted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from notifiers.base import NotifierConfigError
from notifiers.wecom.limits import URL_MAX_BYTES, utf8_len

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_TIMEOUT_SECONDS = 10.0

Getter = Callable[[str], str | None]


def getter(env: Mapping[str, str]) -> Getter:
    def get(name: str) -> str | None:
        value = (env.get(name) or "").strip()
        return value or None  # empty counts as unset

    return get


def is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS


def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return parts.hostname


def check_api_url(url: str, variable: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not _host_of(url):
        raise NotifierConfigError(f"{variable} must be an https:// URL")
    if parts.scheme == "http" and not is_loopback_http(url):
        raise NotifierConfigError(f"{variable} must use https:// (http:// only for 127.0.0.1/localhost)")
    if parts.query or parts.fragment or parts.username is not None:
        raise NotifierConfigError(f"{variable} must be a bare base URL (no user@, ?query or #fragment)")


def check_card_url(url: str, variable: str) -> None:
    if urlsplit(url).scheme not in ("https", "http") or not _host_of(url):
        raise NotifierConfigError(f"{variable} must be an http:// or https:// URL")
    if utf8_len(url) > URL_MAX_BYTES:
        raise NotifierConfigError(f"{variable} must be at most {URL_MAX_BYTES} bytes (WeCom's limit)")


def check_timeout(seconds: float, variable: str) -> None:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise NotifierConfigError(f"{variable} must be a positive number of seconds")


def timeout_from(get: Getter, variable: str) -> float:
    raw = get(variable)
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise NotifierConfigError(f"{variable} must be a number of seconds, got {raw!r}") from None
    check_timeout(seconds, variable)
    return seconds
