"""Attribution: which sources, campaigns and journeys the opportunities and revenue came from.

This module holds every rule that needs no database (docs/reports.md, "Attribution"): the four
models and how they weigh an opportunity's touches (:func:`shares`), how a touch is labelled
by dimension, and how the shares add up per group (:func:`aggregate`). Each opportunity hands
out exactly one unit of credit, so the groups add up to the number of opportunities, of
customers, and the revenue.

The database adapter (adapters/db/attribution.py) weighs the touches in SQL, on the database,
for speed; :func:`credit` is the same weighing in Python over the touches the adapter can also
read, and the tests hold the two to the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.domain.errors import ValidationError

MODELS = ("first_touch", "last_touch", "linear", "w_shaped")
DIMENSIONS = ("source", "campaign", "journey")
NO_GROUP = "(none)"  # the label of a touch without the dimension, or of no touch at all
POSITION_SHARE = 0.3  # W-shaped: first, lead-creation and opportunity-creation touches
REST_SHARE = 0.1  # W-shaped: shared evenly by the other touches
OPPORTUNITY_STAGES = ("opportunity", "customer")
OPPORTUNITY_EVENTS = ("Opportunity Created", "Deal Won")
WON_EVENT = "Deal Won"
WON_STAGE = "customer"


def check_model(value: str) -> str:
    cleaned = value.strip().lower().replace("-", "_")
    if cleaned not in MODELS:
        raise ValidationError(f"model: {value!r} is not one of {', '.join(MODELS)}")
    return cleaned


def check_dimension(value: str, parameter: str = "by") -> str:
    cleaned = value.strip().lower()
    if cleaned not in DIMENSIONS:
        raise ValidationError(f"{parameter}: {value!r} is not one of {', '.join(DIMENSIONS)}")
    return cleaned


@dataclass(frozen=True, slots=True)
class Touch:
    """A marketing touch of a lead: an event that says where it came from, or a click on a
    journey message. ``key`` orders touches at the same instant (events, then clicks)."""

    at: datetime
    source: str | None = None
    campaign: str | None = None
    journey: str | None = None
    key: tuple[int, int] = (0, 0)

    def label(self, by: str) -> str:
        """Its source, campaign or journey (``by`` names the field), ``(none)`` without."""
        value: str | None = getattr(self, by)
        return value or NO_GROUP


@dataclass(slots=True)
class Opportunity:
    """A lead's first opportunity, the touches before it, and what it won."""

    lead_id: int
    at: datetime
    identified_at: datetime | None = None
    touches: list[Touch] = field(default_factory=list)
    won: bool = False
    revenue: float = 0.0

    def ordered(self) -> list[Touch]:
        return sorted((t for t in self.touches if t.at < self.at), key=lambda t: (t.at, t.key))


def lead_creation(touches: Sequence[Touch], identified_at: datetime | None) -> int:
    """The index of the lead-creation touch: the first touch at or after the lead was
    identified; the first touch when it never was (known from its first message); the last
    touch when none came after the identification."""
    if identified_at is None:
        return 0
    for index, touch in enumerate(touches):
        if touch.at >= identified_at:
            return index
    return len(touches) - 1


def weights(model: str, count: int, creation: int = 0) -> list[float]:
    """The credit of each of ``count`` ordered touches; they add up to 1."""
    if count == 0:
        return []
    if model == "first_touch":
        return [1.0] + [0.0] * (count - 1)
    if model == "last_touch":
        return [0.0] * (count - 1) + [1.0]
    if model == "linear":
        return [1.0 / count] * count
    return w_shaped(count, creation)


def w_shaped(count: int, creation: int) -> list[float]:
    """30% to the first touch, 30% to the lead-creation touch, 30% to the last touch before
    the opportunity, 10% shared evenly by the other touches. A touch in several positions
    gets each of their shares; when no other touch is left, the positions' shares are
    scaled to add up to 1 (one touch: 100%; two: 1/3 and 2/3; three: 1/3 each)."""
    shares = [0.0] * count
    for position in (0, creation, count - 1):
        shares[position] += POSITION_SHARE
    others = [i for i in range(count) if i not in (0, creation, count - 1)]
    if not others:
        total = sum(shares)
        return [share / total for share in shares]
    for index in others:
        shares[index] = REST_SHARE / len(others)
    return shares


