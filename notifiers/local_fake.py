"""What every provider's local fake shares: an HTTP server on 127.0.0.1 on a free port, served
from a thread, started and stopped as a context manager (`with FakeAliyun() as fake:`).

Each fake (notifiers/<provider>/fake.py) keeps its own API, state and scripted failures; its
request handler reaches the fake as `self.owner`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # room for the dispatcher's many senders connecting at once


class LocalFake:
    """Subclasses set `handler` (a BaseHTTPRequestHandler subclass with an `owner` attribute)."""

    handler: type[BaseHTTPRequestHandler]
    server_class: type[ThreadingHTTPServer] = _Server
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        handler: Any = type(f"{type(self).__name__}Handler", (self.handler,), {"owner": self})
        self._server = self.server_class(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, once started."""
        assert self._server is not None, f"{type(self).__name__} is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"
