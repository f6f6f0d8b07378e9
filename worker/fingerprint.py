"""Keyed fingerprints of addresses: enough to notice a change, useless for reading one back."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.models import AppMeta

_META_KEY = "address_fingerprint_key"


def normalize_address(address: str) -> str:
    """Fold width, case and whitespace so "浦东新区 xx路1号" and "浦东新区xx路１号" match."""
    folded = unicodedata.normalize("NFKC", address).casefold()
    return "".join(folded.split())


def fingerprint(address: str, key: bytes) -> str:
    return hmac.new(key, normalize_address(address).encode("utf-8"), hashlib.sha256).hexdigest()


def fingerprint_key(session: Session, configured: str | None) -> bytes:
    """The configured key (PERMIT_FINGERPRINT_KEY), else a random one generated once per database.

    The key must never change for a database: a new key makes every address look changed.
    """
    if configured:
        return configured.encode("utf-8")
    stored = session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))
    if stored:
        return bytes.fromhex(stored)
    generated = secrets.token_hex(32)
    try:
        with session.begin_nested():
            session.add(AppMeta(key=_META_KEY, value=generated))
    except IntegrityError:  # another process generated it first: use theirs
        stored = session.scalar(select(AppMeta.value).where(AppMeta.key == _META_KEY))
        return bytes.fromhex(stored or generated)
    return bytes.fromhex(generated)
