"""dashboard: users with hashed passwords and roles, their browser sessions, and the indexes
behind the sorted leads list

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("rep_id", ID, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("last_login_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["rep_id"],
            ["sales_reps.id"],
            name=op.f("fk_users_rep_id_sales_reps"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_web_sessions_user", ["user_id"], unique=False)
    # Keyset paging of the leads list in each order the dashboard offers.
    op.create_index("ix_leads_engagement_id", "leads", ["engagement_score", "id"])
    op.create_index("ix_leads_fit_id", "leads", ["fit_score", "id"])
    op.create_index("ix_stage_changes_to_at", "stage_changes", ["to_stage", "at"])
    op.create_index("ix_leads_p_convert_id", "leads", [sa.text("coalesce(p_convert, -1.0)"), "id"])


def downgrade() -> None:
    for name in ("ix_leads_p_convert_id", "ix_leads_fit_id", "ix_leads_engagement_id"):
        op.drop_index(name, table_name="leads")
    op.drop_index("ix_stage_changes_to_at", table_name="stage_changes")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_web_sessions_user")
    op.drop_table("web_sessions")
    op.drop_table("users")
