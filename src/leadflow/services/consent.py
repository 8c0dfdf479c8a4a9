"""Double opt-in for email: a pending grant, a confirmation message, a confirmed grant.

The request records a ``pending`` consent (which stops marketing email, see
domain.consent.check_send) and queues one confirmation message in the delivery ledger; the
message carries a signed ``confirm_url``. Opening that link shows a page with a button
(link scanners prefetch GETs: a GET confirms nothing); the button's POST records the grant
with its proof: the message, the time and the address the click came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadflow.domain.consent import Channel, ConsentRecord, ConsentStatus
from leadflow.domain.errors import Conflict, NotFound, ValidationError
from leadflow.ports import ConsentRepository, DeliveryRecord, DeliveryRepository, NewDelivery
from leadflow.services.tokens import Purpose, Tokens

OPT_IN_KIND = "double_opt_in"


def request_opt_in(
    consents: ConsentRepository,
    deliveries: DeliveryRepository,
    lead_id: int,
    address: str | None,
    template: str,
    source: str,
    proof: dict[str, Any],
    at: datetime,
) -> DeliveryRecord:
    """Record the pending grant and queue the confirmation message."""
    if not address:
        raise ValidationError(f"lead {lead_id}: has no email address to confirm")
    if consents.suppressed(Channel.EMAIL, [address]):
        raise Conflict(f"{address} is on the suppression list: no confirmation is sent")
    current = consents.current([lead_id], Channel.EMAIL).get(lead_id, ConsentStatus.NONE)
    if current is ConsentStatus.GRANTED:
        raise Conflict(f"lead {lead_id}: email consent is already granted")
    record = ConsentRecord(lead_id, Channel.EMAIL, ConsentStatus.PENDING, source, at, proof)
    consents.record([record])
    new = NewDelivery(
        key=f"optin:{lead_id}:{int(at.timestamp() * 1000)}",
        lead_id=lead_id,
        channel=Channel.EMAIL.value,
        address=address,
        template=template,
        content={"kind": OPT_IN_KIND, "source": source},
    )
    delivery, _created = deliveries.create(new, at)
    return delivery


def opt_in_target(deliveries: DeliveryRepository, tokens: Tokens, token: str) -> DeliveryRecord:
    """The confirmation message a link belongs to."""
    delivery = deliveries.get(tokens.read(Purpose.CONFIRM, token).delivery_id)
    if delivery is None or delivery.content.get("kind") != OPT_IN_KIND or not delivery.address:
        raise NotFound("this link is no longer valid")
    return delivery


@dataclass(frozen=True, slots=True)
class Confirmed:
    lead_id: int
    address: str
    new: bool  # False when this link had confirmed already


def confirm_opt_in(
    consents: ConsentRepository,
    deliveries: DeliveryRepository,
    tokens: Tokens,
    token: str,
    ip: str | None,
    at: datetime,
    live: Callable[[int], int],
) -> Confirmed:
    """Grant email consent with the click as proof; a second click changes nothing."""
    delivery = opt_in_target(deliveries, tokens, token)
    assert delivery.address is not None
    lead_id = live(delivery.lead_id)
    first = deliveries.mark_first(delivery.id, "clicked_at", at)
    if first:
        proof: dict[str, object] = {
            "delivery_id": delivery.id,
            "confirmed_from": ip,
            "message": delivery.key,
        }
        grant = ConsentRecord(
            lead_id, Channel.EMAIL, ConsentStatus.GRANTED, "double_opt_in", at, proof
        )
        consents.record([grant])
    return Confirmed(lead_id, delivery.address, first)
