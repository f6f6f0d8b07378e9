"""Console delivery: each message is one JSON line on stdout.

The embedded default, so a fresh clone shows real reminders without any provider account. Only
messages go to stdout (logs go to stderr), so `permit-worker dispatch --once | jq` works.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TextIO

from notifiers.base import Message, SendResult


class ConsoleNotifier:
    name = "console"
    channels = frozenset({"sms", "email"})

    def __init__(self, stream: TextIO | None = None, **_settings: object) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._sequence = 0

    def send(self, message: Message) -> SendResult:
        stream = self._stream or sys.stdout
        with self._lock:
            self._sequence += 1
            provider_id = f"console-{message.idempotency_key or self._sequence}"
            record = {
                "channel": message.channel,
                "to": message.to,
                "subject": message.subject,
                "body": message.body,
                "locale": message.locale,
                "key": message.idempotency_key,
                "provider_message_id": provider_id,
            }
            try:
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                stream.flush()
            except (OSError, ValueError) as exc:  # a closed or broken pipe: retry later, do not crash
                return SendResult.transient(f"console write failed: {exc}")
        return SendResult.sent(provider_id)
