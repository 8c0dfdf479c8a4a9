"""The tables of the leadflow store (SQLAlchemy 2, typed mappings).

Relationships raise on lazy load: repositories load what they need explicitly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    literal_column,
    or_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = JSON().with_variant(JSONB(), "postgresql")
RawJson = JSON()
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Time = UtcDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def cast_table(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed for insert/update/select."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    write_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Time)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(512), unique=True)
    name: Mapped[str | None] = mapped_column(String(500))
    traits: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)


class Lead(Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    traits: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    stage: Mapped[str] = mapped_column(String(32), default="lead")
    version: Mapped[int] = mapped_column(Integer, default=1)
    fit_score: Mapped[float] = mapped_column(default=0.0)
    fit_grade: Mapped[str | None] = mapped_column(String(2))
    engagement_score: Mapped[float] = mapped_column(default=0.0)
    p_convert: Mapped[float | None] = mapped_column()
    first_source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"))
    first_touch: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    score_state: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    scored_at: Mapped[datetime | None] = mapped_column(Time)
    model_version: Mapped[str | None] = mapped_column(String(32))
    mql_at: Mapped[datetime | None] = mapped_column(Time)
    sla_due_at: Mapped[datetime | None] = mapped_column(Time, index=True)
    next_review_at: Mapped[datetime | None] = mapped_column(Time, index=True)
    created_at: Mapped[datetime] = mapped_column(Time)
    first_seen_at: Mapped[datetime | None] = mapped_column(Time)
    last_seen_at: Mapped[datetime | None] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (
        Index("ix_leads_stage_id", "stage", "id"),
        Index("ix_leads_engagement_id", "engagement_score", "id"),
        Index("ix_leads_fit_id", "fit_score", "id"),
    )


class Identity(Base):
    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(600), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(520))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(Time)


CAMPAIGN_SQL = "substr(raw -> 'context' -> 'campaign' ->> 'name', 1, 200)"


class Event(Base):
    """Append-only log of every accepted message, the raw message kept."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    message_id: Mapped[str] = mapped_column(String(512))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(500))
    timestamp: Mapped[datetime] = mapped_column(Time)
    received_at: Mapped[datetime] = mapped_column(Time)
    properties: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # json, not jsonb: kept verbatim for audit and replay, never queried inside.
    raw: Mapped[dict[str, Any]] = mapped_column(RawJson)
    # The UTM campaign of the message (context.campaign.name), computed by the database as
    # the row is written: attribution reads it from an index, never from the raw message.
    campaign: Mapped[str | None] = mapped_column(
        String(200), Computed(CAMPAIGN_SQL, persisted=True)
    )

    __table_args__ = (
        UniqueConstraint("message_id", "source_id", name="uq_events_message_source"),
        Index("ix_events_lead_timestamp", "lead_id", "timestamp"),
        Index("ix_events_name_timestamp", "name", "timestamp"),
    )


class LeadMerge(Base):
    __tablename__ = "lead_merges"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    cause: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(Time)


class IdentityConflictRow(Base):
    __tablename__ = "identity_conflicts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    other_lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(600))
    reason: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(512))
    resolved: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (
        UniqueConstraint("lead_id", "other_lead_id", "key", name="uq_identity_conflicts_pair"),
    )


class ScoringModelRow(Base):
    """Every version of the scoring model ever used, under its content hash."""

    __tablename__ = "scoring_models"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Time)


class ScoreLedger(Base):
    """Append-only: what each event did to each rule, under one model version."""

    __tablename__ = "score_ledger"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[str] = mapped_column(String(80))
    points: Mapped[float] = mapped_column()
    counted: Mapped[bool] = mapped_column()
    reason: Mapped[str] = mapped_column(String(200), default="")
    timestamp: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (
        UniqueConstraint("event_id", "rule_id", "model_version", name="uq_score_ledger_entry"),
        Index("ix_score_ledger_lead", "lead_id", "model_version", "rule_id"),
    )


class StageChangeRow(Base):
    __tablename__ = "stage_changes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    from_stage: Mapped[str] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(Time)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    model_version: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_stage_changes_to_at", "to_stage", "at"),)


