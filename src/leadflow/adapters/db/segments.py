"""Segments in the store: the SQL interpreter of the filter tree, and the repository of
definitions and members.

The tree becomes one SQLAlchemy Core predicate over ``leads`` (outer-joined to ``accounts``)
with bound parameters only. Every leaf is a ``CASE`` that checks the JSON type before it
compares, so a value of another type or a missing one is false (never NULL, never a cast
error), exactly as ``domain.segments.matches`` decides. Traits are JSONB on PostgreSQL
(``->``, ``jsonb_typeof``) and JSON text on SQLite (``json_extract``, ``json_type``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Select,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from leadflow.adapters.db.engine import insert_ignore
from leadflow.adapters.db.tables import accounts, consents, events, leads, outbox
from leadflow.adapters.db.tables import segment_members as members
from leadflow.adapters.db.tables import segments as definitions
from leadflow.domain.segments import (
    All,
    AnyOf,
    Condition,
    Did,
    EventFact,
    LeadFacts,
    Node,
    Not,
    Scalar,
    behaviours,
    uses,
)
from leadflow.ports import OutboxRow
from leadflow.services.segments import ENTERED, LEFT, StoredSegment

Predicate = ColumnElement[bool]
CHUNK = 5000  # ids per IN list
_ISO_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
_ISO_REGEX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"


class _Json:
    """One key of a JSON column, typed per backend: its kind, its text, its number."""

    def __init__(self, column: Any, key: str, pg: bool) -> None:
        self.pg = pg
        if pg:
            element = type_coerce(column, JSONB)[key]
            self.kind: Any = func.jsonb_typeof(element)
            self.text: Any = element.astext
        else:
            path = literal(f'$."{key}"')
            self.kind = func.json_type(column, path)
            self.text = func.json_extract(column, path)

    def is_string(self) -> Predicate:
        return self.kind == ("string" if self.pg else "text")  # type: ignore[no-any-return]

    def is_number(self) -> Predicate:
        if self.pg:
            return self.kind == "number"  # type: ignore[no-any-return]
        return self.kind.in_(("integer", "real"))  # type: ignore[no-any-return]

    def exists(self) -> Predicate:
        return func.coalesce(self.kind != "null", false())

    def number(self) -> Any:
        return cast(self.text, Float)

    def boolean(self, value: bool) -> Predicate:
        if self.pg:
            return _when(self.kind == "boolean", self.text == ("true" if value else "false"))
        return func.coalesce(self.kind == ("true" if value else "false"), false())

    def equal(self, value: Scalar) -> Predicate:
        if isinstance(value, bool):
            return self.boolean(value)
        if isinstance(value, int | float):
            return _when(self.is_number(), self.number() == float(value))
        return _when(self.is_string(), self.text == value)

    def within(self, values: Sequence[Scalar]) -> Predicate:
        texts = [v for v in values if isinstance(v, str)]
        numbers = [
            float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        found: list[Predicate] = [self.boolean(v) for v in values if isinstance(v, bool)]
        if texts:
            found.append(_when(self.is_string(), self.text.in_(texts)))
        if numbers:
            found.append(_when(self.is_number(), self.number().in_(numbers)))
        return or_(*found) if len(found) > 1 else found[0]

    def ordered(self, op: str, value: Scalar) -> Predicate:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _when(self.is_number(), _compare(op, self.number(), float(value)))
        if self.pg:
            iso = self.text.op("~")(literal(_ISO_REGEX))
            text = self.text.collate("C")
        else:
            iso = self.text.op("GLOB")(literal(_ISO_GLOB))
            text = self.text
        return _when(and_(self.is_string(), iso), _compare(op, text, value))

    def contains(self, value: str) -> Predicate:
        found = func.strpos(self.text, value) if self.pg else func.instr(self.text, value)
        return _when(self.is_string(), found > 0)

    def starts_with(self, value: str) -> Predicate:
        return _when(self.is_string(), func.substr(self.text, 1, len(value)) == value)


def _when(condition: Predicate, then: Predicate) -> Predicate:
    """``then`` where ``condition`` holds, false elsewhere (also where it is NULL)."""
    return case((condition, then), else_=false())


def _compare(op: str, left: Any, right: Any) -> Predicate:
    if op == "gt":
        return left > right  # type: ignore[no-any-return]
    if op == "gte":
        return left >= right  # type: ignore[no-any-return]
    if op == "lt":
        return left < right  # type: ignore[no-any-return]
    if op == "lte":
        return left <= right  # type: ignore[no-any-return]
    if op == "eq":
        return left == right  # type: ignore[no-any-return]
    raise AssertionError(op)


class SqlSegments:
    """Compiles a tree to a predicate over ``leads`` (and ``accounts``) at ``now``."""

    def __init__(self, pg: bool, now: datetime) -> None:
        self.pg = pg
        self.now = now

    def predicate(self, node: Node) -> Predicate:
        if isinstance(node, All):
            parts = [self.predicate(child) for child in node.children]
            return and_(*parts) if parts else true()
        if isinstance(node, AnyOf):
            parts = [self.predicate(child) for child in node.children]
            return or_(*parts) if parts else false()
        if isinstance(node, Not):
            return not_(self.predicate(node.child))
        if isinstance(node, Did):
            return leads.c.id.in_(self.did(node))
        return self.condition(node)

    def did(self, node: Did) -> Select[tuple[int]]:
        query = select(events.c.lead_id).where(
            events.c.name == node.event, events.c.timestamp <= self.now
        )
        if node.within_days is not None:
            query = query.where(events.c.timestamp >= self.now - timedelta(days=node.within_days))
        for key, value in node.where:
            query = query.where(_Json(events.c.properties, key, self.pg).equal(value))
        if node.min_count > 1:
            query = query.group_by(events.c.lead_id).having(func.count() >= node.min_count)
        return query

    def condition(self, node: Condition) -> Predicate:
        if node.kind in ("trait", "account"):
            column = leads.c.traits if node.kind == "trait" else accounts.c.traits
            return _trait(_Json(column, node.key, self.pg), node)
        if node.kind == "consent":
            return _choice(func.coalesce(_consent(node.key), "none"), node)
        column = {
            "fit": leads.c.fit_score,
            "engagement": leads.c.engagement_score,
            "p_convert": leads.c.p_convert,
            "grade": leads.c.fit_grade,
            "stage": leads.c.stage,
        }[node.key]
        if node.op in ("exists", "missing"):
            return column.is_not(None) if node.op == "exists" else column.is_(None)
        if node.kind == "score":
            if node.op == "ne":
                return not_(func.coalesce(column == float(node.value), false()))  # type: ignore[arg-type]
            return func.coalesce(_compare(node.op, column, float(node.value)), false())  # type: ignore[arg-type]
        return _choice(column, node)


def _trait(found: _Json, node: Condition) -> Predicate:
    op, value = node.op, node.value
    if op == "exists":
        return found.exists()
    if op == "missing":
        return not_(found.exists())
    if op in ("eq", "ne"):
        equal = found.equal(value)  # type: ignore[arg-type]
        return equal if op == "eq" else not_(equal)
    if op in ("in", "not_in"):
        within = found.within(value)  # type: ignore[arg-type]
        return within if op == "in" else not_(within)
    if op == "contains":
        return found.contains(str(value))
    if op == "starts_with":
        return found.starts_with(str(value))
    return found.ordered(op, value)  # type: ignore[arg-type]


def _choice(column: Any, node: Condition) -> Predicate:
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    found = func.coalesce(column.in_(values), false())
    return found if node.op in ("eq", "in") else not_(found)


def _consent(channel: str) -> Any:
    return (
        select(consents.c.status)
        .where(consents.c.lead_id == leads.c.id, consents.c.channel == channel)
        .order_by(consents.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def matching(conn: Connection, tree: Node, now: datetime, *columns: Any) -> Select[Any]:
    """The ids (or ``columns``) of the live leads in the segment ``tree`` defines, at ``now``."""
    if conn.dialect.name == "postgresql":  # compiling costs more than these scans save
        conn.execute(text("SET LOCAL jit = off"))
    source: Any = leads
    if uses(tree, "account"):
        source = leads.outerjoin(accounts, accounts.c.id == leads.c.account_id)
    compiled = SqlSegments(conn.dialect.name == "postgresql", now).predicate(tree)
    chosen = columns or (leads.c.id,)
    return select(*chosen).select_from(source).where(leads.c.merged_into.is_(None), compiled)


def _stored(row: Any) -> StoredSegment:
    return StoredSegment(
        row.name, row.description, row.tree, row.origin, row.created_at, row.updated_at
    )


class SqlSegmentRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # definitions ----------------------------------------------------------------------
    def all(self) -> list[StoredSegment]:
        rows = self.conn.execute(select(definitions).order_by(definitions.c.name))
        return [_stored(row) for row in rows]

    def get(self, name: str) -> StoredSegment | None:
        row = self.conn.execute(select(definitions).where(definitions.c.name == name)).first()
        return _stored(row) if row is not None else None

    def save(
        self, name: str, description: str, tree: dict[str, Any], origin: str, at: datetime
    ) -> None:
        values = {"description": description, "tree": tree, "origin": origin, "updated_at": at}
        done = self.conn.execute(
            update(definitions).where(definitions.c.name == name).values(**values)
        )
        if done.rowcount == 0:
            self.conn.execute(insert(definitions).values(name=name, created_at=at, **values))

    def delete(self, name: str) -> bool:
        self.conn.execute(delete(members).where(members.c.segment == name))
        done = self.conn.execute(delete(definitions).where(definitions.c.name == name))
        return bool(done.rowcount)

    # evaluation -----------------------------------------------------------------------
    def count(self, tree: Node, now: datetime) -> int:
        query = matching(self.conn, tree, now).subquery()
        return int(self.conn.scalar(select(func.count()).select_from(query)) or 0)

    def sample(self, tree: Node, now: datetime, limit: int) -> list[int]:
        query = matching(self.conn, tree, now).order_by(leads.c.id).limit(limit)
        return list(self.conn.scalars(query))

    def refresh(self, name: str, tree: Node, now: datetime) -> tuple[list[int], list[int]]:
        """Bring the stored members to what the tree selects now: (entered, left). The tree
        is evaluated once; only the difference is written."""
        chosen = set(self.conn.scalars(matching(self.conn, tree, now)))
        current = set(self.conn.scalars(select(members.c.lead_id).where(members.c.segment == name)))
        entered, left = sorted(chosen - current), sorted(current - chosen)
        self.apply([(name, lead) for lead in entered], [(name, lead) for lead in left], now)
        return entered, left

    # members --------------------------------------------------------------------------
    def member_count(self, name: str) -> int:
        query = select(func.count()).select_from(members).where(members.c.segment == name)
        return int(self.conn.scalar(query) or 0)

    def members(self, name: str, limit: int, after: int | None) -> list[tuple[int, datetime]]:
        query = select(members.c.lead_id, members.c.entered_at).where(members.c.segment == name)
        if after is not None:
            query = query.where(members.c.lead_id > after)
        rows = self.conn.execute(query.order_by(members.c.lead_id).limit(limit))
        return [(row.lead_id, row.entered_at) for row in rows]

    def memberships(self, lead_ids: Sequence[int]) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        query = select(members.c.lead_id, members.c.segment).where(members.c.lead_id.in_(lead_ids))
        for lead_id, segment in self.conn.execute(query):
            found.setdefault(lead_id, set()).add(segment)
        return found

    def apply(
        self, entered: Sequence[tuple[str, int]], left: Sequence[tuple[str, int]], now: datetime
    ) -> None:
        """Write one lead's (or a batch's) entries and exits, with their outbox rows."""
        if entered:
            self.conn.execute(
                insert_ignore(self.conn, members, ["segment", "lead_id"]),
                [{"segment": s, "lead_id": lead, "entered_at": now} for s, lead in entered],
            )
        gone: dict[str, list[int]] = {}
        for segment, lead in left:
            gone.setdefault(segment, []).append(lead)
        for segment, ids in gone.items():
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                self.conn.execute(
                    delete(members).where(
                        members.c.segment == segment, members.c.lead_id.in_(chunk)
                    )
                )
        self.write_outbox(entered, left, now)

    def write_outbox(
        self, entered: Iterable[tuple[str, int]], left: Iterable[tuple[str, int]], now: datetime
    ) -> None:
        rows = [_outbox(LEFT, s, lead, now) for s, lead in left]
        rows += [_outbox(ENTERED, s, lead, now) for s, lead in entered]
        if rows:
            self.conn.execute(insert(outbox), rows)

    # facts for the in-memory interpreter ------------------------------------------------
    def facts(
        self, lead_ids: Sequence[int], trees: Sequence[Node], now: datetime
    ) -> dict[int, LeadFacts]:
        """What the trees need to know about the live leads among ``lead_ids``, in bulk."""
        query = (
            select(
                leads.c.id,
                leads.c.traits,
                accounts.c.traits.label("account_traits"),
                leads.c.account_id,
                leads.c.fit_score,
                leads.c.engagement_score,
                leads.c.p_convert,
                leads.c.fit_grade,
                leads.c.stage,
            )
            .select_from(leads.outerjoin(accounts, accounts.c.id == leads.c.account_id))
            .where(leads.c.id.in_(lead_ids), leads.c.merged_into.is_(None))
        )
        rows = list(self.conn.execute(query))
        ids = [row.id for row in rows]
        consent = self._consents(ids) if any(uses(t, "consent") for t in trees) else {}
        happened = self._events(ids, [d for t in trees for d in behaviours(t)], now)
        return {
            row.id: LeadFacts(
                lead_id=row.id,
                traits=row.traits or {},
                account=(row.account_traits or {}) if row.account_id is not None else None,
                fit=row.fit_score,
                engagement=row.engagement_score,
                p_convert=row.p_convert,
                grade=row.fit_grade,
                stage=row.stage,
                consent=consent.get(row.id, {}),
                events=happened.get(row.id, ()),
            )
            for row in rows
        }

    def _consents(self, lead_ids: Sequence[int]) -> dict[int, dict[str, str]]:
        found: dict[int, dict[str, str]] = {}
        query = (
            select(consents.c.lead_id, consents.c.channel, consents.c.status)
            .where(consents.c.lead_id.in_(lead_ids))
            .order_by(consents.c.id)
        )
        for lead_id, channel, status in self.conn.execute(query):
            found.setdefault(lead_id, {})[channel] = status  # the latest row wins
        return found

    def _events(
        self, lead_ids: Sequence[int], wanted: Sequence[Did], now: datetime
    ) -> dict[int, list[EventFact]]:
        if not wanted or not lead_ids:
            return {}
        names = sorted({d.event for d in wanted})
        query = select(
            events.c.lead_id, events.c.name, events.c.timestamp, events.c.properties
        ).where(events.c.lead_id.in_(lead_ids), events.c.name.in_(names), events.c.timestamp <= now)
        if all(d.within_days is not None for d in wanted):
            days = max(d.within_days or 0 for d in wanted)
            query = query.where(events.c.timestamp >= now - timedelta(days=days))
        found: dict[int, list[EventFact]] = {}
        for lead_id, name, at, properties in self.conn.execute(query):
            found.setdefault(lead_id, []).append(EventFact(name, at, properties or {}))
        return found


def _outbox(topic: str, segment: str, lead_id: int, now: datetime) -> dict[str, Any]:
    row = OutboxRow(topic, lead_id, {"segment": segment, "lead_id": lead_id}, now)
    return {"topic": row.topic, "lead_id": row.lead_id, "payload": row.payload, "created_at": now}
