"""One lead's activity over time and the ground-truth outcome that follows from it.

A timeline is a list of packed integers (see events.py), one per message to emit, drawn from one
random stream per lead (seeded by the company seed and the lead number), so a lead's timeline
can be rebuilt on its own. The hidden conversion decision reads the same events a scoring
engine would see.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple

from leadflow.simulator import model
from leadflow.simulator.clock import MS_DAY, MS_HOUR, MS_MINUTE, MS_SECOND, LocalCalendar
from leadflow.simulator.events import (
    ALIAS,
    CAMP_EMAIL,
    CAMP_SOURCE,
    CONTENT_DOWNLOADED,
    DEAL_LOST,
    DEAL_WON,
    DEMO_REQUESTED,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    FORM_SUBMITTED,
    GROUP,
    HORIZON_DAYS,
    IDENTIFY,
    MODE_TABLES,
    OPPORTUNITY_CREATED,
    PAGE,
    PRICING_CALCULATOR_USED,
    UNSUBSCRIBED,
    WEBINAR_ATTENDED,
    WEBINAR_REGISTERED,
    engagement_points,
    exponential,
    pack,
    page_arg,
    poisson,
    webinar_schedule,
)
from leadflow.simulator.people import diurnal_hours, pick, stable_hex
from leadflow.simulator.site import (
    ASSETS,
    CASE_STUDIES,
    FIRST_PAGE,
    FORM_ID,
    MARKETING_FORMS,
    NURTURE,
    NURTURE_PAGE,
    PAGE_ID,
    PAGES_BY_CATEGORY,
    RESOURCE_PAGE,
    WEBINAR_PAGE,
    WEBINARS,
)

_PRICING, _DEMO, _CONTACT = PAGE_ID["/pricing"], PAGE_ID["/demo"], PAGE_ID["/contact"]
# session kinds
_FIRST, _VISIT, _JOURNEY, _FINAL, _EMAIL, _DEVICE2 = range(6)


class LeadInput(NamedTuple):
    """What a timeline depends on (all of it recoverable from a SimLead)."""

    number: int  # the lead index
    persona: str
    fit: float
    intent: float
    first_touch: int
    tz: str
    source: str
    campaign: bool
    department: str | None
    employees: int | None
    has_account: bool


@dataclass(slots=True)
class Timeline:
    events: list[int]  # packed, time-sorted, exactly the messages to emit
    identified_at: int | None
    mql_like_at: int | None
    opportunity_at: int | None
    customer_at: int | None
    deal_value: float | None
    engagement: float | None  # observed engagement (0..1) when the opportunity was decided


@dataclass(slots=True)
class _Run:
    """Scratch state while one lead's timeline is drawn."""

    lead: LeadInput
    rng: random.Random
    day0: int
    habit: str
    shy: bool
    events: list[int] = field(default_factory=list)
    identified_at: int | None = None
    enrolled_at: int | None = None
    id_session: int = 0
    mql_at: int | None = None

    def add(self, t: int, code: int, arg: int = 0, dev: int = 0) -> None:
        self.events.append((t << 20) | (arg << 7) | (dev << 6) | code)


