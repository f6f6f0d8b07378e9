"""FakeTwilio (notifiers/twilio/fake.py) in a process of its own, so serving HTTP does not
compete for the dispatcher's GIL: `python -m benchmarks.fake_twilio LATENCY_SECONDS` prints
"BASE_URL ACCOUNT_SID AUTH_TOKEN", answers "count" on stdin with the messages accepted so far,
and stops when stdin closes."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` lives at the repo root

from notifiers.twilio.fake import FakeTwilio


def main() -> None:
    with FakeTwilio() as fake:
        fake.latency_seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
        print(fake.base_url, fake.account_sid, fake.auth_token, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(fake.accepted), flush=True)


if __name__ == "__main__":
    main()
