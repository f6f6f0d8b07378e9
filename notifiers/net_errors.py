"""What a failed HTTP call means, for any provider on `requests`: whether anything left, and a
short cause without URLs (they carry account ids, numbers and template values).

Providers' SDKs wrap the transport's exception their own way (Tencent in
TencentCloudSDKException, Aliyun's darabonba in RetryError/UnretryableException with
`inner_exception`), so the chain of causes is walked, not just the outer exception.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

_WRAPPERS: tuple[type[BaseException], ...] = (requests.exceptions.RequestException, MaxRetryError)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: __cause__/__context__, urllib3's .reason, an SDK's
    inner_exception, exception args; breadth first (outer wrappers before their causes)."""
    seen: set[int] = set()
    pending: deque[BaseException] = deque([exc])
    while pending:
        current = pending.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  getattr(current, "inner_exception", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def failed_before_sending(exc: BaseException) -> bool:
    # urllib3's NewConnectionError and NameResolutionError both subclass ConnectTimeoutError:
    # all three mean no connection was made, so no byte of the request left.
    before = (ConnectTimeoutError, ConnectionRefusedError, socket.gaierror)
    return any(isinstance(item, before) for item in exception_chain(exc))


def root_reason(exc: BaseException, wrappers: tuple[type[BaseException], ...] = (),
                wrapper_names: tuple[str, ...] = (), innermost: bool = False) -> str:
    """A short cause like "NewConnectionError: [Errno 111] Connection refused", skipping the
    transport's and the SDK's own wrappers (`wrappers`, or by class name)."""
    chain = list(exception_chain(exc))
    skip = (*_WRAPPERS, *wrappers)
    names = [type(e).__name__ for e in chain if not isinstance(e, skip) and type(e).__name__ not in wrapper_names]
    errno_text = next((f"[Errno {e.errno}] {e.strerror}" for e in chain if isinstance(e, OSError) and e.strerror), "")
    name = (names[-1] if innermost else names[0]) if names else type(exc).__name__
    return f"{name}: {errno_text}" if errno_text else name
