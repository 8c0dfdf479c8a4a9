"""Behaviour features of one lead, kept as a small state updated in O(1) per event.

The same :func:`observe` serves the live path (each event as it arrives) and training (the
events up to a cut-off, replayed), and the same :func:`behaviour_row` turns the state into
features as of an instant, so a model sees at scoring time exactly what it was trained on.

Per event key (``event:<name>`` for a track, ``page:/<first path segment>`` for a page, the
type otherwise) the state keeps a count and an exponentially decayed count
(``value(t) = value(t0) * 2^(-(t - t0)/half_life) + 1``), plus first and last seen, the
number of active days, and the distinct traffic sources and UTM campaigns seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.domain.scoring import ScoredEvent

DAY = 86_400.0
HALF_LIFE = 7 * DAY
MAX_KEYS = 64  # event keys kept per lead; the rest count under "other"
MAX_SEEN = 10  # distinct sources / campaigns kept per lead
# CRM outcomes are what a model predicts: they never become features.
OUTCOME_EVENTS = frozenset({"opportunity created", "deal won", "deal lost"})
STATE_KEY = "features"  # the key of this state inside a lead's score_state


@dataclass(slots=True)
class FeatureState:
    counts: dict[str, int] = field(default_factory=dict)
    decayed: dict[str, list[float]] = field(default_factory=dict)  # key -> [value, as_of]
    first: float | None = None
    last: float | None = None
    events: int = 0
    days: int = 0
    last_day: int | None = None
    sources: list[str] = field(default_factory=list)
    campaigns: list[str] = field(default_factory=list)
    first_touch: dict[str, str] = field(default_factory=dict)  # utm source/medium/campaign

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "decayed": self.decayed,
            "first": self.first,
            "last": self.last,
            "events": self.events,
            "days": self.days,
            "last_day": self.last_day,
            "sources": self.sources,
            "campaigns": self.campaigns,
            "first_touch": self.first_touch,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FeatureState:
        if not data:
            return cls()
        return cls(
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            decayed={
                str(k): [float(v[0]), float(v[1])] for k, v in (data.get("decayed") or {}).items()
            },
            first=_float(data.get("first")),
            last=_float(data.get("last")),
            events=int(data.get("events") or 0),
            days=int(data.get("days") or 0),
            last_day=data.get("last_day"),
            sources=list(data.get("sources") or []),
            campaigns=list(data.get("campaigns") or []),
            first_touch=dict(data.get("first_touch") or {}),
        )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def event_key(kind: str, name: str | None, path: str | None) -> str | None:
    """The key an event counts under; None for the outcomes, which never count."""
    if kind == "track":
        label = (name or "").strip().lower()
        if label in OUTCOME_EVENTS:
            return None
        return f"event:{label}" if label else "track"
    if kind == "page":
        segment = (path or "/").split("?", 1)[0].strip("/").split("/", 1)[0].lower()
        return f"page:/{segment}"
    return kind


def _campaign(context: Mapping[str, Any]) -> Mapping[str, Any]:
    found = context.get("campaign")
    return found if isinstance(found, Mapping) else {}


def _remember(seen: list[str], value: Any) -> None:
    if isinstance(value, str) and value and value not in seen and len(seen) < MAX_SEEN:
        seen.append(value)


def observe(
    state: FeatureState,
    kind: str,
    name: str | None,
    at: float,
    path: str | None,
    context: Mapping[str, Any],
) -> None:
    """Count one event (``at`` in epoch seconds) into ``state``, in O(1)."""
    key = event_key(kind, name, path)
    if key is None:
        return
    if key not in state.counts and len(state.counts) >= MAX_KEYS:
        key = "other"
    state.counts[key] = state.counts.get(key, 0) + 1
    slot = state.decayed.get(key)
    if slot is None:
        state.decayed[key] = [1.0, at]
    elif at >= slot[1]:
        slot[0] = slot[0] * 2 ** (-(at - slot[1]) / HALF_LIFE) + 1.0
        slot[1] = at
    else:  # late: its unit, decayed from its own time to the newest one
        slot[0] += 2 ** (-(slot[1] - at) / HALF_LIFE)
    state.events += 1
    state.first = at if state.first is None else min(state.first, at)
    state.last = at if state.last is None else max(state.last, at)
    day = int(at // DAY)
    if state.last_day is None or day > state.last_day:
        state.days += 1
        state.last_day = day
    campaign = _campaign(context)
    _remember(state.sources, campaign.get("source"))
    _remember(state.campaigns, campaign.get("name"))
    if campaign and not state.first_touch:
        for part in ("source", "medium", "name"):
            if isinstance(campaign.get(part), str):
                state.first_touch[part] = str(campaign[part])


def observe_event(state: FeatureState, event: ScoredEvent) -> None:
    """:func:`observe` for one event of the log."""
    observe(state, event.type, event.name, event.timestamp.timestamp(), event.path, event.context)


def behaviour_row(state: FeatureState, at: datetime) -> dict[str, float | str | None]:
    """The behaviour features as of ``at``: counts, decayed counts, recency, frequency,
    sources and the first UTM campaign."""
    now = at.timestamp()
    row: dict[str, float | str | None] = {}
    for key, count in state.counts.items():
        row[f"count {key}"] = float(count)
        value, as_of = state.decayed[key]
        row[f"decayed {key}"] = value * 2 ** (-max(0.0, now - as_of) / HALF_LIFE)
    row["events"] = float(state.events)
    row["active days"] = float(state.days)
    if state.first is not None and state.last is not None:
        age = max(0.0, now - state.first) / DAY
        row["days since first seen"] = age
        row["days since last seen"] = max(0.0, now - state.last) / DAY
        row["events per day"] = state.events / max(1.0, age)
    else:
        row["days since first seen"] = row["days since last seen"] = None
        row["events per day"] = 0.0
    row["sources"] = float(len(state.sources))
    row["campaigns"] = float(len(state.campaigns))
    for part in ("source", "medium", "name"):
        row[f"first utm_{'campaign' if part == 'name' else part}"] = state.first_touch.get(part)
    return row


def lead_row(
    state: FeatureState,
    traits: Mapping[str, Any],
    account: Mapping[str, Any],
    at: datetime,
    email: str | None = None,
    scores: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Everything known about a lead as of ``at``: the domain of its email, its traits, its
    account's traits (flat, scalar values only), its behaviour, and the scoring model's
    scores (``score fit``, ``score engagement``) when given."""
    row: dict[str, Any] = {f"score {name}": value for name, value in (scores or {}).items()}
    if email and "@" in email:
        row["email domain"] = email.rsplit("@", 1)[1].strip().lower()
    for prefix, source in (("trait", traits), ("account", account)):
        for name, value in source.items():
            if name in ("email", "phone"):
                continue
            if isinstance(value, str | int | float | bool) or value is None:
                row[f"{prefix} {name}"] = value
    row.update(behaviour_row(state, at))
    return row
