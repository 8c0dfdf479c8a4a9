"""Opens, clicks and unsubscribes from leadflow's email links.

Each hit names its delivery through a signed token. Hits that machines make are told apart
from people's, so they never inflate engagement: Apple Mail Privacy Protection fetches every
image through its proxy, security scanners follow every link seconds after delivery, link
previewers and HEAD probes look at URLs without a person behind them. Such hits are still
recorded, as events with ``properties.machine = true`` that the default scoring model does
not count, and they leave the delivery's ``opened_at``/``clicked_at`` untouched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadflow.domain.consent import Channel, ConsentRecord, ConsentStatus
from leadflow.domain.errors import NotFound
from leadflow.ports import ConsentRepository, DeliveryRecord, DeliveryRepository
from leadflow.services.activity import (
    EMAIL_CLICKED,
    EMAIL_OPENED,
    EMAIL_UNSUBSCRIBED,
    Activity,
)
from leadflow.services.email import HONEYPOT_INDEX, EmailSettings
from leadflow.services.tokens import Purpose, Tokens

# Substrings of the user agents of link scanners, previewers and HTTP libraries.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "messagelabs",
    "symantec",
    "trendmicro",
    "forcepoint",
    "fireeye",
    "ironport",
    "cisco",
    "sophos",
    "safelinks",
    "microsoft office",
    "ms-office",
    "bot",
    "spider",
    "crawler",
    "preview",
    "headless",
    "python-",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
)
# Apple Mail Privacy Protection: image fetches from Apple's network with a bare user agent.
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
APPLE_PROXY_AGENT = "mozilla/5.0"


DeliveryStore = DeliveryRepository


ConsentStore = ConsentRepository


@dataclass(frozen=True, slots=True)
class Hit:
    """A request on a tracking link, as the route saw it."""

    at: datetime
    user_agent: str = ""
    method: str = "GET"
    ip: str | None = None


def machine_reason(
    hit: Hit, sent_at: datetime | None, settings: EmailSettings, index: int | None = None
) -> str | None:
    """Why the hit looks like a machine's, or None when a person is the likely cause."""
    agent = " ".join(hit.user_agent.split()).lower()
    if index == HONEYPOT_INDEX:
        return "honeypot"
    if hit.method.upper() == "HEAD":
        return "head_request"
    if _apple_proxy(agent, hit.ip):
        return "apple_privacy_proxy"
    if not agent:
        return "no_user_agent"
    extra = tuple(a.lower() for a in settings.scanner_user_agents)
    if any(part in agent for part in SCANNER_AGENTS + extra):
        return "scanner_user_agent"
    if sent_at is None:
        return "before_send_confirmed"
    if (hit.at - sent_at).total_seconds() < settings.machine_seconds:
        return "seconds_after_send"
    return None


def _apple_proxy(agent: str, ip: str | None) -> bool:
    if agent == APPLE_PROXY_AGENT:
        return True
    try:
        return ip is not None and ipaddress.ip_address(ip) in APPLE_NETWORK
    except ValueError:
        return False


def _delivery(deliveries: DeliveryStore, delivery_id: int) -> DeliveryRecord:
    found = deliveries.get(delivery_id)
    if found is None or found.channel != Channel.EMAIL.value:
        raise NotFound("this link is no longer valid")
    return found


def _properties(delivery: DeliveryRecord, reason: str | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "delivery_id": delivery.id,
        "journey": delivery.journey,
        "step": delivery.step,
        "template": delivery.template,
        "machine": reason is not None,
    }
    if reason is not None:
        props["machine_reason"] = reason
    return {k: v for k, v in props.items() if v is not None}


