"""The handoff migration creates exactly the tables declared in tables.py, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from leadflow import Leadflow
from leadflow.adapters.db.tables import Base

HANDOFF_TABLES = {"webhook_deliveries", "sales_reps", "lead_assignments"}


def test_migration_matches_the_declared_handoff_tables(leadflow: Leadflow) -> None:
    with leadflow.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    ours = [d for d in diff if any(name in repr(d) for name in HANDOFF_TABLES)]
    assert ours == []
    with leadflow.engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
    assert names >= HANDOFF_TABLES