class TimelineBuilder:
    """Draws timelines for the leads of one simulated company."""

    def __init__(
        self, seed: int, calendar: LocalCalendar, start: int, end: int, emit_outcomes: bool
    ) -> None:
        self.seed = seed
        self.calendar = calendar
        self.start = start
        self.end = end
        self.horizon = end + HORIZON_DAYS * MS_DAY
        self.emit_outcomes = emit_outcomes
        self.webinars = webinar_schedule(start, self.horizon)

    def build(self, lead: LeadInput) -> Timeline:
        rng = random.Random(stable_hex("timeline", self.seed, lead.number))
        day0 = self.calendar.local_day(lead.tz, lead.first_touch)
        run = _Run(lead, rng, day0, _habit(rng, lead), _shy(rng, lead))
        sessions = self._plan(run)
        run.id_session = 0 if rng.random() < 0.55 else int(rng.random() * len(sessions))
        for i, (t, mode, campaign, kind) in enumerate(sessions):
            self._session(run, i, t, mode, campaign, kind)
        self._nurture(run)
        self._second_device(run)
        opportunity, customer, lost, value, engaged = self._outcomes(run)
        events = [v for v in run.events if (v >> 20) < self.end]
        if self.emit_outcomes and opportunity is not None:
            events.append(pack(opportunity, OPPORTUNITY_CREATED))
            closed, code = (customer, DEAL_WON) if customer is not None else (lost, DEAL_LOST)
            if closed is not None:
                events.append(pack(closed, code))
        events.sort()
        return Timeline(
            events, run.identified_at, run.mql_at, opportunity, customer, value, engaged
        )

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, run: _Run) -> list[tuple[int, str, int, int]]:
        """Session starts: the first touch, decaying return visits, maybe a buying journey."""
        lead, rng = run.lead, run.rng
        first_mode = run.habit
        sessions = [(lead.first_touch, first_mode, CAMP_SOURCE if lead.campaign else 0, _FIRST)]
        if lead.persona == "job_seeker":
            episodes, tau = 0.4 + 1.5 * lead.intent, 4.0
        else:
            episodes, tau = 0.15 + 3.5 * lead.intent**1.5, 5.0 + 35.0 * lead.intent
        for _ in range(poisson(rng, episodes)):
            age = exponential(rng, tau)
            for _ in range(5):
                t = self._local_time(run, age)
                if lead.first_touch < t < self.horizon:
                    sessions.append((t, run.habit, 0, _VISIT))
                if rng.random() >= 0.25 + 0.4 * lead.intent:
                    break
                age += exponential(rng, 0.8)
        if rng.random() < model.journey_probability(lead.fit, lead.intent, lead.persona):
            sessions.extend(self._journey(run))
        sessions.sort()
        return sessions

    def _journey(self, run: _Run) -> list[tuple[int, str, int, int]]:
        """A buying journey: sessions that grow denser towards a pricing/demo finale."""
        lead, rng = run.lead, run.rng
        hot = rng.random() < 0.3
        start_age = 0.0 if hot else exponential(rng, 18.0)
        length = 0.5 + exponential(rng, 5.0)
        count = 2 + poisson(rng, 1.5 * lead.intent)
        times = []
        for _ in range(count):
            t = self._local_time(run, start_age + length * math.sqrt(rng.random()))
            if lead.first_touch < t < self.horizon:
                times.append(t)
        times.sort()
        return [
            (t, "buying", 0, _FINAL if i == len(times) - 1 else _JOURNEY)
            for i, t in enumerate(times)
        ]

    def _local_time(self, run: _Run, age_days: float) -> int:
        """An instant `age_days` after the first touch's local day, at a plausible local hour."""
        rng, cal = run.rng, self.calendar
        day = run.day0 + int(age_days)
        weekday = cal.weekday(day)
        if weekday >= 5 and rng.random() < (0.75 if run.lead.persona == "buyer" else 0.3):
            day += 7 - weekday
        hours = diurnal_hours(rng, run.lead.persona)
        return cal.midnight(run.lead.tz, day) + int(hours * MS_HOUR)

    def _business_time(self, run: _Run, at: int) -> int:
        """The first local working-hours instant at or after `at` (weekdays, 9-17 h)."""
        cal, tz = self.calendar, run.lead.tz
        day = cal.local_day(tz, at)
        for _ in range(8):
            if cal.weekday(day) < 5:
                t = cal.midnight(tz, day) + int((9.0 + 8.0 * run.rng.random()) * MS_HOUR)
                if t >= at:
                    return t
            day += 1
        return at

    # -- sessions and actions ---------------------------------------------------------------

    def _session(
        self, run: _Run, index: int, t: int, mode: str, campaign: int, kind: int, email: int = 0
    ) -> int:
        lead, rng = run.lead, run.rng
        dev = 1 if kind == _DEVICE2 else 0
        t = self._pages(run, t, mode, self._landing(run, kind, mode, email), campaign, email, dev)
        if kind == _FINAL:
            return self._finale(run, t)
        if kind == _DEVICE2:
            run.add(t, FORM_SUBMITTED, FORM_ID["newsletter"], dev)
            run.add(t + 300, IDENTIFY, 0, dev)
            return t
        if kind == _FIRST and lead.source in ("webinar_partner", "event"):
            return (
                self._registration(run, t)
                if lead.source == "webinar_partner"
                else self._capture(run, t)
            )
        if run.shy and run.identified_at is None:
            return t
        if run.identified_at is None and index == run.id_session:
            return self._action(run, t)
        if rng.random() < 0.05 + 0.25 * lead.intent:
            return self._action(run, t)
        return t

    def _landing(self, run: _Run, kind: int, mode: str, email: int) -> int:
        if kind == _EMAIL:
            return NURTURE_PAGE[email]
        if kind == _FIRST and run.lead.persona == "buyer":
            category = pick(run.rng, FIRST_PAGE[run.lead.source])
            if category == "webinar":
                return WEBINAR_PAGE[self._next_webinar(run.lead.first_touch) % len(WEBINARS)]
            pages = PAGES_BY_CATEGORY[category]
            return pages[int(run.rng.random() * len(pages))]
        return self._page(run.rng, mode)

    @staticmethod
    def _page(rng: random.Random, mode: str) -> int:
        table = MODE_TABLES[mode]
        return table[int(rng.random() * len(table))]

    @staticmethod
    def _pages(run: _Run, t: int, mode: str, page: int, campaign: int, email: int, dev: int) -> int:
        """The page views of one visit, from its landing page; returns when the visit ends."""
        rng, append = run.rng, run.events.append
        random_, log = rng.random, math.log
        pages = 1 + poisson(rng, 0.6 + 2.5 * run.lead.intent) + (2 if mode == "buying" else 0)
        table = MODE_TABLES[mode]
        size = len(table)
        flags = (dev << 6) | (((campaign << 7) | (email << 9)) << 7)
        for _ in range(min(pages, 12)):
            append((t << 20) | (page << 7) | flags)
            if page == _PRICING and mode == "buying" and random_() < 0.3:
                seats = 5 + int(random_() * 495)
                append(((t + 20 * MS_SECOND) << 20) | (seats << 7) | PRICING_CALCULATOR_USED)
            t += 8 * MS_SECOND - int(log(1.0 - random_()) * 55 * MS_SECOND)  # + Exp(55 s)
            page = table[int(random_() * size)]
            flags = dev << 6
        return t

    def _action(self, run: _Run, t: int) -> int:
        """A conversion action (a form) at the end of a visit; it identifies the visitor."""
        rng, persona = run.rng, run.lead.persona
        r = rng.random()
        if persona == "job_seeker":
            jobs = PAGES_BY_CATEGORY["careers_job"]
            if r < 0.6:
                return self._form(run, t, jobs[int(rng.random() * len(jobs))], "job_application")
            return self._form(run, t, self._page(rng, "study"), "newsletter")
        if r < 0.45:
            return self._download(run, t)
        if r < 0.68:
            return self._registration(run, t)
        if r < 0.88 and run.enrolled_at is None:
            blog = PAGES_BY_CATEGORY["blog"]
            return self._form(run, t, blog[int(rng.random() * len(blog))], "newsletter")
        if persona == "buyer":
            return self._form(run, t, _CONTACT, "contact_sales")
        return self._download(run, t)

    def _form(self, run: _Run, t: int, page: int, form: str) -> int:
        run.add(t, PAGE, page_arg(page))
        t += 20 * MS_SECOND + int(run.rng.random() * 60 * MS_SECOND)
        run.add(t, FORM_SUBMITTED, FORM_ID[form])
        self._identify(run, t + 300, FORM_ID[form])
        return t + MS_SECOND

    def _identify(self, run: _Run, t: int, form: int) -> None:
        rng = run.rng
        if run.identified_at is None:
            run.identified_at = t
            run.add(t, IDENTIFY)
            if rng.random() < 0.1:
                run.add(t + 150, ALIAS)
            if run.lead.has_account:
                run.add(t + 400, GROUP)
        elif rng.random() < 0.5:
            run.add(t, IDENTIFY)
        if form in MARKETING_FORMS and run.enrolled_at is None:
            run.enrolled_at = t

    def _download(self, run: _Run, t: int) -> int:
        rng = run.rng
        if rng.random() < 0.2 + 0.4 * run.lead.intent:
            asset = CASE_STUDIES[int(rng.random() * len(CASE_STUDIES))]
        else:
            asset = int(rng.random() * len(ASSETS))
        t = self._form(run, t, RESOURCE_PAGE[asset], "content_download")
        run.add(t + 500, CONTENT_DOWNLOADED, asset)
        return t + MS_SECOND

    def _registration(self, run: _Run, t: int) -> int:
        webinar = self._next_webinar(t + MS_DAY)
        if webinar >= len(self.webinars):
            return self._download(run, t)
        t = self._form(run, t, WEBINAR_PAGE[webinar % len(WEBINARS)], "webinar_registration")
        run.add(t + 500, WEBINAR_REGISTERED, webinar)
        if run.rng.random() < 0.35 + 0.4 * run.lead.intent:
            joined = self.webinars[webinar] + (1 + int(run.rng.random() * 11)) * MS_MINUTE
            run.add(joined, WEBINAR_ATTENDED, webinar)
        return t + MS_SECOND

    def _capture(self, run: _Run, t: int) -> int:
        """Trade-show leads: most are captured with their badge at the booth."""
        if run.rng.random() < 0.85:
            run.add(t + MS_SECOND, FORM_SUBMITTED, FORM_ID["event_lead_capture"])
            self._identify(run, t + 1300, FORM_ID["event_lead_capture"])
        return t + 2 * MS_SECOND

    def _finale(self, run: _Run, t: int) -> int:
        """End of a buying journey: pricing, maybe the calculator, maybe a demo request."""
        rng, lead = run.rng, run.lead
        run.add(t, PAGE, page_arg(_PRICING))
        run.mql_at = t
        if rng.random() < 0.5:
            run.add(t + 40 * MS_SECOND, PRICING_CALCULATOR_USED, 5 + int(rng.random() * 495))
        if rng.random() < (0.3 + 0.5 * lead.fit) * (0.5 if run.shy else 1.0):
            t = self._form(run, t + 90 * MS_SECOND, _DEMO, "demo_request")
            run.add(t, DEMO_REQUESTED)
            run.mql_at = t
        return t + MS_SECOND

    def _next_webinar(self, after: int) -> int:
        return bisect_right(self.webinars, after)

    # -- after identification ---------------------------------------------------------------

    def _nurture(self, run: _Run) -> None:
        """The nurture e-mail sequence: opens, clicks that bring the lead back, unsubscribes."""
        if run.enrolled_at is None:
            return
        rng, cal, lead = run.rng, self.calendar, run.lead
        day = cal.local_day(lead.tz, run.enrolled_at)
        for k in range(len(NURTURE)):
            send_day = day + 2 + 6 * k + (rng.random() < 0.5)
            weekday = cal.weekday(send_day)
            send_day += 7 - weekday if weekday >= 5 else 0
            sent = cal.midnight(lead.tz, send_day) + int((8.5 + 2.5 * rng.random()) * MS_HOUR)
            if sent >= self.horizon:
                return
            if rng.random() >= 0.15 + 0.5 * lead.intent - 0.02 * k:
                continue
            opened = sent + int(exponential(rng, 2.5) * MS_HOUR)
            run.add(opened, EMAIL_OPENED, k)
            if rng.random() < 0.1 + 0.45 * lead.intent:
                clicked = opened + 10 * MS_SECOND + int(rng.random() * 80 * MS_SECOND)
                run.add(clicked, EMAIL_CLICKED, k)
                self._session(run, -1, clicked + 3 * MS_SECOND, run.habit, CAMP_EMAIL, _EMAIL, k)
            elif rng.random() < 0.03 + 0.06 * (1.0 - lead.intent):
                run.add(opened + 25 * MS_SECOND, UNSUBSCRIBED, k)
                return

    def _second_device(self, run: _Run) -> None:
        """A few identified leads come back on another device and identify there too."""
        if run.identified_at is None or run.lead.persona != "buyer" or run.rng.random() >= 0.06:
            return
        midnight = self.calendar.midnight(run.lead.tz, run.day0)
        age = (run.identified_at - midnight) / MS_DAY + 1.0 + exponential(run.rng, 10.0)
        t = self._local_time(run, age)
        if t < self.horizon:
            done = self._session(run, -1, t, run.habit, 0, _DEVICE2)
            if t < self.end <= done + 300:  # the window would end before the device identifies
                run.events = [v for v in run.events if not v >> 6 & 1]

    # -- ground truth -----------------------------------------------------------------------

    def _outcomes(
        self, run: _Run
    ) -> tuple[int | None, int | None, int | None, float | None, float | None]:
        """Opportunity, customer, lost times, deal value and the engagement seen at decision."""
        rng, lead = run.rng, run.lead
        decided = run.mql_at
        if decided is not None and run.identified_at is not None and run.identified_at <= decided:
            base = None
        elif run.identified_at is not None and lead.persona == "buyer":
            decided = run.identified_at + int(exponential(rng, 20.0) * MS_DAY)
            base = model.OUTBOUND_RATE * lead.fit**2
            if decided >= self.horizon:
                return None, None, None, None, None
        else:
            return None, None, None, None, None
        points = engagement_points(run.events, decided, model.ENGAGEMENT_HALF_LIFE_DAYS)
        engaged = model.squash_engagement(points)
        noise = rng.gauss(0.0, model.OPP_NOISE)
        chance = (
            base
            if base is not None
            else model.sigmoid(model.opportunity_logit(lead.fit, engaged, noise))
        )
        if rng.random() >= chance:
            return None, None, None, None, engaged
        opportunity = self._business_time(
            run, decided + int((1.0 + exponential(rng, 5.0)) * MS_DAY)
        )
        won = rng.random() < model.sigmoid(
            model.win_logit(lead.fit, engaged, rng.gauss(0.0, model.WIN_NOISE))
        )
        value = model.deal_value(lead.employees, math.exp(rng.gauss(0.0, model.DEAL_SPREAD)))
        scale = 8.0 + 5.0 * math.log10(max(lead.employees or 10, 10))
        cycle = (14.0 + rng.gammavariate(2.0, scale)) * MS_DAY
        lost = opportunity + int((10.0 + rng.gammavariate(2.0, 12.0)) * MS_DAY)
        customer = self._business_time(run, opportunity + int(cycle)) if won else None
        return opportunity, customer, lost, value, engaged


def _habit(rng: random.Random, lead: LeadInput) -> str:
    if lead.persona == "student":
        return "study"
    if lead.persona == "job_seeker":
        return "careers"
    if lead.department in ("engineering", "it") and rng.random() < 0.6:
        return "research"
    return "browse"


def _shy(rng: random.Random, lead: LeadInput) -> bool:
    """Visitors who fill no form unless they want a demo (they stay anonymous)."""
    if lead.source in ("webinar_partner", "event"):
        return False
    share = {"student": 0.5, "job_seeker": 0.4}.get(lead.persona, 0.5 + 0.4 * lead.intent)
    return rng.random() >= share
