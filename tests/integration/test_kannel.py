"""The SMS channel against a real Kannel: parts, delivery reports, STOP/START/HELP, replies.

Kannel (bearerbox + smsbox) runs with the fake SMS centre; leadflow's API runs under uvicorn
so Kannel can call its inbound and delivery-report routes. Skipped when Kannel is missing,
except under CI=true.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from leadflow import Leadflow, Settings, open_leadflow
from leadflow.adapters.sms import KannelSmsSender
from leadflow.api.app import create_app
from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.ports import SmsMessage
from tests.conftest import need_service
from tests.integration.kannel_support import (
    PASSWORD,
    SHORT_CODE,
    USERNAME,
    WEBHOOK_TOKEN,
    KannelRig,
    binaries_missing,
    free_port,
    serving,
    wait_for,
)

_numbers = itertools.count(100)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KannelRig]:
    missing = binaries_missing()
    if missing:
        need_service(missing)
    for attempt in (1, 2):  # a free port taken by someone else in between: once more
        found = KannelRig(tmp_path_factory.mktemp("kannel"), app_port=free_port())
        try:
            with found.explain():
                found.start()
            break
        except AssertionError:
            found.stop()
            if attempt == 2:
                raise
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def sms_app(
    rig: KannelRig, leadflow: Leadflow, database_url: str, tmp_path: Path
) -> Iterator[Leadflow]:
    """leadflow on the test's emptied database, sending through the rig's Kannel and serving
    the routes Kannel calls."""
    settings = Settings(
        database_url=database_url,
        home=tmp_path,
        public_url=f"http://127.0.0.1:{rig.app_port}",
        sms={
            "provider": "kannel",
            "sender": SHORT_CODE,
            "program": "Acme Deals",
            "contact": "help@acme.test",
            "webhook_token": WEBHOOK_TOKEN,
            "kannel": {"url": rig.sendsms_url, "username": USERNAME, "password": PASSWORD},
        },
    )
    app = open_leadflow(settings)
    try:
        with serving(create_app(leadflow=app), rig.app_port):
            yield app
    finally:
        app.close()


def _lead(app: Leadflow) -> tuple[int, str]:
    """A lead with a fresh phone number (unique across the module's tests)."""
    phone = f"+1202555{next(_numbers):04d}"
    source = app.ensure_source("website")
    app.ingest(
        source, [{"type": "identify", "userId": f"user-{phone}", "traits": {"phone": phone}}]
    )
    lead = app.leads().items[0].id
    return lead, phone


def _delivery_status(app: Leadflow, lead: int, key: str) -> str | None:
    found = [d for d in app.deliveries(lead) if d.key == key]
    return found[0].status if found else None


def _events(app: Leadflow, lead: int, name: str) -> int:
    return sum(1 for e in app.lead_events(lead) if e.name == name)


def test_long_texts_arrive_in_parts_and_reports_mark_them_delivered(
    rig: KannelRig, sms_app: Leadflow
) -> None:
    lead, phone = _lead(sms_app)
    with rig.explain():
        long_gsm = "Spring offer: " + "a" * 286  # 300 GSM-7 characters
        sent = sms_app.send_sms(phone, long_gsm, key="test:long-gsm")
        assert (sent.status, sent.parts) == ("sent", 2)
        parts = wait_for(
            lambda: len(rig.received_by(phone)) == 2 and rig.received_by(phone),
            "two parts at the SMS centre",
        )
        assert [p.kind for p in parts] == ["udh", "udh"]
        assert all(p.sender == SHORT_CODE for p in parts)
        wait_for(
            lambda: _delivery_status(sms_app, lead, "test:long-gsm") == "delivered",
            "the delivery report",
        )

        unicode_text = "Hi 😀 " + "é" * 70 + "ж"  # UCS-2: 77 UTF-16 units -> 2 parts of 67
        sent = sms_app.send_sms(phone, unicode_text, key="test:ucs2")
        assert (sent.status, sent.parts) == ("sent", 2)
        wait_for(lambda: len(rig.received_by(phone)) == 4, "two more parts")
        ucs2 = rig.received_by(phone)[2:]
        assert "%D8%3D%DE%00" in ucs2[0].data  # the emoji as a UTF-16 surrogate pair
        wait_for(
            lambda: _delivery_status(sms_app, lead, "test:ucs2") == "delivered",
            "the delivery report of the UCS-2 text",
        )

    row = next(d for d in sms_app.deliveries(lead) if d.key == "test:ucs2")
    assert (row.parts, row.provider_id, row.delivered_at is not None) == (2, "test:ucs2", True)
    assert _events(sms_app, lead, "SMS Delivered") == 2


def test_stop_suppresses_start_resubscribes_help_answers(rig: KannelRig, sms_app: Leadflow) -> None:
    lead, phone = _lead(sms_app)
    with rig.explain():
        rig.type_inbound(phone, "Stop")
        confirmation = wait_for(lambda: rig.received_by(phone), "the opt-out confirmation")
        assert [r.data for r in confirmation] == [
            "You are unsubscribed from Acme Deals. No more messages. Reply START to resubscribe."
        ]
        assert [s.address for s in sms_app.suppressions("sms")] == [phone]

        skipped = sms_app.send_sms(phone, "Last chance: 20% off", key="test:after-stop")
        assert (skipped.status, skipped.skipped) == ("skipped", "suppressed")
        assert _delivery_status(sms_app, lead, "test:after-stop") == "skipped"

        rig.type_inbound(phone, "STOP")  # a second STOP gets no second confirmation
        rig.type_inbound(phone, "help")
        wait_for(lambda: len(rig.received_by(phone)) == 2, "the HELP answer")
        time.sleep(1.0)  # anything the second STOP might have caused has arrived by now
        texts = [r.data for r in rig.received_by(phone)]
        assert len(texts) == 2
        assert "Acme Deals" in texts[1] and "help@acme.test" in texts[1]
        assert "Reply STOP to opt out" in texts[1]

        rig.type_inbound(phone, "START")
        wait_for(lambda: len(rig.received_by(phone)) == 3, "the opt-in confirmation")
        assert rig.received_by(phone)[2].data.startswith("You are resubscribed to Acme Deals.")
        assert sms_app.suppressions("sms") == []
        again = sms_app.send_sms(phone, "Welcome back", key="test:after-start")
        assert again.status == "sent"
        wait_for(lambda: len(rig.received_by(phone)) == 4, "the text after START")

    consent = sms_app.consent(lead)
    assert consent["current"]["sms"] == "granted"
    revoked = [h for h in consent["history"] if h["status"] == "revoked"]
    assert len(revoked) == 1
    assert revoked[0]["proof"]["keyword"] == "STOP"
    assert revoked[0]["proof"]["inbound_id"]  # Kannel's message id (%I)
    assert _events(sms_app, lead, "SMS Opted Out") == 1
    assert _events(sms_app, lead, "SMS Opted In") == 1


def test_a_reply_is_filed_on_the_lead_and_its_last_text(rig: KannelRig, sms_app: Leadflow) -> None:
    lead, phone = _lead(sms_app)
    stranger = f"+1202555{next(_numbers):04d}"
    with rig.explain():
        sms_app.send_sms(phone, "Want a demo this week?", key="test:question")
        wait_for(
            lambda: _delivery_status(sms_app, lead, "test:question") == "delivered",
            "the delivery report",
        )
        rig.type_inbound(phone, "Yes please, Tuesday")
        rig.type_inbound(stranger, "who is this")
        wait_for(lambda: _events(sms_app, lead, "SMS Replied") == 1, "the reply on the lead")

    row = next(d for d in sms_app.deliveries(lead) if d.key == "test:question")
    assert row.replied_at is not None
    event = next(e for e in sms_app.lead_events(lead) if e.name == "SMS Replied")
    assert event.properties["text"] == "Yes please, Tuesday"
    assert event.properties["delivery_id"] == row.id
    time.sleep(0.5)
    assert rig.received_by(stranger) == []  # a reply gets no automatic answer


def test_escape_pairs_stay_whole_and_refusals_are_permanent(
    rig: KannelRig, sms_app: Leadflow
) -> None:
    _lead_id, phone = _lead(sms_app)
    with rig.explain():
        text = "a" * 152 + "€" + "b" * 152  # 306 septets, yet 3 parts: € cannot sit at 153
        sent = sms_app.send_sms(phone, text, key="test:escape")
        assert (sent.status, sent.parts) == ("sent", 3)
        parts = wait_for(
            lambda: len(rig.received_by(phone)) == 3 and rig.received_by(phone), "three parts"
        )
        assert [p.data[:9] for p in parts] == ["a" * 9, "%E2%82%AC", "b"]

    with httpx.Client(timeout=5) as client:
        wrong = KannelSmsSender(rig.sendsms_url, USERNAME, "wrong", SHORT_CODE, None, client)
        with pytest.raises(PermanentDeliveryError, match="HTTP 403"):
            wrong.send(SmsMessage("test:refused", phone, "Hi"))
        down = KannelSmsSender(
            f"http://127.0.0.1:{free_port()}", USERNAME, PASSWORD, None, None, client
        )
        with pytest.raises(TransientDeliveryError, match="cannot reach"):
            down.send(SmsMessage("test:down", phone, "Hi"))
