"""Turning packed timeline events into Segment-spec messages (plain, JSON-ready dicts).

A `Cursor` walks one lead's timeline and remembers what a browser would: the last page (for
referrers) and whether each device has identified. Message ids are the lead's id prefix
(derived from the seed and lead number) followed by the event's position in the timeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from leadflow.simulator import catalog as cat
from leadflow.simulator import events as ev
from leadflow.simulator.clock import MS_DAY, IsoFormatter
from leadflow.simulator.model import SimLead
from leadflow.simulator.people import uuid_like
from leadflow.simulator.site import (
    ASSETS,
    EXTERNAL_REFERRERS,
    FORMS,
    NURTURE,
    PAGES,
    SITE,
    SOURCES,
    WEBINARS,
)

Message = dict[str, Any]
IDENTIFY_TRAITS = (
    "email",
    "first_name",
    "last_name",
    "title",
    "phone",
    "company",
    "industry",
    "company_size",
    "country",
    "timezone",
)
EVENT_NAMES = {
    ev.CONTENT_DOWNLOADED: "Content Downloaded",
    ev.WEBINAR_REGISTERED: "Webinar Registered",
    ev.WEBINAR_ATTENDED: "Webinar Attended",
    ev.EMAIL_OPENED: "Email Opened",
    ev.EMAIL_CLICKED: "Email Clicked",
    ev.FORM_SUBMITTED: "Form Submitted",
    ev.DEMO_REQUESTED: "Demo Requested",
    ev.UNSUBSCRIBED: "Unsubscribed",
    ev.PRICING_CALCULATOR_USED: "Pricing Calculator Used",
    ev.OPPORTUNITY_CREATED: "Opportunity Created",
    ev.DEAL_WON: "Deal Won",
    ev.DEAL_LOST: "Deal Lost",
}
MESSAGE_TYPES = {code: "track" for code in EVENT_NAMES}
MESSAGE_TYPES.update(
    {ev.PAGE: "page", ev.IDENTIFY: "identify", ev.GROUP: "group", ev.ALIAS: "alias"}
)
_TYPES = tuple(MESSAGE_TYPES[code] for code in range(16))
_LOST_REASONS = ("no_budget", "chose_competitor", "no_decision", "timing")
_PLANS = ((25, "starter"), (150, "growth"), (10**9, "enterprise"))
_EMAIL_MEDIUM = ("nurture", "email")
_URLS = tuple(SITE + page.path for page in PAGES)
_CLOCK = tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86_400))
_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))
_LOCALES: dict[object, tuple[str, ...]] = {c.code: c.locales for c in cat.COUNTRIES}


def messy_email(email: str, variant: int) -> str:
    """The address as a careless form fill sends it: odd case and surrounding whitespace."""
    local, _, domain = email.partition("@")
    if variant % 2:
        return f"  {local.title()}@{domain.capitalize()} "
    return f"{email.upper()}\t"


class Cursor:
    """Position in one lead's timeline plus the browser-side state of its devices."""

    __slots__ = (
        "anon",
        "campaign",
        "deal_value",
        "email",
        "events",
        "keep_lead_until",
        "known",
        "last_t",
        "last_url",
        "lead",
        "locale",
        "mid",
        "pos",
        "query",
        "referrer",
        "tz",
        "ua",
        "uid",
    )

    def __init__(self, seed: int, lead: SimLead, events: Sequence[int]) -> None:
        index = lead.index
        h = hashlib.blake2b(f"message:{seed}:{index}".encode(), digest_size=32).hexdigest()
        self.mid = uuid_like(h[:32])[:32]  # 4 hex digits of the event number complete the id
        self.anon = (lead.anonymous_id, uuid_like(h[32:]))
        mobile = cat.USER_AGENTS_MOBILE
        desktop = cat.USER_AGENTS_DESKTOP
        self.ua = (desktop[int(h[:4], 16) % len(desktop)], mobile[int(h[4:8], 16) % len(mobile)])
        locales = _LOCALES[lead.traits["country"]]
        self.locale = locales[int(h[8:10], 16) % len(locales)]
        self.tz = str(lead.traits["timezone"])
        self.uid = lead.user_id or f"u-{index:06d}"
        self.email = str(lead.email)
        if int(h[10:14], 16) % 50 == 0:  # about 2 % send their address carelessly
            self.email = messy_email(self.email, int(h[14:16], 16))
        self.events = events
        self.pos = 0
        self.keep_lead_until = _last_identity_event(events)
        self.lead: SimLead | None = lead if self.keep_lead_until >= 0 else None
        self.deal_value = lead.deal_value
        # Per device (0: first, 1: second): identified yet, last page time and URL. A bit mask
        # and tuples of strings leave fewer objects for the cycle collector to walk.
        self.known = 0
        self.last_t = (0, 0)
        self.last_url = ("", "")
        source = SOURCES[str(lead.traits["source"])]
        self.referrer = source.referrer
        self.campaign: tuple[str, str, str] | None = None
        self.query = ""
        if lead.traits.get("utm_campaign"):
            utm = str(lead.traits["utm_campaign"])
            self.campaign = (utm, source.utm_source, source.utm_medium)
            self.query = _query(utm, source.utm_source, source.utm_medium)


