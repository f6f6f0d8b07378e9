"""Checking an Alibaba Cloud ACS3-HMAC-SHA256 request signature, for the fake (fake.py).

The same canonical request the SDK builds (alibabacloud_tea_openapi.utils.get_authorization), rebuilt
from what arrived on the wire: method, path, the query sorted and re-encoded (RFC 3986, "~" kept),
the signed headers (lower-case, trimmed), their names, and the body's sha256; then hashed and
HMAC-ed with the AccessKey secret. Checking it in full means a test catches a wrong secret, a
header the SDK did not sign, or a query the SDK signed differently from what it sent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
_AUTH = re.compile(r"^ACS3-HMAC-SHA256 Credential=(?P<ak>[^,]*),SignedHeaders=(?P<signed>[^,]*),"
                   r"Signature=(?P<sig>[0-9a-f]+)$")
# What Aliyun insists is signed: without them a request could be replayed or redirected.
_REQUIRED = frozenset({"host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"})


@dataclass(frozen=True)
class Checked:
    access_key_id: str  # "" when there is no ACS3 Authorization header
    valid: bool


def canonical_request(method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str],
                      signed: Sequence[str], payload_hash: str) -> str:
    canon_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query))
    canon_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    return f"{method}\n{path or '/'}\n{canon_query}\n{canon_headers}\n{';'.join(signed)}\n{payload_hash}"


def check(method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str], body: bytes,
          secret: str) -> Checked:
    """`headers` with lower-case names; `query` decoded, in any order."""
    auth = _AUTH.match(headers.get("authorization", ""))
    if auth is None:
        return Checked("", False)
    signed = auth["signed"].split(";")
    payload_hash = headers.get("x-acs-content-sha256", "")
    if payload_hash != hashlib.sha256(body).hexdigest() or not set(signed) >= _REQUIRED:
        return Checked(auth["ak"], False)
    canonical = canonical_request(method, path, query, headers, signed, payload_hash)
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return Checked(auth["ak"], hmac.compare_digest(expected, auth["sig"]))
