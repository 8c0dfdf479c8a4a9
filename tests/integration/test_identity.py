"""Identity resolution through the real store: batching never changes who is who."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from leadflow import Leadflow, Settings, SourceRecord, open_leadflow
from leadflow.adapters.db.tables import Base, Event, Identity, cast_table

USERS = ["u1", "u2", "u3"]
ANONS = ["a1", "a2", "a3"]
EMAILS = ["x@a.io", " X@A.io ", "y@a.io", "z@a.io"]
PHONES = ["+16502530000", "(650) 253-0001"]

Partition = frozenset[frozenset[str]]


def _ids() -> st.SearchStrategy[tuple[str | None, str | None]]:
    return st.tuples(st.none() | st.sampled_from(USERS), st.none() | st.sampled_from(ANONS)).filter(
        lambda ids: ids != (None, None)
    )


def _identify(ids: tuple[str | None, str | None], email: Any, phone: Any) -> dict[str, Any]:
    traits = {k: v for k, v in (("email", email), ("phone", phone)) if v is not None}
    return {"type": "identify", "userId": ids[0], "anonymousId": ids[1], "traits": traits}


messages = st.one_of(
    st.builds(
        _identify, _ids(), st.none() | st.sampled_from(EMAILS), st.none() | st.sampled_from(PHONES)
    ),
    st.builds(
        lambda prev, user: {"type": "alias", "previousId": prev, "userId": user},
        st.sampled_from(USERS + ANONS),
        st.sampled_from(USERS),
    ),
    st.builds(
        lambda ids: {"type": "track", "event": "Visit", "userId": ids[0], "anonymousId": ids[1]},
        _ids(),
    ),
)


def _wipe(app: Leadflow) -> SourceRecord:
    with app.transaction() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    app._write_keys.clear()
    return app.create_source("prop")


def _groups(app: Leadflow, model: type[Base], column: str) -> Partition:
    table = cast_table(model)
    with app.engine.connect() as conn:
        rows = conn.execute(select(table.c[column], table.c.lead_id)).all()
    by_lead: dict[int, set[str]] = {}
    for value, lead_id in rows:
        by_lead.setdefault(lead_id, set()).add(value)
    return frozenset(frozenset(values) for values in by_lead.values())


def key_partition(app: Leadflow) -> Partition:
    return _groups(app, Identity, "key")


def event_partition(app: Leadflow) -> Partition:
    return _groups(app, Event, "message_id")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Leadflow, Leadflow]]:
    base: Path = tmp_path_factory.mktemp("identity-property")
    one = open_leadflow(Settings(database_url=f"sqlite:///{base / 'one.db'}", home=base))
    many = open_leadflow(Settings(database_url=f"sqlite:///{base / 'many.db'}", home=base))
    yield one, many
    one.close()
    many.close()


def _kinds(group: frozenset[str], kind: str) -> set[str]:
    return {key for key in group if key.startswith(f"{kind}:")}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(messages, min_size=1, max_size=12))
def test_one_message_per_batch_and_one_batch_agree(
    stores: tuple[Leadflow, Leadflow], batch: list[dict[str, Any]]
) -> None:
    """Batching never changes who is who, and merges never join disagreeing leads.

    Derived from domain/identity.py: two leads never share a key, so two leads' email sets
    "agree" (strong_conflict finds nothing) only when at least one of them is empty. Hence a
    merge never joins two leads that both hold an email (or both a user id). A lead may still
    end up with two emails, but only by attaching a new email to a lead found through a strong
    key (a known user id or email): a person changing their address, never a merge.
    """
    one_batch, per_message = stores
    for n, message in enumerate(batch):
        message["messageId"] = f"m{n}"
    source = _wipe(one_batch)
    result = one_batch.ingest(source, batch)
    assert result.errors == []
    source = _wipe(per_message)
    before = key_partition(per_message)
    for message in batch:
        per_message.ingest(source, [message])
        after = key_partition(per_message)
        for group in after:
            joined = [old for old in before if old <= group]
            # a merge never joins two leads that both have an email, or both a user id
            assert sum(bool(_kinds(old, "email")) for old in joined) <= 1, (before, after)
            assert sum(bool(_kinds(old, "user_id")) for old in joined) <= 1, (before, after)
            assert len(_kinds(group, "user_id")) <= 1
        # keys never move from one lead to another except by a merge
        for old in before:
            assert sum(1 for group in after if old <= group) == 1
        before = after
    assert key_partition(one_batch) == key_partition(per_message)
    assert event_partition(one_batch) == event_partition(per_message)
    assert len(one_batch.leads(limit=1000).items) == len(per_message.leads(limit=1000).items)


# the same guarantees on both backends, for examples worth keeping -------------------------
def test_batching_does_not_change_the_outcome_on_each_backend(leadflow: Leadflow) -> None:
    batch = [
        {"type": "track", "event": "Visit", "anonymousId": "a1", "messageId": "1"},
        {"type": "identify", "anonymousId": "a2", "traits": {"email": "X@a.io"}, "messageId": "2"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "3"},
        {"type": "alias", "previousId": "a2", "userId": "u1", "messageId": "4"},
        {"type": "identify", "userId": "u2", "traits": {"email": "y@a.io"}, "messageId": "5"},
        {"type": "alias", "previousId": "u2", "userId": "u1", "messageId": "6"},
    ]
    source = leadflow.create_source("batched")
    leadflow.ingest(source, batch)
    together = (key_partition(leadflow), event_partition(leadflow))
    conflicts_together = len(leadflow.conflicts())
    source = _wipe(leadflow)
    for message in batch:
        leadflow.ingest(source, [message])
    assert (key_partition(leadflow), event_partition(leadflow)) == together
    assert together[0] == frozenset(
        {
            frozenset({"anonymous_id:a1", "user_id:u1", "anonymous_id:a2", "email:x@a.io"}),
            frozenset({"user_id:u2", "email:y@a.io"}),
        }
    )
    assert len(leadflow.conflicts()) == conflicts_together == 1


def test_second_user_id_for_a_known_email_is_reported_not_attached(leadflow: Leadflow) -> None:
    source = leadflow.create_source("web")
    leadflow.ingest(source, [{"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}}])
    result = leadflow.ingest(
        source,
        [{"type": "identify", "userId": "u2", "traits": {"email": "a@x.io"}, "messageId": "m2"}],
    )
    assert result.conflicts == 1
    [listed] = leadflow.leads().items
    lead = leadflow.lead(listed.id)
    assert lead.identities == {"userId": ["u1"], "email": ["a@x.io"]}
    assert lead.event_count == 2
    [conflict] = leadflow.conflicts()
    assert (conflict.lead_id, conflict.other_lead_id) == (lead.id, lead.id)
    assert (conflict.key, conflict.message_id) == ("user_id:u2", "m2")
    assert conflict.reason == "second user id u2"


def test_alias_from_an_anonymous_id_attaches_the_user_id(leadflow: Leadflow) -> None:
    source = leadflow.create_source("web")
    leadflow.ingest(source, [{"type": "identify", "anonymousId": "old", "traits": {"k": 1}}])
    leadflow.ingest(source, [{"type": "alias", "previousId": "old", "userId": "new"}])
    leadflow.ingest(source, [{"type": "track", "userId": "new", "event": "Back"}])
    [listed] = leadflow.leads().items
    lead = leadflow.lead(listed.id)
    assert lead.identities == {"anonymousId": ["old"], "userId": ["new"]}
    assert lead.event_count == 3
    assert leadflow.merges() == []
