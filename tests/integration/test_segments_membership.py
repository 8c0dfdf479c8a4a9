"""Segment membership on a real store (SQLite and PostgreSQL): kept current as leads change
(ingestion, stage moves), computed in bulk when a segment is saved or refreshed, each entry
and exit written to the outbox in the same transaction; definitions saved, listed, deleted
and synced from leadflow.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from leadflow import ConfigError, Leadflow, NotFound, Settings, SourceRecord, ValidationError
from leadflow.adapters.db.tables import leads, outbox, segment_members
from leadflow.jobs.worker import run_once
from tests.integration.scoring_support import (
    T0,
    Clock,
    identify,
    ingest,
    lead_id,
    message,
    track,
)

HOT = {
    "description": "SaaS leads looking at pricing",
    "all": [
        {"field": "trait.industry", "op": "in", "value": ["SaaS", "Fintech"]},
        {"event": "Pricing Viewed", "min_count": 2, "within_days": 14},
    ],
}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def app(leadflow: Leadflow, settings: Settings, clock: Clock) -> Iterator[Leadflow]:
    """leadflow on the emptied store, with the default model and a clock moved by hand."""
    opened = Leadflow(settings, clock=clock)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def source(app: Leadflow) -> SourceRecord:
    return app.create_source("website")


def segment_rows(app: Leadflow) -> list[tuple[str, str, int]]:
    """(topic, segment, lead id) of every segment outbox row, in order."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.topic, outbox.c.payload, outbox.c.lead_id)
            .where(outbox.c.topic.like("segment.%"))
            .order_by(outbox.c.id)
        )
        found = []
        for topic, payload, lead in rows:
            assert payload == {"segment": payload["segment"], "lead_id": lead}
            found.append((topic, payload["segment"], lead))
        return found


def member_ids(app: Leadflow, name: str) -> list[int]:
    return [lead for lead, _at in app.segment_members(name)]


def test_ingestion_enters_and_leaves_a_segment_with_outbox_rows(
    app: Leadflow, source: SourceRecord
) -> None:
    app.put_segment("saas", {"field": "trait.industry", "op": "eq", "value": "SaaS"})
    ingest(app, source, identify("u1", industry="SaaS"), identify("u2", industry="Retail"))
    u1, u2 = lead_id(app, "u1"), lead_id(app, "u2")
    assert member_ids(app, "saas") == [u1]
    assert segment_rows(app) == [("segment.entered", "saas", u1)]

    ingest(app, source, identify("u1", industry="Retail"), identify("u2", industry="SaaS"))
    assert member_ids(app, "saas") == [u2]
    assert (app.lead_segments(u1), app.lead_segments(u2)) == ([], ["saas"])
    assert segment_rows(app)[1:] == [("segment.left", "saas", u1), ("segment.entered", "saas", u2)]


