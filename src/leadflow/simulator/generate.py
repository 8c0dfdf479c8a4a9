"""The simulated company: a deterministic, streaming source of leads and Segment messages.

Leads arrive in batches, one batch per local calendar day of the window (weekly seasonality,
a gentle growth trend, day-to-day noise). `Company.messages()` merges the per-lead timelines
with a heap: before the leads of day d are drawn, every pending event earlier than the first
possible first touch of day d (local midnight in the easternmost zone) is emitted. So only the
leads still active are in memory, each as a compact array of packed events, never the whole
message stream. See docs/simulator.md.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from leadflow.simulator import timeline as tl
from leadflow.simulator.clock import MS_DAY, MS_HOUR, LocalCalendar, from_ms, to_ms
from leadflow.simulator.model import SimLead, SimulationConfig
from leadflow.simulator.people import PeopleFactory, Person, stable_hex, uuid_like
from leadflow.simulator.render import EVENT_NAMES, MESSAGE_TYPES, Cursor, Renderer

WEEKDAY_ARRIVALS = (1.0, 1.08, 1.1, 1.04, 0.88, 0.38, 0.32)  # Monday .. Sunday
GROWTH_OVER_WINDOW = 0.25  # the last day draws 25 % more leads than the first
DAILY_NOISE = 0.15  # sd of the lognormal day factor
EARLIEST_OFFSET_MS = 16 * MS_HOUR  # no zone's local midnight is earlier than UTC minus this


def arrival_counts(config: SimulationConfig, calendar: LocalCalendar) -> list[int]:
    """Leads per local day: weights by weekday, trend and noise, rounded to sum to `leads`."""
    rng = random.Random(stable_hex("arrivals", config.seed))
    weights = []
    for day in range(config.days):
        trend = 1.0 + GROWTH_OVER_WINDOW * day / max(config.days - 1, 1)
        noise = math.exp(rng.gauss(0.0, DAILY_NOISE))
        weights.append(WEEKDAY_ARRIVALS[calendar.weekday(day)] * trend * noise)
    total = sum(weights)
    exact = [config.leads * w / total for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(config.days), key=lambda d: (counts[d] - exact[d], d))
    for day in by_remainder[: config.leads - sum(counts)]:
        counts[day] += 1
    return counts


class Company:
    """A simulated B2B software company's leads and their tracking messages."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        start = config.start.astimezone(UTC)
        self._start = to_ms(start)
        self._end = self._start + config.days * MS_DAY
        self._calendar = LocalCalendar(start.date())
        self._day0 = to_ms(datetime.combine(start.date(), datetime.min.time(), tzinfo=UTC))
        self._counts = arrival_counts(config, self._calendar)
        self._builder = tl.TimelineBuilder(
            config.seed, self._calendar, self._start, self._end, config.emit_outcomes
        )

    @property
    def window(self) -> tuple[datetime, datetime]:
        """Start (inclusive) and end (exclusive) of the simulated window, aware UTC."""
        return from_ms(self._start), from_ms(self._end)

    def leads(self) -> Iterator[SimLead]:
        """Every lead with its ground truth, in lead-number order (by local arrival day)."""
        for _, lead, _ in self._stream():
            yield lead

    def messages(self) -> Iterator[dict[str, Any]]:
        """All leads' messages, globally sorted by timestamp.

        Ties in time are broken by the event code, then the lead number: deterministic.
        """
        queue = _DayQueue(Renderer(self.config.seed, self._builder.webinars))
        current = -1
        for day, lead, timeline in self._stream():
            if day != current:
                current = day
                # No lead still to be drawn acts before its local midnight in the easternmost zone.
                bound = self._day0 + day * MS_DAY - EARLIEST_OFFSET_MS
                while (ready := queue.first_day(bound)) is not None:
                    yield from queue.merge(ready)
            if timeline.events:
                queue.add(lead, array("q", timeline.events))
        while (ready := queue.first_day(None)) is not None:
            yield from queue.merge(ready)

    def lead_messages(self, lead: SimLead) -> list[dict[str, Any]]:
        """One lead's messages, time-sorted, exactly as they appear in `messages()`."""
        timeline = self._builder.build(_input_of_lead(lead, self._start))
        renderer = Renderer(self.config.seed, self._builder.webinars)
        cursor = renderer.cursor(lead, timeline.events)
        return [renderer.next(cursor) for _ in timeline.events]

    def summary(self) -> dict[str, Any]:
        """Counts and rates of the whole company (draws every lead; no message is rendered)."""
        return _Summary(self).result()

    def _stream(self) -> Iterator[tuple[int, SimLead, tl.Timeline]]:
        people = PeopleFactory(self.config.seed, self.config.leads, self._calendar)
        index = 0
        for day, count in enumerate(self._counts):
            for _ in range(count):
                person = people.person(index, day)
                person.first_touch = self._clamp(person.first_touch)
                timeline = self._builder.build(_input_of_person(person))
                yield day, self._lead(person, timeline), timeline
                index += 1

    def _clamp(self, t: int) -> int:
        """Keep first touches inside the window (whole days, so the local hour stays)."""
        while t < self._start:
            t += MS_DAY
        while t >= self._end:
            t -= MS_DAY
        return max(t, self._start)

    def _lead(self, person: Person, timeline: tl.Timeline) -> SimLead:
        index, account = person.index, person.account
        identified = timeline.identified_at is not None and timeline.identified_at < self._end
        return SimLead(
            key=f"sim-{index:06d}",
            anonymous_id=anonymous_id(self.config.seed, index),
            user_id=f"u-{index:06d}" if identified else None,
            email=person.email,
            traits=person.traits,
            account_id=account.id if account else None,
            account_traits=account.traits() if account else {},
            fit=person.fit,
            intent=person.intent,
            first_touch=from_ms(person.first_touch),
            mql_like_at=_dt(timeline.mql_like_at),
            opportunity_at=_dt(timeline.opportunity_at),
            customer_at=_dt(timeline.customer_at),
            deal_value=timeline.deal_value,
            index=index,
            persona=person.persona,
            identified_at=_dt(timeline.identified_at) if identified else None,
        )