@dataclass(slots=True)
class AttributionGroup:
    """The credit one name received: fractions of opportunities and customers, revenue."""

    name: str
    opportunities: float = 0.0
    customers: float = 0.0
    revenue: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "opportunities": round(self.opportunities, 4),
            "customers": round(self.customers, 4),
            "revenue": round(self.revenue, 2),
        }


@dataclass(frozen=True, slots=True)
class AttributionReport:
    model: str
    by: str
    since: datetime | None
    until: datetime | None
    currency: str | None
    opportunities: int
    customers: int
    revenue: float
    groups: list[AttributionGroup]

    def group(self, name: str) -> AttributionGroup:
        """The credit of one name (zero when it received none)."""
        return next((g for g in self.groups if g.name == name), AttributionGroup(name))

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "by": self.by,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "currency": self.currency,
            "totals": {
                "opportunities": self.opportunities,
                "customers": self.customers,
                "revenue": round(self.revenue, 2),
            },
            "groups": [g.to_json() for g in self.groups],
        }


def shares(found: Opportunity, model: str, by: str) -> dict[str | None, float]:
    """The share of one opportunity each label of its touches gets (None: no touch, or a
    touch without the dimension)."""
    touches = found.ordered()
    if not touches:
        return {None: 1.0}
    creation = lead_creation(touches, found.identified_at) if model == "w_shaped" else 0
    given: dict[str | None, float] = {}
    for touch, share in zip(touches, weights(model, len(touches), creation), strict=True):
        label: str | None = getattr(touch, by)
        given[label] = given.get(label, 0.0) + share
    return given


def aggregate(
    opportunities: Iterable[Opportunity], given: Iterable[tuple[int | None, str | None, float]]
) -> list[AttributionGroup]:
    """Add up (lead, label, share) rows into groups: opportunities, customers (the shares of
    the won ones) and revenue (shares times each one's revenue). A row without a lead holds
    shares of opportunities neither won nor with revenue, added up beforehand. Ordered by
    revenue, then opportunities, then name."""
    by_lead = {found.lead_id: found for found in opportunities}
    groups: dict[str, AttributionGroup] = {}
    for lead, label, share in given:
        found = by_lead.get(lead) if lead is not None else None
        if not share or (lead is not None and found is None):
            continue
        name = label or NO_GROUP
        group = groups.get(name) or groups.setdefault(name, AttributionGroup(name))
        group.opportunities += share
        if found is not None:
            group.revenue += share * found.revenue
            group.customers += share if found.won else 0.0
    return sorted(groups.values(), key=lambda g: (-g.revenue, -g.opportunities, g.name))


def credit(opportunities: Sequence[Opportunity], model: str, by: str) -> list[AttributionGroup]:
    """The groups of :func:`aggregate`, the touches weighed in Python."""
    given = (
        (found.lead_id, label, share)
        for found in opportunities
        for label, share in shares(found, model, by).items()
    )
    return aggregate(opportunities, given)


def report(
    opportunities: Sequence[Opportunity],
    groups: list[AttributionGroup],
    model: str,
    by: str,
    window: tuple[datetime | None, datetime | None],
    currency: str | None,
) -> AttributionReport:
    """The report: the totals of the opportunities, and the groups they were credited to."""
    return AttributionReport(
        model,
        by,
        window[0],
        window[1],
        currency,
        len(opportunities),
        sum(1 for o in opportunities if o.won),
        sum(o.revenue for o in opportunities),
        groups,
    )


def deal_amount(value: object) -> float | None:
    """A deal's ``properties.amount``: a number, or a string holding one; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = float(value)
    except ValueError:
        return None
    return amount if math.isfinite(amount) else None


def revenue_currency(currencies: Iterable[str]) -> str | None:
    """The one currency of the deals of a report; several are refused."""
    found = set(currencies)
    if len(found) > 1:
        raise ValidationError(
            f"currency: the deals won in this report are in {', '.join(sorted(found))}; a "
            "report adds up one currency: narrow the window with since and until"
        )
    return next(iter(found), None)