def record_open(
    deliveries: DeliveryStore, tokens: Tokens, token: str, hit: Hit, settings: EmailSettings
) -> list[Activity]:
    """The open event of the pixel hit (InvalidToken, NotFound when the link is bad)."""
    delivery = _delivery(deliveries, tokens.read(Purpose.OPEN, token).delivery_id)
    reason = machine_reason(hit, delivery.sent_at, settings)
    if reason is None:
        deliveries.mark_first(delivery.id, "opened_at", hit.at)
    suffix = "" if reason is None else ":machine"
    return [
        Activity(
            lead_id=delivery.lead_id,
            name=EMAIL_OPENED,
            message_id=f"delivery:{delivery.id}:open{suffix}",
            at=hit.at,
            properties=_properties(delivery, reason),
        )
    ]


def record_click(
    deliveries: DeliveryStore, tokens: Tokens, token: str, hit: Hit, settings: EmailSettings
) -> tuple[str | None, list[Activity]]:
    """The stored destination of the clicked link (None for the honeypot) and the click
    event. The destination comes from the delivery's content, never from the request."""
    data = tokens.read(Purpose.CLICK, token)
    delivery = _delivery(deliveries, data.delivery_id)
    links = delivery.content.get("links") or []
    if data.index == HONEYPOT_INDEX:
        url = None
    elif 0 <= data.index < len(links) and isinstance(links[data.index], str):
        url = links[data.index]
    else:
        raise NotFound("this link is no longer valid")
    reason = machine_reason(hit, delivery.sent_at, settings, data.index)
    if reason is None:
        deliveries.mark_first(delivery.id, "clicked_at", hit.at)
    suffix = "" if reason is None else ":machine"
    name = "honeypot" if url is None else str(data.index)
    props = _properties(delivery, reason)
    props.update({"url": url, "link_index": data.index} if url is not None else {})
    activity = Activity(
        lead_id=delivery.lead_id,
        name=EMAIL_CLICKED,
        message_id=f"delivery:{delivery.id}:click:{name}{suffix}",
        at=hit.at,
        properties=props,
    )
    return url, [activity]


def unsubscribe_target(deliveries: DeliveryStore, tokens: Tokens, token: str) -> DeliveryRecord:
    """The delivery an unsubscribe link belongs to (for the confirmation page)."""
    delivery = _delivery(deliveries, tokens.read(Purpose.UNSUBSCRIBE, token).delivery_id)
    if not delivery.address:
        raise NotFound("this link is no longer valid")
    return delivery


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    address: str
    lead_id: int
    new: bool  # False when the address was already suppressed
    activities: list[Activity]


def unsubscribe(
    deliveries: DeliveryStore,
    consents: ConsentStore,
    tokens: Tokens,
    token: str,
    method: str,
    at: datetime,
    live_lead: Callable[[int], int],
) -> Unsubscribed:
    """Suppress the delivery's address at once and revoke the lead's email consent, with
    the delivery and the method (one-click or form) as proof."""
    delivery = unsubscribe_target(deliveries, tokens, token)
    address = str(delivery.address)
    lead_id = live_lead(delivery.lead_id)
    detail = f"{method} unsubscribe from delivery {delivery.id}"
    # asked first: the repository's own answer is unreliable on PostgreSQL (rowcount -1)
    if consents.suppressed(Channel.EMAIL, [address]):
        return Unsubscribed(address, lead_id, False, [])
    new = consents.suppress(Channel.EMAIL, address, "unsubscribed", at, lead_id, detail)
    if not new:
        return Unsubscribed(address, lead_id, False, [])
    deliveries.mark_first(delivery.id, "unsubscribed_at", at)
    proof = {"delivery_id": delivery.id, "method": method, "address": address}
    consents.record(
        [ConsentRecord(lead_id, Channel.EMAIL, ConsentStatus.REVOKED, "unsubscribe", at, proof)]
    )
    activity = Activity(
        lead_id=lead_id,
        name=EMAIL_UNSUBSCRIBED,
        message_id=f"delivery:{delivery.id}:unsubscribe",
        at=at,
        properties={"delivery_id": delivery.id, "method": method},
    )
    return Unsubscribed(address, lead_id, True, [activity])