def simulate(config: SimulationConfig) -> Company:
    """A simulated company for the config (cheap: leads and messages are drawn on demand)."""
    return Company(config)


def anonymous_id(seed: int, index: int) -> str:
    return uuid_like(stable_hex("anonymous", seed, index))


class _DayQueue:
    """A calendar queue: lead cursors parked by the UTC day of their next event.

    A day is merged with a small heap once no lead still to be drawn can act on it; a cursor
    whose next event falls on a later day is parked again under that day.
    """

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.parked: dict[int, list[tuple[int, int, Cursor]]] = {}

    def add(self, lead: SimLead, events: array[int]) -> None:
        self._park(events[0], lead.index, self.renderer.cursor(lead, events))

    def _park(self, value: int, index: int, cursor: Cursor) -> None:
        day = (value >> 20) // MS_DAY
        found = self.parked.get(day)
        if found is None:
            self.parked[day] = [(value, index, cursor)]
        else:
            found.append((value, index, cursor))

    def first_day(self, bound: int | None) -> int | None:
        """The first parked day if it ends at or before `bound` (None: no bound)."""
        if not self.parked:
            return None
        day = min(self.parked)
        return day if bound is None or (day + 1) * MS_DAY <= bound else None

    def merge(self, day: int) -> Iterator[dict[str, Any]]:
        """The day's messages in time order; cursors that go on are parked under a later day."""
        heap = self.parked.pop(day)
        heapq.heapify(heap)
        limit = ((day + 1) * MS_DAY) << 20
        render, heapreplace, heappop = self.renderer.next, heapq.heapreplace, heapq.heappop
        while heap:
            _, index, cursor = heap[0]
            yield render(cursor)
            if cursor.pos == len(cursor.events):
                heappop(heap)
                continue
            value = cursor.events[cursor.pos]
            if value < limit:
                heapreplace(heap, (value, index, cursor))
            else:
                heappop(heap)
                self._park(value, index, cursor)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def _input_of_person(person: Person) -> tl.LeadInput:
    traits = person.traits
    size = traits.get("company_size")
    return tl.LeadInput(
        number=person.index,
        persona=person.persona,
        fit=person.fit,
        intent=person.intent,
        first_touch=person.first_touch,
        tz=person.tz,
        source=str(traits["source"]),
        campaign=traits.get("utm_campaign") is not None,
        department=None if traits.get("department") is None else str(traits["department"]),
        employees=size if isinstance(size, int) else None,
        has_account=person.account is not None,
    )


