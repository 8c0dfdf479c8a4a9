"""costs: money spent per source, campaign or journey; each event's campaign for attribution

``events.campaign`` is computed by the database from the raw message as each row is written
(``context.campaign.name``, its first 200 characters): STORED on PostgreSQL (adding it
rewrites the events table once), VIRTUAL on SQLite. ``ix_events_touches`` holds the events
attribution reads (those with a campaign, and identify calls), with the source, campaign, type
and id included on PostgreSQL so that it answers from the index alone.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
CAMPAIGN_SQL = "substr(raw -> 'context' -> 'campaign' ->> 'name', 1, 200)"
TOUCHES_WHERE = "campaign IS NOT NULL OR type = 'identify'"


def upgrade() -> None:
    op.create_table(
        "costs",
        sa.Column("id", ID, nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_costs")),
    )
    with op.batch_alter_table("costs", schema=None) as batch_op:
        batch_op.create_index("ix_costs_dimension_name", ["dimension", "name"], unique=False)

    # SQLite cannot add a STORED column to a table; a VIRTUAL one is computed when read.
    stored = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "events",
        sa.Column(
            "campaign",
            sa.String(length=200),
            sa.Computed(CAMPAIGN_SQL, persisted=stored or None),
            nullable=True,
        ),
    )
    op.create_index(
        "ix_events_touches",
        "events",
        ["lead_id", "timestamp"],
        unique=False,
        postgresql_include=["source_id", "campaign", "type", "id"],
        postgresql_where=sa.text(TOUCHES_WHERE),
        sqlite_where=sa.text(TOUCHES_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_events_touches", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("campaign")
    with op.batch_alter_table("costs", schema=None) as batch_op:
        batch_op.drop_index("ix_costs_dimension_name")
    op.drop_table("costs")