class Outbox(Base):
    """Side effects, written in the same transaction as the change that causes them."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    topic: Mapped[str] = mapped_column(String(100))
    lead_id: Mapped[int | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Time)
    processed_at: Mapped[datetime | None] = mapped_column(Time)

    __table_args__ = (Index("ix_outbox_pending", "processed_at", "id"),)


# --- nurture ---
class ConsentRow(Base):
    """The consent ledger: one row per grant, request or withdrawal, never updated."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(64))
    proof: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (Index("ix_consents_lead_channel", "lead_id", "channel", "id"),)


class Suppression(Base):
    """Addresses never to message again on a channel; kept when the lead is erased."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppressions_address"),)


class Delivery(Base):
    """The per-recipient delivery ledger: one row per message, unique on its key."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(320))
    journey: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(Id)
    step: Mapped[str | None] = mapped_column(String(100))
    template: Mapped[str | None] = mapped_column(String(200))
    variant: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[str | None] = mapped_column(String(200), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Time)
    content: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)
    sent_at: Mapped[datetime | None] = mapped_column(Time)
    delivered_at: Mapped[datetime | None] = mapped_column(Time)
    opened_at: Mapped[datetime | None] = mapped_column(Time)
    clicked_at: Mapped[datetime | None] = mapped_column(Time)
    replied_at: Mapped[datetime | None] = mapped_column(Time)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(Time)

    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_journey_step", "journey", "step"),
        Index("ix_deliveries_run", "run_id"),
    )


class JourneyRow(Base):
    """A journey definition; ``version`` is the hash of its spec."""

    __tablename__ = "journeys"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    enabled: Mapped[bool] = mapped_column(default=True)
    origin: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)


class JourneyRun(Base):
    """One lead's way through one journey: where it is and when its next step is due."""

    __tablename__ = "journey_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    journey: Mapped[str] = mapped_column(String(200))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    entry: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))
    step: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime | None] = mapped_column(Time)
    state: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    version: Mapped[str] = mapped_column(String(32))
    entered_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)
    finished_at: Mapped[datetime | None] = mapped_column(Time)
    exit_reason: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (
        UniqueConstraint("journey", "lead_id", "entry", name="uq_journey_runs_entry"),
        Index("ix_journey_runs_due", "status", "due_at"),
    )


class JourneyLog(Base):
    """What each step did for a run, in order: the run's history, for people and reports."""

    __tablename__ = "journey_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("journey_runs.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    journey: Mapped[str] = mapped_column(String(200))
    step: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(Time)


class Coupon(Base):
    """A unique offer code issued to one lead, with its expiry and redemption."""

    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    offer: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(Time)
    expires_at: Mapped[datetime | None] = mapped_column(Time)
    redeemed_at: Mapped[datetime | None] = mapped_column(Time)

    __table_args__ = (UniqueConstraint("offer", "lead_id", name="uq_coupons_offer_lead"),)


# --- segments ---


class SegmentRow(Base):
    """A named segment: its filter tree as plain data (domain/segments.py)."""

    __tablename__ = "segments"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tree: Mapped[dict[str, Any]] = mapped_column(Json)
    origin: Mapped[str] = mapped_column(String(16), default="user")  # user | config
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)


# Behaviour conditions count a lead's events of one name in a time window, for all leads at
# once: this index answers them from the index alone.
Index("ix_events_name_timestamp_lead", Event.name, Event.timestamp, Event.lead_id)
# Attribution reads the touches of the leads that reached an opportunity (their campaign
# events) and when each was identified from this partial index alone (on PostgreSQL).
Index(
    "ix_events_touches",
    Event.lead_id,
    Event.timestamp,
    postgresql_include=["source_id", "campaign", "type", "id"],
    postgresql_where=or_(Event.campaign.is_not(None), Event.type == "identify"),
    sqlite_where=or_(Event.campaign.is_not(None), Event.type == "identify"),
)
# The dashboard's "most likely to convert" order: no probability sorts as -1.
Index("ix_leads_p_convert_id", func.coalesce(Lead.p_convert, literal_column("-1.0")), Lead.id)


