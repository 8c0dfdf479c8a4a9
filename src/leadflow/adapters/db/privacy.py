"""Everything the store holds on a person: exported as data, or erased from every table.

A person is a live lead and every lead merged into it. Both walk the schema instead of a
hand-kept list, so a table added later is covered the day it is added: any table with a
``lead_id`` column, plus the lead rows themselves and the merge and conflict records that
name them. The suppression list is the one exception: an erased person's address stays
suppressed (the lead reference is cleared), so that an opt-out is still honoured.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, or_, select, update

from leadflow.adapters.db.tables import Base, identity_conflicts, lead_merges, leads, suppressions

KEPT_ON_ERASE = frozenset({"suppressions"})


def _lead_tables() -> list[Table]:
    return [
        table
        for table in Base.metadata.sorted_tables
        if "lead_id" in table.c and table.name != "leads"
    ]


def person(conn: Connection, lead_id: int) -> list[int]:
    """The lead and every lead merged into it, directly or not."""
    found = [lead_id]
    frontier = [lead_id]
    while frontier:
        rows = conn.scalars(select(leads.c.id).where(leads.c.merged_into.in_(frontier)))
        frontier = [r for r in rows if r not in found]
        found.extend(frontier)
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def export(conn: Connection, ids: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Every row that names one of the leads, by table."""
    found: dict[str, list[dict[str, Any]]] = {}
    rows = conn.execute(select(leads).where(leads.c.id.in_(ids)).order_by(leads.c.id))
    found["leads"] = [{str(k): _plain(v) for k, v in row._mapping.items()} for row in rows]
    for table in _lead_tables():
        order = table.c.id if "id" in table.c else table.c.lead_id
        rows = conn.execute(select(table).where(table.c.lead_id.in_(ids)).order_by(order))
        items = [{str(k): _plain(v) for k, v in row._mapping.items()} for row in rows]
        if items:
            found[str(table.name)] = items
    merges = conn.execute(
        select(lead_merges).where(
            or_(lead_merges.c.survivor_id.in_(ids), lead_merges.c.merged_id.in_(ids))
        )
    )
    found["lead_merges"] = [{str(k): _plain(v) for k, v in r._mapping.items()} for r in merges]
    return found


def erase(conn: Connection, ids: list[int]) -> dict[str, int]:
    """Delete every row that names one of the leads; the counts by table."""
    counts: dict[str, int] = {}
    conn.execute(update(suppressions).where(suppressions.c.lead_id.in_(ids)).values(lead_id=None))
    for table in reversed(_lead_tables()):
        if table.name in KEPT_ON_ERASE:
            continue
        done = conn.execute(delete(table).where(table.c.lead_id.in_(ids))).rowcount
        if done:
            counts[str(table.name)] = done
    counts["lead_merges"] = conn.execute(
        delete(lead_merges).where(
            or_(lead_merges.c.survivor_id.in_(ids), lead_merges.c.merged_id.in_(ids))
        )
    ).rowcount
    counts["identity_conflicts"] = (
        counts.get("identity_conflicts", 0)
        + conn.execute(
            delete(identity_conflicts).where(identity_conflicts.c.other_lead_id.in_(ids))
        ).rowcount
    )
    conn.execute(update(leads).where(leads.c.id.in_(ids)).values(merged_into=None))
    counts["leads"] = conn.execute(delete(leads).where(leads.c.id.in_(ids))).rowcount
    return {name: count for name, count in counts.items() if count}