def _input_of_lead(lead: SimLead, start: int) -> tl.LeadInput:
    traits = lead.traits
    size = traits.get("company_size")
    return tl.LeadInput(
        number=lead.index,
        persona=lead.persona,
        fit=lead.fit,
        intent=lead.intent,
        first_touch=max(to_ms(lead.first_touch), start),
        tz=str(traits["timezone"]),
        source=str(traits["source"]),
        campaign=traits.get("utm_campaign") is not None,
        department=None if traits.get("department") is None else str(traits["department"]),
        employees=size if isinstance(size, int) else None,
        has_account=lead.account_id is not None,
    )


class _Summary:
    """Accumulates the summary from the lead stream."""

    def __init__(self, company: Company) -> None:
        self.company = company
        self.by_type: Counter[str] = Counter()
        self.by_event: Counter[str] = Counter()
        self.rows: list[tuple[float, float, bool, bool, float]] = []
        self.identified = 0
        self.mql = 0
        self.after_window = [0, 0]  # opportunities, customers dated after the window
        _, self.end = company.window

    def result(self) -> dict[str, Any]:
        for _, lead, timeline in self.company._stream():
            self._add(lead, timeline)
        leads = len(self.rows)
        opportunities = sum(1 for row in self.rows if row[2])
        customers = sum(1 for row in self.rows if row[3])
        start, end = self.company.window
        return {
            "window": {"start": start.isoformat(), "end": end.isoformat()},
            "leads": leads,
            "identified": self.identified,
            "anonymous": leads - self.identified,
            "mql_like": self.mql,
            "messages": sum(self.by_type.values()),
            "messages_by_type": dict(sorted(self.by_type.items())),
            "events_by_name": dict(sorted(self.by_event.items())),
            "opportunities": opportunities,
            "customers": customers,
            "opportunities_after_window": self.after_window[0],
            "customers_after_window": self.after_window[1],
            "revenue": round(sum(row[4] for row in self.rows if row[3]), 2),
            "rates": {
                "identified": _rate(self.identified, leads),
                "opportunity_per_identified": _rate(opportunities, self.identified),
                "customer_per_opportunity": _rate(customers, opportunities),
            },
            "by_fit_quartile": _quartiles(self.rows, 0),
            "by_intent_quartile": _quartiles(self.rows, 1),
        }

    def _add(self, lead: SimLead, timeline: tl.Timeline) -> None:
        for value in timeline.events:
            code = value & 63
            self.by_type[MESSAGE_TYPES[code]] += 1
            if code in EVENT_NAMES:
                self.by_event[EVENT_NAMES[code]] += 1
        self.identified += lead.user_id is not None
        self.mql += lead.mql_like_at is not None
        self.after_window[0] += lead.opportunity_at is not None and lead.opportunity_at >= self.end
        self.after_window[1] += lead.customer_at is not None and lead.customer_at >= self.end
        won = lead.customer_at is not None
        amount = lead.deal_value or 0.0
        self.rows.append((lead.fit, lead.intent, lead.opportunity_at is not None, won, amount))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _quartiles(
    rows: list[tuple[float, float, bool, bool, float]], key: int
) -> list[dict[str, Any]]:
    ordered = sorted(rows, key=lambda row: row[key])
    out = []
    for q in range(4):
        part = ordered[q * len(ordered) // 4 : (q + 1) * len(ordered) // 4]
        if not part:
            continue
        opportunities = sum(1 for row in part if row[2])
        out.append(
            {
                "quartile": q + 1,
                "min": round(part[0][key], 4),
                "max": round(part[-1][key], 4),
                "leads": len(part),
                "opportunity_rate": _rate(opportunities, len(part)),
                "customer_rate": _rate(sum(1 for row in part if row[3]), len(part)),
            }
        )
    return out