def test_a_behaviour_segment_is_entered_on_the_event_that_completes_it(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    app.put_segment("hot", HOT)
    ingest(app, source, identify("u1", industry="SaaS"), track("u1", "Pricing Viewed", T0))
    assert member_ids(app, "hot") == []
    clock.advance(days=1)
    ingest(app, source, track("u1", "Pricing Viewed", clock.at))
    assert member_ids(app, "hot") == [lead_id(app, "u1")]
    assert app.segment("hot").description == HOT["description"]


def test_the_window_is_counted_from_now_when_the_segment_is_refreshed(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ingest(
        app, source, identify("u1", industry="Fintech"),
        track("u1", "Pricing Viewed", T0), track("u1", "Pricing Viewed", T0),
    )  # fmt: skip
    [report] = [app.put_segment("hot", HOT)]
    u1 = lead_id(app, "u1")
    assert (report.members, report.entered, report.left) == (1, [u1], [])
    assert app.refresh_segments("hot")[0].to_json() == {
        "segment": "hot", "members": 1, "entered": 0, "left": 0,
    }  # fmt: skip
    clock.advance(days=15)
    [later] = app.refresh_segments()
    assert (later.members, later.left) == (0, [u1])
    assert segment_rows(app) == [("segment.entered", "hot", u1), ("segment.left", "hot", u1)]


def test_a_stage_move_updates_membership(app: Leadflow, source: SourceRecord) -> None:
    ingest(app, source, identify("u1", industry="SaaS"))
    u1 = lead_id(app, "u1")
    app.put_segment("open", {"field": "stage", "op": "not_in", "value": ["disqualified"]})
    assert member_ids(app, "open") == [u1]
    app.move_stage(u1, "disqualified", "spam")
    assert member_ids(app, "open") == []
    assert segment_rows(app)[-1] == ("segment.left", "open", u1)


def test_without_segments_ingestion_writes_no_membership(
    app: Leadflow, source: SourceRecord
) -> None:
    ingest(app, source, identify("u1", industry="SaaS"), track("u1", "Pricing Viewed"))
    with app.engine.connect() as conn:
        assert conn.execute(select(segment_members)).all() == []
    assert segment_rows(app) == []


def test_definitions_are_listed_replaced_and_deleted(app: Leadflow, source: SourceRecord) -> None:
    ingest(app, source, identify("u1", industry="SaaS", employees=300))
    app.put_segment("big", {"field": "account.employees", "op": "gte", "value": 100})
    app.put_segment("saas", {"field": "trait.industry", "op": "eq", "value": "SaaS"})
    assert [s.name for s in app.segments()] == ["big", "saas"]
    assert app.segment_count("saas") == 1
    app.put_segment("saas", {"field": "trait.industry", "op": "eq", "value": "Retail"})
    assert app.segment_count("saas") == 0
    assert app.segment("saas").to_json()["definition"] == {
        "field": "trait.industry", "op": "eq", "value": "Retail",
    }  # fmt: skip
    app.delete_segment("saas")
    with pytest.raises(NotFound, match="no segment named 'saas'"):
        app.segment("saas")
    with pytest.raises(NotFound):
        app.delete_segment("saas")


def test_a_bad_definition_is_refused_with_the_path_of_the_bad_node(app: Leadflow) -> None:
    bad: dict[str, Any] = {"all": [{"field": "trait.industry", "op": "equals", "value": "x"}]}
    with pytest.raises(
        ValidationError, match=r"segments\.hot\.all\[0\]\.op: unknown operator 'equals'"
    ):
        app.put_segment("hot", bad)
    assert app.segments() == []


def test_preview_counts_an_unsaved_definition(app: Leadflow, source: SourceRecord) -> None:
    ingest(app, source, identify("u1", industry="SaaS"), identify("u2", industry="SaaS"))
    found = app.preview_segment({"field": "trait.industry", "op": "eq", "value": "SaaS"}, limit=1)
    assert found == {"count": 2, "sample": [lead_id(app, "u1")]}


def test_segments_in_the_config_file_are_synced_on_open(
    app: Leadflow, settings: Settings, source: SourceRecord
) -> None:
    ingest(app, source, identify("u1", industry="SaaS"))
    settings.config_file.write_text(
        "segments:\n  saas:\n    description: SaaS leads\n"
        "    field: trait.industry\n    op: eq\n    value: SaaS\n"
    )
    with Leadflow(Settings(database_url=settings.database_url, home=settings.home)) as again:
        again.migrate()
        [stored] = again.segments()
        assert (stored.name, stored.origin, stored.description) == ("saas", "config", "SaaS leads")
        assert member_ids(again, "saas") == [lead_id(again, "u1")]
    settings.config_file.write_text("segments: {}\n")
    with Leadflow(Settings(database_url=settings.database_url, home=settings.home)) as again:
        again.migrate()
        assert again.segments() == []


def test_a_bad_segment_in_the_config_file_names_file_line_and_path(settings: Settings) -> None:
    settings.config_file.write_text(
        "segments:\n  hot:\n    all:\n      - field: trait.industry\n        op: equals\n"
        "        value: SaaS\n"
    )
    with pytest.raises(ConfigError) as found:
        Leadflow(Settings(database_url=settings.database_url, home=settings.home))
    assert found.value.message.startswith(f"{settings.config_file}:5: segments.hot.all[0].op:")
    assert "unknown operator 'equals'; known: eq, ne, in" in found.value.message


def test_a_consent_change_updates_membership(app: Leadflow, source: SourceRecord) -> None:
    ingest(app, source, identify("u1", email="u1@example.com"))
    u1 = lead_id(app, "u1")
    app.put_segment("mailable", {"field": "consent.email", "op": "eq", "value": "granted"})
    assert member_ids(app, "mailable") == []
    app.set_consent(u1, "email", "granted", "form")
    assert member_ids(app, "mailable") == [u1]
    app.set_consent(u1, "email", "revoked", "unsubscribe link")
    assert member_ids(app, "mailable") == []
    assert [topic for topic, _s, _l in segment_rows(app)] == ["segment.entered", "segment.left"]


def test_the_workers_review_updates_membership_as_engagement_decays(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ingest(app, source, track("u1", "Webinar Attended", T0))  # 20 points, half-life 30 days
    u1 = lead_id(app, "u1")
    app.put_segment("engaged", {"field": "engagement", "op": "gte", "value": 15})
    assert member_ids(app, "engaged") == [u1]
    clock.advance(days=30)
    with app.transaction() as conn:  # the lead comes due, as the policy would have it
        conn.execute(update(leads).where(leads.c.id == u1).values(next_review_at=clock.at))
    run_once(app)
    assert app.lead(u1).engagement_score == pytest.approx(10.0)
    assert member_ids(app, "engaged") == []
    assert segment_rows(app)[-1] == ("segment.left", "engaged", u1)


def test_a_lead_merged_into_another_leaves_its_segments(
    app: Leadflow, source: SourceRecord
) -> None:
    visits = [
        {"type": "track", "anonymousId": device, "event": "Blog Read", "messageId": device}
        for device in ("phone", "laptop")
    ]
    app.put_segment("everyone", {"all": []})
    ingest(app, source, *visits)
    assert len(member_ids(app, "everyone")) == 2
    for device in ("phone", "laptop"):
        ingest(app, source, message("identify", "u-1", T0, anonymousId=device))
    [survivor] = app.leads().items
    assert member_ids(app, "everyone") == [survivor.id]
    assert [topic for topic, _s, _l in segment_rows(app)][-1] == "segment.left"
