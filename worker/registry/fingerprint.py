"""Keyed fingerprints of addresses: enough to notice a change, useless for reading one back.

The key must stay with the operator, not the data: in production it comes from
PERMIT_FINGERPRINT_KEY (a key kept beside the fingerprints it protects would let anyone with a
copy of the database test guesses of an address). The embedded default (a SQLite file) may
generate one and keep it in the database, so a fresh clone runs without setup.

A registry remembers a check value of its key (an HMAC of a fixed text, not the key), so a
changed or mistyped key is refused at once instead of making every address look changed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.store.models import AppMeta

_META_KEY = "address_fingerprint_key"  # a generated key (embedded default only)
_CHECK_KEY = "address_fingerprint_key_check"
_CHECK_TEXT = b"permit-worker address fingerprint key check"
HEX_PREFIX = "hex:"  # PERMIT_FINGERPRINT_KEY=hex:<64 hex digits>: the bytes themselves (a moved generated key)


class FingerprintKeyError(ValueError):
    """The configured key is missing where it is required, or is not this registry's key."""


def normalize_address(address: str) -> str:
    """Fold width, case and whitespace so "浦东新区 xx路1号" and "浦东新区xx路１号" match."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return "".join(folded.split())


def fingerprint(address: str, key: bytes) -> str:
    return hmac.new(key, normalize_address(address).encode("utf-8"), hashlib.sha256).hexdigest()


def key_bytes(configured: str) -> bytes:
    if configured.startswith(HEX_PREFIX):
        try:
            return bytes.fromhex(configured[len(HEX_PREFIX):])
        except ValueError:
            raise FingerprintKeyError("PERMIT_FINGERPRINT_KEY starts with hex: but is not hexadecimal") from None
    return configured.encode("utf-8")


def _check_value(key: bytes) -> str:
    return hmac.new(key, _CHECK_TEXT, hashlib.sha256).hexdigest()


def fingerprint_key(session: Session, configured: str | None, *, generate: bool | None = None) -> bytes:
    """The configured key (PERMIT_FINGERPRINT_KEY), else, for the embedded default only, a random
    one generated once per database. `generate`: whether a database-kept key is allowed (default:
    on SQLite only; PostgreSQL is never the embedded default).

    A configured key that equals the generated one kept in the database takes over from it: the
    copy in the database is deleted (`permit-worker keys export` prints it for moving out)."""
    stored = session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))
    if configured:
        key = key_bytes(configured)
        if stored is not None and bytes.fromhex(stored) == key:
            session.execute(delete(AppMeta).where(AppMeta.key == _META_KEY))  # moved out: not beside the data
            stored = None
        elif stored is not None:
            raise FingerprintKeyError(
                "PERMIT_FINGERPRINT_KEY is not the key this registry's addresses were fingerprinted with (a "
                "generated key kept in the database): every address would look changed. Print that key with "
                "`permit-worker keys export`, set PERMIT_FINGERPRINT_KEY to it, and start again")
    else:
        allowed = generate if generate is not None else session.get_bind().dialect.name == "sqlite"
        if not allowed:
            raise FingerprintKeyError(
                "PERMIT_FINGERPRINT_KEY is not set: required outside the embedded default (a PostgreSQL "
                "database or an https PERMIT_PUBLIC_URL); set it from your secret store, once, and never change it")
        key = bytes.fromhex(stored) if stored else _generate(session)
    _verify(session, key)
    return key


def _generate(session: Session) -> bytes:
    generated = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(AppMeta(key=_META_KEY, value=generated))
    except IntegrityError:  # another process generated it first: use theirs
        stored = session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))
        return bytes.fromhex(stored or generated)
    return bytes.fromhex(generated)


def _verify(session: Session, key: bytes) -> None:
    """Refuse a key other than the one this registry first used (its check value is kept)."""
    check = _check_value(key)
    known = session.scalar(select(AppMeta.value).where(AppMeta.key == _CHECK_KEY))
    if known is None:
        try:
            with session.begin_nested():
                session.add(AppMeta(key=_CHECK_KEY, value=check))
        except IntegrityError:
            known = session.scalar(select(AppMeta.value).where(AppMeta.key == _CHECK_KEY))
    if known is not None and not hmac.compare_digest(known, check):
        raise FingerprintKeyError(
            "PERMIT_FINGERPRINT_KEY is not the key this registry's addresses were fingerprinted with: every "
            "address would look changed. Set the original key")


def stored_key(session: Session) -> str | None:
    """The generated key kept in the database, as PERMIT_FINGERPRINT_KEY would carry it."""
    stored = session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))
    return f"{HEX_PREFIX}{stored}" if stored else None