class SegmentMember(Base):
    """Who is in each segment now, and since when."""

    __tablename__ = "segment_members"

    segment: Mapped[str] = mapped_column(
        ForeignKey("segments.name", ondelete="CASCADE"), primary_key=True
    )
    lead_id: Mapped[int] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    entered_at: Mapped[datetime] = mapped_column(Time)


# --- predictive ---
class PredictiveModelRow(Base):
    """Trained conversion models, under their content hash; at most one active."""

    __tablename__ = "predictive_models"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(200))
    metrics: Mapped[dict[str, Any]] = mapped_column(Json)
    features: Mapped[list[Any]] = mapped_column(Json)
    model: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Time)
    active: Mapped[bool] = mapped_column(default=False)


# --- handoff ---
class WebhookDelivery(Base):
    """One event to one endpoint: sent until the receiver answers 2xx, or dead."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(64))  # the webhook-id, the same on every try
    event_type: Mapped[str] = mapped_column(String(100))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Time)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Time)
    delivered_at: Mapped[datetime | None] = mapped_column(Time)

    __table_args__ = (
        UniqueConstraint("endpoint", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )


class SalesRep(Base):
    """A sales rep leads can be assigned to (from the config's ``sales.reps``)."""

    __tablename__ = "sales_reps"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    territories: Mapped[list[Any]] = mapped_column(Json, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    capacity: Mapped[int | None] = mapped_column(Integer)


class LeadAssignment(Base):
    """Which rep owns a lead, by which rule, since when."""

    __tablename__ = "lead_assignments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), unique=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("sales_reps.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(32))  # territory | round_robin | manual
    assigned_at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (Index("ix_lead_assignments_rep", "rep_id", "assigned_at"),)


# --- dashboard ---
class UserRow(Base):
    """A dashboard user: a hashed password and a role (admin, marketer, sales)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))  # admin | marketer | sales
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("sales_reps.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(Time)
    last_login_at: Mapped[datetime | None] = mapped_column(Time)


class WebSession(Base):
    """A signed-in browser: the hash of its cookie token, its CSRF token, when it ends."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Time)
    expires_at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)


# --- ROI ---
class CostRow(Base):
    """Money spent on a source, a campaign or a journey over a period (the ROI report)."""

    __tablename__ = "costs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16))  # source | campaign | journey
    name: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[date] = mapped_column(Date)  # inclusive
    period_end: Mapped[date] = mapped_column(Date)  # exclusive
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Time)

    __table_args__ = (Index("ix_costs_dimension_name", "dimension", "name"),)


# The Core tables, for the repositories' bulk statements.
sources = cast_table(Source)
accounts = cast_table(Account)
leads = cast_table(Lead)
identities = cast_table(Identity)
events = cast_table(Event)
lead_merges = cast_table(LeadMerge)
identity_conflicts = cast_table(IdentityConflictRow)
scoring_models = cast_table(ScoringModelRow)
score_ledger = cast_table(ScoreLedger)
stage_changes = cast_table(StageChangeRow)
outbox = cast_table(Outbox)
consents = cast_table(ConsentRow)
suppressions = cast_table(Suppression)
deliveries = cast_table(Delivery)
journeys = cast_table(JourneyRow)
journey_runs = cast_table(JourneyRun)
journey_log = cast_table(JourneyLog)
coupons = cast_table(Coupon)
segments = cast_table(SegmentRow)
segment_members = cast_table(SegmentMember)
predictive_models = cast_table(PredictiveModelRow)
webhook_deliveries = cast_table(WebhookDelivery)
sales_reps = cast_table(SalesRep)
lead_assignments = cast_table(LeadAssignment)
users = cast_table(UserRow)
web_sessions = cast_table(WebSession)
costs = cast_table(CostRow)


# --- staged ingestion ---
class InboxRow(Base):
    """A tracking request accepted durably, waiting for a drainer (staged ingestion)."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    route: Mapped[str] = mapped_column(String(16))  # the /v1/<route> it came to
    received_at: Mapped[datetime] = mapped_column(Time)
    messages: Mapped[int] = mapped_column(Integer)  # valid messages in the body
    body: Mapped[bytes] = mapped_column(LargeBinary)  # as received, after gzip inflation
