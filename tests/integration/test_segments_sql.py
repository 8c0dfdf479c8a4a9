"""The SQL interpreter, leaf by leaf, against the in-memory one on both backends: every
operator with every kind of value over a population holding every kind of trait value
(absent, null, strings that look like numbers or dates, numbers, booleans, lists, objects)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from leadflow import Leadflow
from leadflow.adapters.db.segments import SqlSegmentRepository
from leadflow.adapters.db.tables import accounts, consents, events, leads, sources
from leadflow.domain.segments import (
    TRAIT_OPS,
    Condition,
    Did,
    EventFact,
    LeadFacts,
    Node,
    matches,
    parse_tree,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ABSENT = object()
VALUES: list[Any] = [
    ABSENT, None, "SaaS", "saas", "Sa", "", "5", 5, 5.0, 5.5, -1, 0, True, False, [1, "SaaS"],
    {"a": 1}, "2024-05-01", "2024-05-01T10:00:00Z", "2023-12-31", "abc", "Säß ünï",
]  # fmt: skip
COMPARED: list[Any] = [
    "SaaS", "saas", "Sa", "5", 5, 5.5, -1, 0, True, False, "2024-05-01", "2024-05-01T09:00:00Z",
    "ü",
]  # fmt: skip


def _population(app: Leadflow) -> dict[int, LeadFacts]:
    """One lead per trait value (the account gets the value of the next lead over), with
    events at the edges of the windows and consent histories."""
    facts: dict[int, LeadFacts] = {}
    with app.transaction() as conn:
        source = conn.execute(
            insert(sources).values(name="s", write_key="k", created_at=NOW).returning(sources.c.id)
        ).scalar_one()
        for n, value in enumerate(VALUES):
            traits = {} if value is ABSENT else {"k": value}
            other = VALUES[(n + 1) % len(VALUES)]
            account = None if n % 4 == 3 else ({} if other is ABSENT else {"k": other})
            account_id = None
            if account is not None:
                account_id = conn.execute(
                    insert(accounts)
                    .values(group_id=f"g{n}", traits=account, created_at=NOW, updated_at=NOW)
                    .returning(accounts.c.id)
                ).scalar_one()
            grade = [None, "A", "B"][n % 3]
            lead_id = conn.execute(
                insert(leads)
                .values(
                    traits=traits,
                    account_id=account_id,
                    stage=["lead", "mql"][n % 2],
                    fit_score=float(n),
                    fit_grade=grade,
                    engagement_score=n / 2,
                    p_convert=None if n % 5 == 0 else n / 40,
                    created_at=NOW,
                    updated_at=NOW,
                )
                .returning(leads.c.id)
            ).scalar_one()
            status = {}
            for channel, value_ in [("email", "granted"), ("email", "revoked"), ("sms", "pending")][
                : n % 4
            ]:
                conn.execute(
                    insert(consents).values(
                        lead_id=lead_id, channel=channel, status=value_, source="t", at=NOW
                    )
                )
                status[channel] = value_
            happened = []
            for i in range(n % 4):  # 0-3 views, at 0, 24, 48, 72 hours ago, one in the future
                at = NOW - timedelta(hours=24 * i) if i < 3 else NOW + timedelta(hours=1)
                props = {"plan": value} if value is not ABSENT else {}
                conn.execute(
                    insert(events).values(
                        source_id=source,
                        message_id=f"{lead_id}-{i}",
                        lead_id=lead_id,
                        type="track",
                        name="Pricing Viewed",
                        timestamp=at,
                        received_at=at,
                        properties=props,
                        raw={},
                    )
                )
                happened.append(EventFact("Pricing Viewed", at, props))
            facts[lead_id] = LeadFacts(
                lead_id, traits, account, float(n), n / 2, None if n % 5 == 0 else n / 40,
                grade, ["lead", "mql"][n % 2], status, happened,
            )  # fmt: skip
    return facts


def _leaves() -> list[Node]:
    found: list[Node] = []
    for kind in ("trait", "account"):
        for op in TRAIT_OPS:
            if op in ("exists", "missing"):
                found.append(Condition(kind, "k", op))
            elif op in ("in", "not_in"):
                found.append(Condition(kind, "k", op, ("SaaS", 5, True)))
                found.append(Condition(kind, "k", op, (5.5, "2024-05-01")))
            elif op in ("contains", "starts_with"):
                found += [Condition(kind, "k", op, v) for v in ("Sa", "aa", "5", "ü", "2024")]
            elif op in ("gt", "gte", "lt", "lte"):
                found += [Condition(kind, "k", op, v) for v in (5, 0, -1, 5.5, "2024-05-01")]
            else:
                found += [Condition(kind, "k", op, v) for v in COMPARED]
    for score in ("fit", "engagement", "p_convert"):
        for op in ("eq", "ne", "gt", "gte", "lt", "lte"):
            found += [Condition("score", score, op, v) for v in (0, 5, 5.5, 0.1)]
        found += [Condition("score", score, "exists"), Condition("score", score, "missing")]
    found += [Condition("grade", "grade", op, "A") for op in ("eq", "ne")]
    found += [Condition("grade", "grade", op, ("A", "B")) for op in ("in", "not_in")]
    found += [Condition("grade", "grade", op) for op in ("exists", "missing")]
    found += [Condition("stage", "stage", op, "mql") for op in ("eq", "ne")]
    for channel in ("email", "sms"):
        for status in ("granted", "revoked", "pending", "none"):
            found += [Condition("consent", channel, op, status) for op in ("eq", "ne")]
    for count in (1, 2, 3):
        for days in (None, 1, 2, 3):
            found.append(Did("Pricing Viewed", count, days))
            found.append(Did("Pricing Viewed", count, days, (("plan", "SaaS"),)))
            found.append(Did("Pricing Viewed", count, days, (("plan", 5),)))
    return found


def test_every_leaf_selects_in_sql_what_it_selects_in_memory(leadflow: Leadflow) -> None:
    facts = _population(leadflow)
    problems = []
    with leadflow.engine.connect() as conn:
        repo = SqlSegmentRepository(conn)
        for leaf in _leaves():
            expected = {lead for lead, known in facts.items() if matches(leaf, known, NOW)}
            found = set(repo.sample(leaf, NOW, 1000))
            if found != expected:
                problems.append((leaf, sorted(found ^ expected)))
    assert problems == []


def test_typed_comparisons_select_what_the_docs_say(leadflow: Leadflow) -> None:
    facts = _population(leadflow)
    by_value = {lead: known.traits.get("k", ABSENT) for lead, known in facts.items()}

    def chosen(data: dict[str, Any]) -> list[Any]:
        with leadflow.engine.connect() as conn:
            ids = SqlSegmentRepository(conn).sample(parse_tree(data), NOW, 1000)
        return [by_value[lead] for lead in ids]

    assert chosen({"field": "trait.k", "op": "eq", "value": 5}) == [5, 5.0]
    assert chosen({"field": "trait.k", "op": "eq", "value": "5"}) == ["5"]
    assert chosen({"field": "trait.k", "op": "eq", "value": True}) == [True]
    assert chosen({"field": "trait.k", "op": "gt", "value": 4}) == [5, 5.0, 5.5]
    assert chosen({"field": "trait.k", "op": "gte", "value": "2024-01-01"}) == [
        "2024-05-01",
        "2024-05-01T10:00:00Z",
    ]
    assert chosen({"field": "trait.k", "op": "contains", "value": "aa"}) == ["SaaS", "saas"]
    assert chosen({"field": "trait.k", "op": "starts_with", "value": "Sä"}) == ["Säß ünï"]
    missing = chosen({"field": "trait.k", "op": "missing"})
    assert missing == [ABSENT, None]
    assert len(chosen({"field": "trait.k", "op": "ne", "value": "SaaS"})) == len(VALUES) - 1


def test_the_migration_matches_the_declared_segment_tables(leadflow: Leadflow) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from leadflow.adapters.db.tables import Base

    with leadflow.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    ours = [d for d in diff if "segment" in repr(d) or "ix_events_name_timestamp_lead" in repr(d)]
    assert ours == []


def test_trait_names_with_spaces_dashes_and_dollars(leadflow: Leadflow) -> None:
    traits = {"Job Title": "VP Sales", "plan-type": "pro", "$ref": 7}
    with leadflow.transaction() as conn:
        lead = conn.execute(
            insert(leads)
            .values(
                traits=traits,
                stage="lead",
                fit_score=0,
                engagement_score=0,
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(leads.c.id)
        ).scalar_one()
    with leadflow.engine.connect() as conn:
        repo = SqlSegmentRepository(conn)
        for data in (
            {"field": "trait.Job Title", "op": "starts_with", "value": "VP"},
            {"field": "trait.plan-type", "op": "eq", "value": "pro"},
            {"field": "trait.$ref", "op": "gte", "value": 7},
        ):
            assert repo.sample(parse_tree(data), NOW, 10) == [lead], data
