"""TC3-HMAC-SHA256 request signatures, as Tencent Cloud API 3.0 checks them (for the fake).

https://cloud.tencent.com/document/api/382/52072 ("签名方法 v3"): the canonical request is
method, URI, query, the signed headers (content-type and host, lower case), the signed header
names and the body's SHA-256; the key is derived from "TC3" + SecretKey, the date and the service.
Written from the spec, independently of the SDK, so the fake really checks what the SDK sent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


def parse_authorization(header: str) -> Authorization | None:
    match = _AUTHORIZATION.match(header.strip())
    if match is None:
        return None
    return Authorization(match["secret_id"], match["date"], match["service"], match["signed"], match["signature"])


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signature(secret_key: str, *, method: str, uri: str, query: str, headers: dict[str, str], signed_headers: str,
              body: bytes, timestamp: int, service: str) -> str:
    """The hex signature for a request; `headers` maps lower-case names to values."""
    names = signed_headers.split(";")
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in names)
    canonical = "\n".join([method, uri, query, canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()])
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
