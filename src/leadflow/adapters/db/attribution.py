"""The opportunities of a window, the touches before each, and their credit weighed in SQL.

An opportunity is a lead's first stage change into opportunity (or customer), or its first
"Opportunity Created" (or "Deal Won") event, whichever came first; merged leads are left out.
One statement answers a report. Its CTEs:

- ``opportunities``: the opportunities of the window, with the lead's first touch as
  ingestion recorded it (``leads.first_seen_at``, ``first_source_id``, ``first_touch``): the
  stage history, the events by name (``ix_events_name_timestamp_lead``), the leads by id;
- ``touches``: that first touch, every event with a campaign, and every click on a journey
  message, before the opportunity. The events come from the partial index
  ``ix_events_touches`` (events with a campaign, and identify calls, with their source,
  campaign, type and id included: PostgreSQL reads them from the index alone); the clicks
  from the deliveries by lead. An event with a campaign that is the first touch itself (same
  time, source and campaign) is not counted twice;
- ``identified``: each lead's first identify call before its opportunity (the same index).

Then a window function numbers each lead's touches (by time; events, then clicks; then id)
and weighs them by the model (services/attribution.py has the rules; :func:`_weight` is the
same in SQL), and the shares are added up per lead and label. The deals won ("Deal Won":
``properties.amount`` and ``currency``) and stage changes into customer since the window's
start are read by name and time: few rows, kept for the opportunities of the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    text,
    union,
    union_all,
)

from leadflow.adapters.db.tables import deliveries, events, leads, sources, stage_changes
from leadflow.services.activity import ACTIVITY_SOURCE
from leadflow.services.attribution import (
    OPPORTUNITY_EVENTS,
    OPPORTUNITY_STAGES,
    POSITION_SHARE,
    REST_SHARE,
    WON_EVENT,
    WON_STAGE,
    Opportunity,
    Touch,
    deal_amount,
)
from leadflow.services.costs import DEFAULT_CURRENCY

# The kind of each row of a statement.
OPPORTUNITY, IDENTIFIED, SHARE, DEAL, WON = range(5)
EVENT_ORDER, CLICK_ORDER = 0, 1  # the order of touches at the same instant
CAMPAIGN_LENGTH = 200  # events.campaign keeps the first 200 characters

Shares = list[tuple[int | None, str | None, float]]


class SqlAttributionRepository:
    """Reads for the attribution report, on a connection of its own: on PostgreSQL its
    transaction runs with JIT compilation off and 32 MB of ``work_mem``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL jit = off"))  # compiling costs more than it saves
            conn.execute(text("SET LOCAL work_mem = '32MB'"))  # sorts and hashes in memory

    def credits(
        self, model: str, by: str, since: datetime | None, until: datetime | None
    ) -> tuple[list[Opportunity], Shares, list[str]]:
        """The opportunities of the window (without their touches), the share of each label
        of each one's touches under ``model``, and the currency of each deal won."""
        window = _window(since, until)
        statement = union_all(
            _rows(OPPORTUNITY, window), *_shares(window, model, by, since), *_outcomes(since)
        )
        found: dict[int, Opportunity] = {}
        given: Shares = []
        outcomes: list[tuple[int, int, str | None, str | None]] = []
        for kind, lead, at, label, extra, share in self.conn.execute(statement):
            if kind == OPPORTUNITY:
                found[lead] = Opportunity(lead, at)
            elif kind == SHARE:
                given.append((lead, label, float(share)))
            else:
                outcomes.append((kind, lead, label, extra))
        return list(found.values()), given, _settle(found, outcomes)

    def opportunities(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[list[Opportunity], list[str]]:
        """The opportunities of the window with their touches and when each lead was
        identified, for weighing in Python; and the currency of each deal won."""
        window = _window(since, until)
        _, identified_at = _touches(window)
        statement = union_all(
            _rows(OPPORTUNITY, window), _rows(IDENTIFIED, identified_at), *_outcomes(since)
        )
        found: dict[int, Opportunity] = {}
        identified: dict[int, datetime] = {}
        outcomes: list[tuple[int, int, str | None, str | None]] = []
        for kind, lead, at, label, extra, _share in self.conn.execute(statement):
            if kind == OPPORTUNITY:
                found[lead] = Opportunity(lead, at)
            elif kind == IDENTIFIED:
                identified[lead] = at
            else:
                outcomes.append((kind, lead, label, extra))
        for lead, at in identified.items():
            found[lead].identified_at = at
        names = {int(i): str(n) for i, n in self.conn.execute(select(sources.c.id, sources.c.name))}
        touches, _ = _touches(_window(since, until))
        for row in self.conn.execute(select(touches)):
            source = ACTIVITY_SOURCE if row.ord == CLICK_ORDER else names.get(row.source_id)
            key = (int(row.ord), int(row.ref))
            touch = Touch(row.at, source, row.campaign, row.journey, key)
            found[row.lead_id].touches.append(touch)
        return list(found.values()), _settle(found, outcomes)


def _settle(
    found: dict[int, Opportunity], outcomes: Iterable[tuple[int, int, str | None, str | None]]
) -> list[str]:
    """Mark the won opportunities and add up their deals; the currency of each deal."""
    currencies: list[str] = []
    for kind, lead, amount_text, currency in outcomes:
        opportunity = found.get(lead)
        if opportunity is None:
            continue  # a deal or a stage change of a lead with no opportunity in the window
        opportunity.won = True
        amount = deal_amount(amount_text) if kind == DEAL else None
        if amount is not None:
            opportunity.revenue += amount
            currencies.append((currency or DEFAULT_CURRENCY).strip().upper())
    return currencies


# --- the opportunities, the touches, the identification -------------------------------------
def _window(since: datetime | None, until: datetime | None) -> CTE:
    """The first opportunity of every live lead, in the window, with its first touch."""
    moments = union_all(
        select(stage_changes.c.lead_id, stage_changes.c.at).where(
            stage_changes.c.to_stage.in_(OPPORTUNITY_STAGES)
        ),
        select(events.c.lead_id, events.c.timestamp.label("at")).where(
            events.c.name.in_(OPPORTUNITY_EVENTS)
        ),
    ).subquery("moments")
    first = (
        select(moments.c.lead_id, func.min(moments.c.at).label("at"))
        .group_by(moments.c.lead_id)
        .subquery("first_moments")
    )
    campaign = leads.c.first_touch[("campaign", "name")].as_string()
    query = select(
        first.c.lead_id,
        first.c.at,
        leads.c.first_seen_at.label("first_at"),
        leads.c.first_source_id.label("first_source_id"),
        func.substr(campaign, 1, CAMPAIGN_LENGTH).label("first_campaign"),
    ).join(leads, and_(leads.c.id == first.c.lead_id, leads.c.merged_into.is_(None)))
    if since is not None:
        query = query.where(first.c.at >= since)
    if until is not None:
        query = query.where(first.c.at < until)
    return query.cte("opportunities")


def _touches(window: CTE) -> tuple[CTE, CTE]:
    """``touches`` (lead_id, at, ord, ref, source_id, campaign, journey) of every touch, and
    ``identified`` (lead_id, at): each lead's first identify call before its opportunity.
    Both come from one pass over the partial index of events (its predicate, as written)."""
    e, d, w = events.c, deliveries.c, window.c
    indexed = (
        select(
            e.lead_id,
            e.timestamp,
            e.id,
            e.source_id,
            e.campaign,
            e.type,
            w.first_at,
            w.first_source_id,
            w.first_campaign,
        )
        .join(window, and_(w.lead_id == e.lead_id, e.timestamp < w.at))
        .where(or_(e.campaign.is_not(None), e.type == "identify"))
        .cte("indexed")
    )
    i = indexed.c
    no_id, no_text = cast(null(), BigInteger()), cast(null(), String())
    first = select(
        w.lead_id, w.first_at.label("at"), literal(EVENT_ORDER, Integer()).label("ord"),
        literal(0, BigInteger()).label("ref"), w.first_source_id.label("source_id"),
        w.first_campaign.label("campaign"), no_text.label("journey"),
    ).where(w.first_at < w.at)  # fmt: skip
    is_first = and_(
        i.timestamp == i.first_at, i.source_id == i.first_source_id, i.campaign == i.first_campaign
    )
    campaigns = select(
        i.lead_id, i.timestamp, literal(EVENT_ORDER, Integer()), i.id, i.source_id, i.campaign,
        no_text,
    ).where(i.campaign.is_not(None), not_(func.coalesce(is_first, False)))  # fmt: skip
    clicks = (
        select(
            d.lead_id,
            d.clicked_at,
            literal(CLICK_ORDER, Integer()),
            d.id,
            no_id,
            no_text,
            d.journey,
        )
        .join(window, and_(w.lead_id == d.lead_id, d.clicked_at < w.at))
        .where(d.journey.is_not(None))
    )
    identified = (
        select(i.lead_id, func.min(i.timestamp).label("at"))
        .where(i.type == "identify")
        .group_by(i.lead_id)
        .cte("identified")
    )
    return union_all(first, campaigns, clicks).cte("touches"), identified


# --- the weighing, in SQL -----------------------------------------------------------------------
def _weighed(touches: CTE, identified: CTE, model: str, by: str) -> Any:
    """(lead_id, label, share) of every touch under the model."""
    t = touches.c
    order = (t.at, t.ord, t.ref)
    numbered = select(
        touches,
        func.row_number().over(partition_by=t.lead_id, order_by=order).label("rn"),
        func.count().over(partition_by=t.lead_id).label("n"),
    ).subquery("numbered")
    p = numbered.c
    after = case((p.at >= identified.c.at, p.rn))
    creation = case(
        (identified.c.at.is_(None), 1),
        else_=func.coalesce(func.min(after).over(partition_by=p.lead_id), p.n),
    )
    placed = (
        select(numbered, creation.label("lc"))
        .select_from(numbered.outerjoin(identified, identified.c.lead_id == p.lead_id))
        .subquery("placed")
    )
    q = placed.c
    label: ColumnElement[Any] = q.journey if by == "journey" else q.campaign
    if by == "source":
        label = case((q.ord == CLICK_ORDER, ACTIVITY_SOURCE), else_=sources.c.name)
    weighed = select(q.lead_id, label.label("label"), _weight(model, q).label("share"))
    if by == "source":
        weighed = weighed.select_from(placed.outerjoin(sources, sources.c.id == q.source_id))
    return weighed.subquery("weighed")


def _weight(model: str, q: Any) -> ColumnElement[Any]:
    """The share of a touch: ``rn`` its rank (from 1), ``n`` the lead's touches, ``lc`` the
    rank of the lead-creation touch (services/attribution.py ``weights``)."""
    one, zero = cast(1.0, Float()), cast(0.0, Float())
    if model == "first_touch":
        return case((q.rn == 1, one), else_=zero)
    if model == "last_touch":
        return case((q.rn == q.n, one), else_=zero)
    if model == "linear":
        linear: ColumnElement[Any] = one / q.n
        return linear
    held = (
        case((q.rn == 1, 1), else_=0)
        + case((q.rn == q.lc, 1), else_=0)
        + case((q.rn == q.n, 1), else_=0)
    )
    distinct = 1 + case((q.lc != 1, 1), else_=0) + case((and_(q.n != 1, q.n != q.lc), 1), else_=0)
    others = q.n - distinct
    return case(
        (others == 0, held / cast(3.0, Float())),  # the positions' 90% scaled to 100%
        (held > 0, held * cast(POSITION_SHARE, Float())),
        else_=cast(REST_SHARE, Float()) / others,
    )


# --- rows of one shape, for the UNION ALL -------------------------------------------------------
def _rows(kind: int, source: CTE) -> Select[Any]:
    """(kind, lead_id, at, label, extra, share), the shape of every row, of a CTE of
    (lead_id, at)."""
    return select(
        literal(kind, Integer()).label("kind"),
        source.c.lead_id,
        source.c.at,
        cast(null(), String()).label("label"),
        cast(null(), String()).label("extra"),
        cast(null(), Float()).label("share"),
    )


def _shares(window: CTE, model: str, by: str, since: datetime | None) -> list[Select[Any]]:
    """(lead_id, label, share) rows: the shares of the won opportunities per lead (their
    revenue is added later); those of the others, which need no lead, added up per label;
    and a whole share without a label for each opportunity with no touch before it."""
    touches, identified = _touches(window)
    weighed = _weighed(touches, identified, model, by)
    won = _won(since)
    lead = case((won.c.lead_id.is_not(None), weighed.c.lead_id))
    no_time, no_text = cast(null(), stage_changes.c.at.type), cast(null(), String())
    shares = (
        select(
            literal(SHARE, Integer()).label("kind"),
            lead.label("lead_id"),
            no_time.label("at"),
            weighed.c.label,
            no_text.label("extra"),
            func.sum(weighed.c.share).label("share"),
        )
        .select_from(weighed.outerjoin(won, won.c.lead_id == weighed.c.lead_id))
        .group_by(lead, weighed.c.label)
    )
    untouched = select(
        literal(SHARE, Integer()), window.c.lead_id, no_time, no_text, no_text, cast(1.0, Float())
    ).where(~exists().where(touches.c.lead_id == window.c.lead_id))
    return [shares, untouched]


def _won(since: datetime | None) -> CTE:
    """(lead_id): the leads with a deal won or a stage change into customer since ``since``."""
    deals = select(events.c.lead_id).where(events.c.name == WON_EVENT)
    customers = select(stage_changes.c.lead_id).where(stage_changes.c.to_stage == WON_STAGE)
    if since is not None:
        deals = deals.where(events.c.timestamp >= since)
        customers = customers.where(stage_changes.c.at >= since)
    return union(deals, customers).cte("won")


def _outcomes(since: datetime | None) -> list[Select[Any]]:
    """Deals won (amount, currency) and stage changes into customer since ``since``: a deal
    comes at or after its opportunity. Read by name and time, not lead by lead."""
    props = events.c.properties
    deals = select(
        literal(DEAL, Integer()).label("kind"),
        events.c.lead_id,
        events.c.timestamp.label("at"),
        props["amount"].as_string().label("label"),
        props["currency"].as_string().label("extra"),
        cast(null(), Float()).label("share"),
    ).where(events.c.name == WON_EVENT)
    c = stage_changes.c
    no_text = cast(null(), String())
    won = select(
        literal(WON, Integer()), c.lead_id, c.at, no_text, no_text, cast(null(), Float())
    ).where(c.to_stage == WON_STAGE)
    if since is not None:
        deals = deals.where(events.c.timestamp >= since)
        won = won.where(c.at >= since)
    return [deals, won]
