"""What leadflow's own messages cause, fed back into the event log as ordinary events.

Opens, clicks, replies, unsubscribes, bounces and coupon redemptions become track events of
the lead they concern, so the scoring model, the policy, segments and journey triggers treat
them like any other engagement. Each carries a stable message id (for example
``delivery:42:open``), so a repeated pixel hit or a redelivered callback never counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow.domain.events import NormalizedEvent
from leadflow.domain.identity import IdentityKey

# The event names leadflow writes; scoring rules and journey triggers match on them.
EMAIL_SENT = "Email Sent"
EMAIL_DELIVERED = "Email Delivered"
EMAIL_OPENED = "Email Opened"
EMAIL_CLICKED = "Email Link Clicked"
EMAIL_UNSUBSCRIBED = "Email Unsubscribed"
EMAIL_BOUNCED = "Email Bounced"
EMAIL_COMPLAINED = "Email Marked as Spam"
SMS_SENT = "SMS Sent"
SMS_DELIVERED = "SMS Delivered"
SMS_REPLIED = "SMS Replied"
SMS_OPTED_OUT = "SMS Opted Out"
SMS_OPTED_IN = "SMS Opted In"
COUPON_ISSUED = "Coupon Issued"
COUPON_REDEEMED = "Coupon Redeemed"

# The source that holds these events.
ACTIVITY_SOURCE = "leadflow-messages"

# Which identity of a lead an activity event is filed under, best first.
_KEY_ORDER = ("user_id", "email", "phone", "anonymous_id")


@dataclass(frozen=True, slots=True)
class Activity:
    lead_id: int
    name: str
    message_id: str
    at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


def _identity(keys: frozenset[IdentityKey]) -> IdentityKey | None:
    for kind in _KEY_ORDER:
        found = sorted(k.value for k in keys if k.kind == kind)
        if found:
            return IdentityKey(kind, found[0])
    return None


def activity_events(
    activities: Sequence[Activity],
    keys_of: Mapping[int, frozenset[IdentityKey]],
    received_at: datetime,
) -> tuple[list[NormalizedEvent], list[Activity]]:
    """Track events for the activities; the second list holds those whose lead has no
    identity left (erased), which are dropped."""
    events: list[NormalizedEvent] = []
    dropped: list[Activity] = []
    for activity in activities:
        key = _identity(keys_of.get(activity.lead_id, frozenset()))
        if key is None:
            dropped.append(activity)
            continue
        traits: dict[str, Any] = {}
        user_id = anonymous_id = None
        if key.kind == "user_id":
            user_id = key.value
        elif key.kind == "anonymous_id":
            anonymous_id = key.value
        else:
            traits[key.kind] = key.value
        raw = {
            "type": "track",
            "event": activity.name,
            "messageId": activity.message_id,
            "timestamp": activity.at.isoformat(),
            "properties": activity.properties,
            "context": {"library": {"name": "leadflow"}},
            "leadId": activity.lead_id,
        }
        events.append(
            NormalizedEvent(
                message_id=activity.message_id,
                type="track",
                name=activity.name,
                user_id=user_id,
                anonymous_id=anonymous_id,
                group_id=None,
                previous_id=None,
                timestamp=activity.at,
                original_timestamp=activity.at,
                sent_at=None,
                received_at=received_at,
                properties=dict(activity.properties),
                traits=traits,
                context={"library": {"name": "leadflow"}},
                raw=raw,
            )
        )
    return events, dropped
