"""inbox: tracking requests accepted durably in staged ingestion, waiting to be processed

Each row is one accepted request body as it arrived (after gzip inflation): the tracking
route commits it and answers 200; a drainer turns it into events, identities and scores and
deletes it in the same transaction (docs/tracking.md, "Staged ingestion").

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", ID, nullable=False),
        sa.Column("source_id", ID, nullable=False),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_inbox_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
    )


def downgrade() -> None:
    op.drop_table("inbox")
