"""The two interpreters of a segment agree: random trees over random leads (traits, account
traits, scores, stage, consent, events) give the same set of leads in SQL, on SQLite and
PostgreSQL, as in memory, both over the generated data and over the facts the store loads
for the live membership tracker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from leadflow import Leadflow
from leadflow.adapters.db.segments import SqlSegmentRepository
from leadflow.adapters.db.tables import accounts, consents, events, leads, sources
from leadflow.domain.lifecycle import STAGES
from leadflow.domain.segments import (
    CONSENT_STATUSES,
    NUMBER_OPS,
    TRAIT_OPS,
    All,
    AnyOf,
    Condition,
    Did,
    EventFact,
    LeadFacts,
    Node,
    Not,
    matches,
    parse_tree,
    to_data,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEYS = ["industry", "plan"]
NAMES = ["Pricing Viewed", "Demo Requested"]
TEXTS = ["SaaS", "saas", "Sa", "", "5", "2024-05-01", "2024-05-01T10:00:00Z"]
GRADES = ["A", "B", "C", "D"]

numbers = st.sampled_from([0, 5, -3, 200, 0.5, 2.25, -1.5, 99.999, 200.0])
scalars = st.one_of(st.sampled_from(TEXTS), st.sampled_from(TEXTS), numbers, st.booleans())
json_values = st.one_of(scalars, st.none(), st.just([1, "SaaS"]), st.just({"a": 1}))
trait_maps = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
dates = st.sampled_from(["2024-05-01", "2024-05-01T10:00:00Z", "2023-01-01", "2030-12-31"])


@st.composite
def trait_conditions(draw: st.DrawFn) -> Condition:
    kind = draw(st.sampled_from(["trait", "account"]))
    key = draw(st.sampled_from(KEYS))
    op = draw(st.sampled_from(TRAIT_OPS))
    value: Any = None
    if op in ("eq", "ne"):
        value = draw(scalars)
    elif op in ("in", "not_in"):
        value = tuple(draw(st.lists(scalars, min_size=1, max_size=3)))
    elif op in ("contains", "starts_with"):
        value = draw(st.sampled_from(["Sa", "S", "aa", "2024", "-"]))
    elif op in ("gt", "gte", "lt", "lte"):
        value = draw(st.one_of(numbers, dates))
    return Condition(kind, key, op, value)


@st.composite
def other_conditions(draw: st.DrawFn) -> Condition:
    kind = draw(st.sampled_from(["score", "grade", "stage", "consent"]))
    if kind == "score":
        op = draw(st.sampled_from([*NUMBER_OPS, "exists", "missing"]))
        value = None if op in ("exists", "missing") else draw(st.sampled_from([0, 0.5, 20, 40.5]))
        return Condition(
            "score", draw(st.sampled_from(["fit", "engagement", "p_convert"])), op, value
        )
    choices = {"grade": GRADES, "stage": list(STAGES), "consent": list(CONSENT_STATUSES)}[kind]
    op = draw(st.sampled_from(["eq", "ne", "in", "not_in"]))
    if op in ("in", "not_in"):
        chosen: Any = tuple(draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3)))
    else:
        chosen = draw(st.sampled_from(choices))
    key = draw(st.sampled_from(["email", "sms"])) if kind == "consent" else kind
    return Condition(kind, key, op, chosen)


behaviour = st.builds(
    Did,
    event=st.sampled_from(NAMES),
    min_count=st.integers(1, 3),
    within_days=st.one_of(st.none(), st.integers(1, 30)),
    where=st.one_of(st.just(()), st.tuples(st.tuples(st.just("plan"), scalars))),
)
leaves = st.one_of(trait_conditions(), other_conditions(), behaviour)
trees: st.SearchStrategy[Node] = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(All, st.lists(inner, max_size=3).map(tuple)),
        st.builds(AnyOf, st.lists(inner, max_size=3).map(tuple)),
        st.builds(Not, inner),
    ),
    max_leaves=6,
)

event_rows = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.integers(-4, 64).map(lambda n: n * 12),  # hours before NOW; negative: after it
        st.one_of(st.just({}), st.fixed_dictionaries({"plan": json_values})),
    ),
    max_size=6,
)
lead_rows = st.fixed_dictionaries(
    {
        "traits": trait_maps,
        "account": st.one_of(st.none(), trait_maps),
        "fit": st.sampled_from([0.0, 0.5, 20.0, 40.5, 77.25]),
        "engagement": st.sampled_from([0.0, 20.0, 12.5]),
        "p_convert": st.one_of(st.none(), st.sampled_from([0.0, 0.5, 0.9])),
        "grade": st.one_of(st.none(), st.sampled_from(GRADES)),
        "stage": st.sampled_from(STAGES),
        "consent": st.lists(
            st.tuples(
                st.sampled_from(["email", "sms"]),
                st.sampled_from(["granted", "revoked", "pending"]),
            ),
            max_size=3,
        ),
        "events": event_rows,
    }
)


def _load(app: Leadflow, people: list[dict[str, Any]]) -> dict[int, LeadFacts]:
    """Write the leads into the store; return the facts the in-memory interpreter sees."""
    facts: dict[int, LeadFacts] = {}
    with app.transaction() as conn:
        for table in (events, consents, leads, accounts, sources):
            conn.execute(delete(table))
        source = conn.execute(
            insert(sources).values(name="s", write_key="k", created_at=NOW).returning(sources.c.id)
        ).scalar_one()
        for n, person in enumerate(people):
            account_id = None
            if person["account"] is not None:
                account_id = conn.execute(
                    insert(accounts)
                    .values(
                        group_id=f"g{n}", traits=person["account"], created_at=NOW, updated_at=NOW
                    )
                    .returning(accounts.c.id)
                ).scalar_one()
            lead_id = conn.execute(
                insert(leads)
                .values(
                    traits=person["traits"],
                    account_id=account_id,
                    stage=person["stage"],
                    fit_score=person["fit"],
                    fit_grade=person["grade"],
                    engagement_score=person["engagement"],
                    p_convert=person["p_convert"],
                    created_at=NOW,
                    updated_at=NOW,
                )
                .returning(leads.c.id)
            ).scalar_one()
            status: dict[str, str] = {}
            for channel, value in person["consent"]:
                conn.execute(
                    insert(consents).values(
                        lead_id=lead_id, channel=channel, status=value, source="test", at=NOW
                    )
                )
                status[channel] = value
            happened = []
            for i, (name, hours, props) in enumerate(person["events"]):
                at = NOW - timedelta(hours=hours)
                conn.execute(
                    insert(events).values(
                        source_id=source,
                        message_id=f"{lead_id}-{i}",
                        lead_id=lead_id,
                        type="track",
                        name=name,
                        timestamp=at,
                        received_at=at,
                        properties=props,
                        raw={},
                    )
                )
                happened.append(EventFact(name, at, props))
            facts[lead_id] = LeadFacts(
                lead_id, person["traits"], person["account"], person["fit"], person["engagement"],
                person["p_convert"], person["grade"], person["stage"], status, happened,
            )  # fmt: skip
    return facts


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    chosen=st.lists(trees, min_size=1, max_size=8),
    people=st.lists(lead_rows, min_size=3, max_size=12),
)
def test_sql_and_memory_select_the_same_leads(
    leadflow: Leadflow, chosen: list[Node], people: list[dict[str, Any]]
) -> None:
    facts = _load(leadflow, people)
    with leadflow.engine.connect() as conn:
        repo = SqlSegmentRepository(conn)
        loaded = repo.facts(sorted(facts), chosen, NOW)
        for tree in chosen:
            assert parse_tree(to_data(tree)) == tree  # the plain-data form reads back the same
            expected = {lead for lead, known in facts.items() if matches(tree, known, NOW)}
            assert set(repo.sample(tree, NOW, 1000)) == expected, to_data(tree)
            assert repo.count(tree, NOW) == len(expected)
            assert {lead for lead, known in loaded.items() if matches(tree, known, NOW)} == expected
