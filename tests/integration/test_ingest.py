"""Ingestion through the Leadflow facade on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from leadflow import LeadFilter, Leadflow, SourceRecord
from leadflow.adapters.db.tables import Account, Event, Identity, Lead, cast_table

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def source(leadflow: Leadflow) -> SourceRecord:
    return leadflow.create_source("website")


def live_leads(app: Leadflow) -> list[int]:
    return sorted(lead.id for lead in app.leads(limit=1000).items)


def count(app: Leadflow, model: type, **where: object) -> int:
    table = cast_table(model)
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with app.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def page(anonymous_id: str, path: str, at: datetime, message_id: str) -> dict[str, object]:
    return {
        "type": "page",
        "anonymousId": anonymous_id,
        "name": path,
        "properties": {"path": path},
        "context": {"page": {"path": path, "url": f"https://ex.io{path}", "referrer": "g.com"}},
        "timestamp": at.isoformat(),
        "messageId": message_id,
    }


def test_anonymous_visits_then_identify_make_one_lead_keeping_earlier_events(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(source, [page("anon-1", "/", T0, "p1")], received_at=T0)
    leadflow.ingest(
        source, [page("anon-1", "/pricing", T0 + timedelta(minutes=1), "p2")], received_at=T0
    )
    [visitor] = live_leads(leadflow)
    result = leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "user-1",
                "anonymousId": "anon-1",
                "traits": {"email": "Ann@Example.com", "name": "Ann"},
                "timestamp": (T0 + timedelta(minutes=2)).isoformat(),
                "messageId": "i1",
            }
        ],
        received_at=T0 + timedelta(minutes=2),
    )
    assert (result.accepted, result.leads_created, result.merges) == (1, 0, 0)
    assert live_leads(leadflow) == [visitor]
    lead = leadflow.lead(visitor)
    assert lead.event_count == 3
    assert lead.email == "ann@example.com"
    assert lead.traits == {"name": "Ann"}
    assert lead.identities == {
        "anonymousId": ["anon-1"],
        "userId": ["user-1"],
        "email": ["ann@example.com"],
    }
    assert lead.first_seen_at == T0
    assert lead.last_seen_at == T0 + timedelta(minutes=2)
    assert lead.first_touch == {"url": "https://ex.io/", "path": "/", "referrer": "g.com"}
    events = leadflow.lead_events(visitor)
    assert [(e.message_id, e.type, e.name) for e in events] == [
        ("i1", "identify", None),
        ("p2", "page", "/pricing"),
        ("p1", "page", "/"),
    ]


def test_visitor_and_identify_in_one_batch_make_one_lead(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    result = leadflow.ingest(
        source,
        [
            page("anon-2", "/", T0, "p1"),
            {"type": "track", "anonymousId": "anon-2", "event": "Demo Requested"},
            {"type": "identify", "anonymousId": "anon-2", "userId": "u2"},
            {"type": "track", "userId": "u2", "event": "Logged In"},
        ],
    )
    assert (result.accepted, result.leads_created) == (4, 1)
    [lead_id] = live_leads(leadflow)
    assert leadflow.lead(lead_id).event_count == 4
    assert count(leadflow, Lead) == 1


def test_email_case_and_whitespace_variants_are_one_lead(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    for n, variant in enumerate(["ann@example.com", "  ANN@Example.com ", "Ann@EXAMPLE.COM\t"]):
        leadflow.ingest(
            source,
            [{"type": "identify", "anonymousId": f"device-{n}", "traits": {"email": variant}}],
        )
    [lead_id] = live_leads(leadflow)
    lead = leadflow.lead(lead_id)
    assert lead.email == "ann@example.com"
    assert lead.identities["email"] == ["ann@example.com"]
    assert sorted(lead.identities["anonymousId"]) == ["device-0", "device-1", "device-2"]
    assert leadflow.leads(LeadFilter(email=" ANN@example.com ")).items[0].id == lead_id


def test_alias_between_leads_with_different_emails_is_a_conflict_not_a_merge(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(
        source,
        [
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@x.io"}},
            {"type": "identify", "userId": "bob", "traits": {"email": "bob@x.io"}},
        ],
    )
    ann, bob = live_leads(leadflow)
    result = leadflow.ingest(
        source, [{"type": "alias", "previousId": "ann", "userId": "bob", "messageId": "al-1"}]
    )
    assert (result.merges, result.conflicts) == (0, 1)
    assert live_leads(leadflow) == [ann, bob]
    assert leadflow.merges() == []
    [conflict] = leadflow.conflicts()
    assert {conflict.lead_id, conflict.other_lead_id} == {ann, bob}
    assert conflict.message_id == "al-1"
    assert "different emails" in conflict.reason
    assert leadflow.conflicts(lead_id=ann) == [conflict]
    # the alias event itself is kept, on the lead named by its userId
    assert leadflow.lead(bob).event_count == 2
    assert leadflow.lead(ann).event_count == 1


def test_every_merge_is_recorded_with_its_cause(leadflow: Leadflow, source: SourceRecord) -> None:
    leadflow.ingest(source, [{"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}}])
    leadflow.ingest(source, [page("anon-9", "/blog", T0, "p9")])
    leadflow.ingest(source, [page("anon-8", "/docs", T0, "p8")])
    known, anon_9, anon_8 = live_leads(leadflow)
    leadflow.ingest(
        source, [{"type": "identify", "userId": "u1", "anonymousId": "anon-9", "messageId": "m1"}]
    )
    leadflow.ingest(
        source, [{"type": "alias", "previousId": "anon-8", "userId": "u1", "messageId": "m2"}]
    )
    assert live_leads(leadflow) == [known]
    merges = [(m.survivor_id, m.merged_id, m.cause, m.message_id) for m in leadflow.merges()]
    assert merges == [
        (known, anon_9, "identify via anonymous_id:anon-9", "m1"),
        (known, anon_8, "alias via anonymous_id:anon-8", "m2"),
    ]
    assert [m.merged_id for m in leadflow.merges(lead_id=anon_8)] == [anon_8]
    assert leadflow.lead(known).event_count == 5
    assert leadflow.lead(known).first_seen_at == T0
    assert count(leadflow, Identity, lead_id=known) == 4


def test_merged_lead_id_resolves_to_the_survivor(leadflow: Leadflow, source: SourceRecord) -> None:
    leadflow.ingest(source, [page("anon-a", "/", T0, "pa")])
    leadflow.ingest(source, [page("anon-b", "/", T0, "pb")])
    leadflow.ingest(source, [{"type": "identify", "userId": "u", "traits": {"plan": "pro"}}])
    anon_a, anon_b, known = live_leads(leadflow)
    leadflow.ingest(source, [{"type": "alias", "previousId": "anon-a", "userId": "u"}])
    leadflow.ingest(source, [{"type": "alias", "previousId": "anon-b", "userId": "u"}])
    for old in (anon_a, anon_b, known):
        lead = leadflow.lead(old)
        assert lead.id == known
        assert lead.traits == {"plan": "pro"}
        assert {e.message_id for e in leadflow.lead_events(old)} >= {"pa", "pb"}
    assert live_leads(leadflow) == [known]


def test_group_creates_an_account_with_traits_linked_to_the_lead(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(
        source,
        [
            {"type": "identify", "userId": "u1", "traits": {"email": "a@acme.io"}},
            {
                "type": "group",
                "userId": "u1",
                "groupId": "acme",
                "traits": {"name": "Acme Inc", "employees": 250},
            },
        ],
    )
    leadflow.ingest(
        source, [{"type": "group", "userId": "u1", "groupId": "acme", "traits": {"plan": "pro"}}]
    )
    [lead_id] = live_leads(leadflow)
    account = leadflow.lead(lead_id).account
    assert account is not None
    assert (account["group_id"], account["name"]) == ("acme", "Acme Inc")
    assert account["traits"] == {"name": "Acme Inc", "employees": 250, "plan": "pro"}
    assert count(leadflow, Account) == 1
    assert [lead.id for lead in leadflow.leads(LeadFilter(account_group_id="acme")).items] == [
        lead_id
    ]


def test_same_batch_twice_is_stored_once(leadflow: Leadflow, source: SourceRecord) -> None:
    batch = [
        {"type": "identify", "userId": "u1", "messageId": "m-1", "traits": {"email": "a@x.io"}},
        {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "m-2"},
        {"type": "track", "userId": "u1", "event": "No Id"},  # fallback id: content hash
    ]
    first = leadflow.ingest(source, batch)
    again = leadflow.ingest(source, batch)
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert count(leadflow, Event) == 3
    assert count(leadflow, Lead) == 1


def test_duplicate_message_ids_inside_one_batch_are_stored_once(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    message = {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "m-1"}
    result = leadflow.ingest(source, [message, dict(message)])
    assert (result.accepted, result.duplicates) == (1, 1)
    assert count(leadflow, Event) == 1


def test_same_message_id_from_another_source_is_stored(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    other = leadflow.create_source("mobile")
    message = {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "m-1"}
    leadflow.ingest(source, [message])
    result = leadflow.ingest(other, [message])
    assert result.accepted == 1
    assert count(leadflow, Event) == 2
    assert count(leadflow, Event, source_id=other.id) == 1
    assert count(leadflow, Lead) == 1


def test_one_bad_item_among_good_ones(leadflow: Leadflow, source: SourceRecord) -> None:
    result = leadflow.ingest(
        source,
        [
            {"type": "track", "userId": "u1", "event": "A", "messageId": "a"},
            {"type": "track", "userId": "u1", "messageId": "b"},
            {"type": "track", "userId": "u1", "event": "C", "messageId": "c"},
        ],
    )
    assert result.accepted == 2
    assert [(e.index, e.field) for e in result.errors] == [(1, "event")]
    [lead_id] = live_leads(leadflow)
    assert sorted(e.message_id for e in leadflow.lead_events(lead_id)) == ["a", "c"]


def test_invalid_items_raise_when_asked(leadflow: Leadflow, source: SourceRecord) -> None:
    from leadflow import BatchErrors

    with pytest.raises(BatchErrors) as caught:
        leadflow.ingest(
            source,
            [{"type": "group", "userId": "u"}, {"type": "page", "userId": "u"}],
            raise_on_error=True,
        )
    assert caught.value.accepted == 1
    assert [(e.index, e.field) for e in caught.value.errors] == [(0, "groupId")]
    assert count(leadflow, Event) == 1


def test_traits_merge_across_identifies(leadflow: Leadflow, source: SourceRecord) -> None:
    leadflow.ingest(
        source,
        [{"type": "identify", "userId": "u1", "traits": {"name": "Ann", "title": "CTO"}}],
    )
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"title": "CEO", "company": "Acme", "email": "ann@acme.io"},
            }
        ],
    )
    [lead_id] = live_leads(leadflow)
    lead = leadflow.lead(lead_id)
    assert lead.traits == {"name": "Ann", "title": "CEO", "company": "Acme"}
    assert lead.email == "ann@acme.io"


def test_traits_merge_is_shallow_and_the_same_on_every_backend(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    # documented (adapters/db/ingest.py _json_merge) as a shallow merge, later value wins
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"address": {"city": "Paris", "zip": "75001"}, "company": "Acme"},
            }
        ],
    )
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"address": {"city": "Lyon"}, "company": None},
            }
        ],
    )
    [lead_id] = live_leads(leadflow)
    assert leadflow.lead(lead_id).traits == {"address": {"city": "Lyon"}, "company": None}


def test_phone_is_normalised_and_never_merges(leadflow: Leadflow, source: SourceRecord) -> None:
    leadflow.ingest(
        source,
        [{"type": "identify", "userId": "u1", "traits": {"phone": "(650) 253-0000"}}],
    )
    leadflow.ingest(
        source,
        [{"type": "identify", "anonymousId": "a9", "traits": {"phone": "+1 650 253 0000"}}],
    )
    first, second = live_leads(leadflow)
    assert leadflow.lead(first).phone == "+16502530000"
    assert leadflow.lead(first).identities["phone"] == ["+16502530000"]
    assert "phone" not in leadflow.lead(second).identities
    assert leadflow.merges() == []


def test_identify_with_a_country_trait_reads_national_numbers_there(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"phone": "020 7946 0958", "country": "GB"},
            }
        ],
    )
    [lead_id] = live_leads(leadflow)
    assert leadflow.lead(lead_id).phone == "+442079460958"


def test_shared_browser_second_person_is_a_new_lead(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "ann",
                "anonymousId": "kiosk",
                "traits": {"email": "a@x.io"},
            }
        ],
    )
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "bob",
                "anonymousId": "kiosk",
                "traits": {"email": "b@x.io"},
            }
        ],
    )
    ann, bob = live_leads(leadflow)
    assert leadflow.lead(ann).identities["anonymousId"] == ["kiosk"]
    assert leadflow.lead(bob).identities == {"userId": ["bob"], "email": ["b@x.io"]}
    assert leadflow.merges() == []


def test_timestamps_are_stored_clock_skew_corrected(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    # the client's clock is 2 hours fast; the event happened 45 s before the batch was sent
    client_sent = T0 + timedelta(hours=2)
    leadflow.ingest(
        source,
        [
            {
                "type": "track",
                "userId": "u1",
                "event": "Clicked",
                "timestamp": (client_sent - timedelta(seconds=45)).isoformat(),
            }
        ],
        defaults={"sentAt": client_sent.isoformat()},
        received_at=T0,
    )
    [lead_id] = live_leads(leadflow)
    [event] = leadflow.lead_events(lead_id)
    assert event.timestamp == T0 - timedelta(seconds=45)
    assert event.received_at == T0


def test_lead_paging_and_filters(leadflow: Leadflow, source: SourceRecord) -> None:
    leadflow.ingest(
        source,
        [
            {"type": "identify", "userId": f"u{n}", "traits": {"email": f"user{n}@corp{n % 2}.io"}}
            for n in range(5)
        ],
    )
    first = leadflow.leads(limit=2, count=True)
    assert first.total == 5
    assert len(first.items) == 2
    second = leadflow.leads(limit=2, after=first.next_after)
    third = leadflow.leads(limit=2, after=second.next_after)
    ids = [lead.id for p in (first, second, third) for lead in p.items]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5
    assert third.next_after is None
    assert len(leadflow.leads(LeadFilter(search="CORP1")).items) == 2
    assert leadflow.leads(LeadFilter(stage="mql")).items == []


def test_concurrent_batches_introducing_the_same_ids_make_one_lead_per_id(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    """8 writers race to create the same new visitors; the facade retries the losers."""
    visitors = [f"visitor-{n}" for n in range(24)]
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(worker: int) -> None:
        rnd = random.Random(worker)
        try:
            start.wait()
            for round_ in range(3):
                chosen = rnd.sample(visitors, 12)
                leadflow.ingest(
                    source,
                    [
                        {
                            "type": "page",
                            "anonymousId": visitor,
                            "name": "/",
                            "messageId": f"w{worker}-r{round_}-{visitor}",
                        }
                        for visitor in chosen
                    ],
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert count(leadflow, Event) == 8 * 3 * 12
    identities = cast_table(Identity)
    with leadflow.engine.connect() as conn:
        rows = conn.execute(select(identities.c.value, identities.c.lead_id)).all()
    owners = {value: lead_id for value, lead_id in rows}
    assert sorted(owners) == sorted(visitors)
    assert len(set(owners.values())) == len(visitors)
    assert count(leadflow, Lead) == len(visitors)  # no orphan leads left by lost races


def test_a_merge_keeps_the_latest_activity_of_both_leads(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    # the anonymous browser was active at T0+10min; the identify that joins it arrives with
    # an earlier timestamp (queued offline on the phone): the lead was still last seen at +10
    leadflow.ingest(
        source,
        [{"type": "identify", "userId": "u1", "timestamp": T0.isoformat()}],
        received_at=T0,
    )
    leadflow.ingest(
        source, [page("anon-z", "/late", T0 + timedelta(minutes=10), "late")], received_at=T0
    )
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "anon-z",
                "timestamp": (T0 + timedelta(minutes=5)).isoformat(),
            }
        ],
        received_at=T0,
    )
    [lead_id] = live_leads(leadflow)
    lead = leadflow.lead(lead_id)
    assert lead.first_seen_at == T0
    assert lead.last_seen_at == max(e.timestamp for e in leadflow.lead_events(lead_id))
    assert lead.last_seen_at == T0 + timedelta(minutes=10)


def test_a_merge_keeps_the_first_touch_of_the_lead_seen_first(
    leadflow: Leadflow, source: SourceRecord
) -> None:
    # day 1: a visitor arrives from a campaign; day 2: they sign up in the mobile app;
    # day 3: they log in on the first browser, which joins the two
    day = timedelta(days=1)
    visit = page("browser-1", "/landing", T0, "visit")
    visit["context"] = {
        "page": {"path": "/landing", "url": "https://ex.io/landing", "referrer": "ads.io"},
        "campaign": {"source": "newsletter", "name": "spring"},
    }
    leadflow.ingest(source, [visit], received_at=T0)
    leadflow.ingest(
        source,
        [{"type": "identify", "userId": "u1", "timestamp": (T0 + day).isoformat()}],
        received_at=T0 + day,
    )
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "browser-1",
                "timestamp": (T0 + 2 * day).isoformat(),
            }
        ],
        received_at=T0 + 2 * day,
    )
    [lead_id] = live_leads(leadflow)
    lead = leadflow.lead(lead_id)
    assert lead.first_seen_at == T0
    assert lead.first_touch == {
        "campaign": {"source": "newsletter", "name": "spring"},
        "url": "https://ex.io/landing",
        "path": "/landing",
        "referrer": "ads.io",
    }
