"""A property of the whole edge: for random interleavings of roster imports, confirmations, scans
and sends, delivery receipts (replayed at will) and replies from a number two teams share,

- no holder's expiry ever moves back (no import here uses the override);
- no touch is sent more than once, plus one more per receipt that genuinely asked for a retry
  (a passing carrier failure on the latest attempt); replays never add one;
- a replayed receipt or reply changes nothing at all.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from notifiers.base import Message, Reply, SendResult
from notifiers.twilio.receipts import receipt_from
from schedules.policy import default_policy, parse_send_window
from worker.delivery.dispatch import Dispatcher
from worker.delivery.inbound import apply_receipt, apply_reply
from worker.planning.scan import scan
from worker.registry import records as registry
from worker.registry import service
from worker.registry.roster import RosterError, RosterRow
from worker.registry.service import UnitOfWork
from worker.store.db import make_engine, session_factory, unit_of_work, upgrade
from worker.store.models import DeliveryAttempt, Holder, HrEvent, InboundEvent, Notification, Team

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = date(2027, 3, 1)
BASE_EXPIRY = START + timedelta(days=31)
PHONE = "+8613800138000"
KEY = "prop-key"


@dataclass
class Numbered:
    """A provider that gives each send its own message id, and counts sends per outbox key."""

    name: str = "prop"
    channels: frozenset[str] = frozenset({"sms", "email"})
    sends: Counter[str] = field(default_factory=Counter)

    def send(self, message: Message) -> SendResult:
        self.sends[message.idempotency_key] += 1
        return SendResult.sent(f"SM{sum(self.sends.values())}")


ops = st.one_of(
    st.tuples(st.just("import"), st.sampled_from(["A", "B"]), st.integers(-400, 400)),
    st.tuples(st.just("confirm"), st.sampled_from(["A", "B"]), st.integers(1, 400)),
    st.tuples(st.just("advance"), st.integers(1, 20)),
    st.tuples(st.just("advance"), st.integers(1, 20)),
    st.tuples(st.just("receipt"), st.integers(0, 20), st.sampled_from(["delivered", "undelivered", "failed"]),
              st.sampled_from(["30003", "30006", None])),
    st.tuples(st.just("receipt"), st.integers(0, 20), st.just("undelivered"), st.just("30003")),
    st.tuples(st.just("replay")),
    st.tuples(st.just("reply"), st.sampled_from(["TD", "已续签", "你好"]), st.integers(0, 3)),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prop") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _snapshot(session) -> tuple:  # type: ignore[no-untyped-def]
    return (tuple(session.execute(select(Holder.id, Holder.expires_on, Holder.sms_opted_out_at)
                                  .order_by(Holder.id)).all()),
            tuple(session.execute(select(Notification.id, Notification.status, Notification.attempts,
                                         Notification.delivery_status).order_by(Notification.id)).all()),
            session.query(HrEvent).count(), session.query(DeliveryAttempt).count())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(ops, min_size=5, max_size=30))
def test_no_interleaving_moves_an_expiry_back_or_sends_a_touch_twice(template: Path, tmp_path: Path,
                                                                     steps: list[tuple]) -> None:  # type: ignore[type-arg]
    db = tmp_path / f"run-{id(steps)}.db"
    shutil.copyfile(template, db)
    engine = make_engine(f"sqlite:///{db}")
    factory = session_factory(engine)
    policy = default_policy()
    provider = Numbered()
    dispatcher = Dispatcher(factory, {"sms": provider, "email": provider}, policy, SHANGHAI,
                            send_window=parse_send_window("00:00-24:00"))
    with unit_of_work(factory) as session:
        teams = {slug: registry.create_team(session, slug, slug, None).id for slug in ("a", "b")}
    holders = {"A": ("a", "E1"), "B": ("b", "B1")}
    steps = [("import", "A", 0), ("import", "B", 5), *steps]  # both teams register the one phone
    today = START
    highest: dict[str, date] = {}
    allowed_retries: Counter[str] = Counter()
    seen_receipts: list[tuple[str, str, str | None]] = []
    seen_replies: list[tuple[str, str]] = []
    try:
        for step in steps:
            now = datetime.combine(today, time(10), SHANGHAI).astimezone(UTC)
            kind = step[0]
            if kind == "import":
                _, who, offset = step
                slug, external_id = holders[who]
                row = RosterRow(row=2, external_id=external_id, expires_on=BASE_EXPIRY + timedelta(days=offset),
                                phone=PHONE, present=frozenset({"external_id", "expires_on", "phone"}))
                try:
                    with UnitOfWork(factory, policy, SHANGHAI, now) as uow:
                        service.import_rows(uow, service.team_of(uow, teams[slug]), [row], KEY)
                        uow.commit()
                except RosterError as exc:
                    assert all(e.summary == "earlier than the expiry on file" for e in exc.errors)
            elif kind == "confirm":
                _, who, offset = step
                slug, external_id = holders[who]
                with unit_of_work(factory) as session:
                    team = session.get(Team, teams[slug])
                    h = session.scalar(select(Holder).where(Holder.team_id == teams[slug],
                                                            Holder.external_id == external_id))
                    if h is not None:
                        registry.confirm_renewal(session, team, external_id, h.expires_on + timedelta(days=offset))
            elif kind == "advance":
                today += timedelta(days=step[1])
                now = datetime.combine(today, time(10), SHANGHAI).astimezone(UTC)
                scan(factory, policy, SHANGHAI, now=now)
                dispatcher.run_batch(now=now, limit=100)
            elif kind in ("receipt", "replay"):
                if kind == "replay":
                    if not seen_receipts:
                        continue
                    sid, status, code = seen_receipts[-1]
                else:
                    with unit_of_work(factory) as session:
                        sids = list(session.scalars(select(DeliveryAttempt.provider_message_id)
                                                    .where(DeliveryAttempt.provider_message_id.is_not(None))
                                                    .order_by(DeliveryAttempt.id)))
                    if not sids:
                        continue
                    sid, status, code = sids[step[1] % len(sids)], step[2], step[3]
                with unit_of_work(factory) as session:
                    before = _snapshot(session)
                    receipt = receipt_from({"MessageSid": sid, "MessageStatus": status, "ErrorCode": code or ""})
                    assert receipt is not None
                    outcome = apply_receipt(session, receipt, now)
                    after = _snapshot(session)
                    key = session.scalar(select(Notification).join(DeliveryAttempt).where(
                        DeliveryAttempt.provider_message_id == sid)).key
                if (sid, status, code) in seen_receipts or (kind == "replay"):
                    assert outcome == "duplicate" and before == after, (step, outcome)
                seen_receipts.append((sid, status, code))
                if outcome == "retry":
                    allowed_retries[key] += 1
            elif kind == "reply":
                _, word, n = step
                message_id = f"IN{n}"
                with unit_of_work(factory) as session:
                    before = _snapshot(session)
                    apply_reply(session, Reply("twilio", PHONE, word, message_id), now)
                    after = _snapshot(session)
                if (message_id, word) in seen_replies or any(m == message_id for m, _ in seen_replies):
                    assert before == after, step
                seen_replies.append((message_id, word))
            # Invariants, after every step.
            with unit_of_work(factory) as session:
                for external_id, expires_on in session.execute(select(Holder.external_id, Holder.expires_on)):
                    assert expires_on >= highest.get(external_id, expires_on), (external_id, steps)
                    highest[external_id] = max(expires_on, highest.get(external_id, expires_on))
            for key, sent in provider.sends.items():
                assert sent <= 1 + allowed_retries[key], (key, sent, steps)
        event(f"sends: {min(sum(provider.sends.values()), 3)}+")
        event(f"retries allowed: {min(sum(allowed_retries.values()), 2)}+")
        event(f"receipts: {min(len(seen_receipts), 3)}+")
        with unit_of_work(factory) as session:
            # Every receipt and reply acted on is recorded once.
            recorded = session.query(InboundEvent).count()
        assert recorded <= len(set(seen_receipts)) + len({m for m, _ in seen_replies})
    finally:
        engine.dispose()