def _last_identity_event(events: Sequence[int]) -> int:
    for i in range(len(events) - 1, -1, -1):
        if events[i] & 63 in (ev.IDENTIFY, ev.GROUP):
            return i
    return -1


def _query(name: str, source: str, medium: str) -> str:
    return f"?utm_source={source}&utm_medium={medium}&utm_campaign={name}"


class Renderer:
    """Renders packed events of cursors into messages; one per simulated company."""

    def __init__(self, seed: int, webinars: list[int]) -> None:
        self.seed = seed
        self.iso = IsoFormatter().format
        self._days: dict[int, str] = {}
        self.webinars = webinars
        handlers: list[Callable[[Cursor, Message, Message, int], None]] = [self._track] * 16
        handlers[ev.PAGE] = self._page
        handlers[ev.IDENTIFY] = self._identify
        handlers[ev.GROUP] = self._group
        handlers[ev.ALIAS] = self._alias
        self._handlers = tuple(handlers)

    def cursor(self, lead: SimLead, events: Sequence[int]) -> Cursor:
        return Cursor(self.seed, lead, events)

    def _day(self, day: int) -> str:
        prefix = self._days[day] = self.iso(day * MS_DAY)[:11]
        return prefix

    def next(self, cur: Cursor) -> Message:
        """Render the cursor's current event and advance it."""
        pos = cur.pos
        value = cur.events[pos]
        code, dev = value & 63, (value >> 6) & 1
        msg: Message = {
            "type": _TYPES[code],
            "messageId": f"{cur.mid}{pos:04x}",
            "anonymousId": cur.anon[dev],
        }
        if code == ev.IDENTIFY:
            cur.known |= 1 << dev
        if cur.known >> dev & 1 or code >= ev.OPPORTUNITY_CREATED:
            msg["userId"] = cur.uid
        day, rest = divmod(value >> 20, MS_DAY)
        prefix = self._days.get(day) or self._day(day)
        second, milli = divmod(rest, 1000)
        msg["timestamp"] = prefix + _CLOCK[second] + _MILLIS[milli]
        context: Message = {"userAgent": cur.ua[dev], "locale": cur.locale, "timezone": cur.tz}
        if code == ev.PAGE:
            self._page(cur, msg, context, value)
        else:
            self._handlers[code](cur, msg, context, value)
        msg["context"] = context
        if pos == cur.keep_lead_until:
            cur.lead = None  # identity traits are no longer needed: free them early
        cur.pos = pos + 1
        return msg

    def _page(self, cur: Cursor, msg: Message, context: Message, value: int) -> None:
        t, dev = value >> 20, (value >> 6) & 1
        page = PAGES[(value >> 7) & 127]
        campaign_kind, email = (value >> 14) & 3, value >> 16 & 15
        path = page.path
        url = _URLS[(value >> 7) & 127]
        if campaign_kind == ev.CAMP_SOURCE and cur.campaign:
            url += cur.query
            name, source, medium = cur.campaign
            context["campaign"] = {"name": name, "source": source, "medium": medium}
        elif campaign_kind == ev.CAMP_EMAIL:
            name = NURTURE[email][0]
            url += _query(name, *_EMAIL_MEDIUM)
            context["campaign"] = {"name": name, "source": "nurture", "medium": "email"}
        last_t = cur.last_t[dev]
        if campaign_kind == ev.CAMP_SOURCE or (campaign_kind == 0 and not last_t):
            referrer = cur.referrer
        elif campaign_kind == ev.CAMP_EMAIL:
            referrer = ""
        elif t - last_t < ev.SESSION_GAP_MS:
            referrer = cur.last_url[dev]
        else:
            referrer = EXTERNAL_REFERRERS[(cur.pos * 7 + t) % len(EXTERNAL_REFERRERS)]
        if dev:
            cur.last_t, cur.last_url = (cur.last_t[0], t), (cur.last_url[0], url)
        else:
            cur.last_t, cur.last_url = (t, cur.last_t[1]), (url, cur.last_url[1])
        title = page.title
        msg["name"] = page.name
        msg["properties"] = {"path": path, "url": url, "title": title, "referrer": referrer}
        context["page"] = {"path": path, "url": url, "title": title, "referrer": referrer}

    def _track(self, cur: Cursor, msg: Message, context: Message, value: int) -> None:
        code, arg = value & 63, (value >> 7) & 0x1FFF
        msg["event"] = EVENT_NAMES[code]
        props: Message
        if code == ev.CONTENT_DOWNLOADED:
            asset = ASSETS[arg]
            props = {"asset": asset.slug, "asset_type": asset.kind, "title": asset.title}
        elif code in (ev.WEBINAR_REGISTERED, ev.WEBINAR_ATTENDED):
            slug, title = WEBINARS[arg % len(WEBINARS)]
            props = {"webinar": slug, "title": title, "webinar_id": f"wb-{arg:03d}"}
            props["starts_at"] = self.iso(self.webinars[arg])
        elif code in (ev.EMAIL_OPENED, ev.EMAIL_CLICKED, ev.UNSUBSCRIBED):
            name, subject, path = NURTURE[arg]
            props = {"campaign": name, "subject": subject}
            if code == ev.EMAIL_CLICKED:
                props["url"] = SITE + path + _query(name, *_EMAIL_MEDIUM)
            context["campaign"] = {"name": name, "source": "nurture", "medium": "email"}
        elif code == ev.FORM_SUBMITTED:
            props = {"form": FORMS[arg]}
        elif code == ev.PRICING_CALCULATOR_USED:
            plan = next(name for limit, name in _PLANS if arg <= limit)
            props = {"seats": arg, "plan": plan}
        elif code == ev.DEMO_REQUESTED:
            props = {"form": "demo_request", "path": "/demo"}
        else:
            props = {"amount": cur.deal_value, "currency": "USD"}
            if code == ev.DEAL_LOST:
                props["reason"] = _LOST_REASONS[cur.pos % len(_LOST_REASONS)]
        msg["properties"] = props

    def _identify(self, cur: Cursor, msg: Message, context: Message, value: int) -> None:
        traits = cur.lead.traits if cur.lead else {}
        out: Message = {key: traits[key] for key in IDENTIFY_TRAITS if traits.get(key) is not None}
        out["email"] = cur.email
        msg["traits"] = out

    def _group(self, cur: Cursor, msg: Message, context: Message, value: int) -> None:
        lead = cur.lead
        msg["groupId"] = lead.account_id if lead else None
        msg["traits"] = dict(lead.account_traits) if lead else {}

    def _alias(self, cur: Cursor, msg: Message, context: Message, value: int) -> None:
        msg["previousId"] = cur.anon[(value >> 6) & 1]
        msg["userId"] = cur.uid
