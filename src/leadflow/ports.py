"""The interfaces the services depend on; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from leadflow.domain.consent import Channel, ConsentRecord, ConsentStatus
from leadflow.domain.identity import IdentityConflict, IdentityKey, Merge
from leadflow.domain.lifecycle import StageChange
from leadflow.domain.profiles import Profile
from leadflow.domain.scoring import ScoredEvent


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    id: int
    name: str
    write_key: str
    created_at: datetime


@dataclass(slots=True)
class NewLead:
    """A lead to create; ``ref`` is the batch-local (negative) id used until it exists."""

    ref: int
    created_at: datetime
    first_seen_at: datetime
    source_id: int | None
    first_touch: dict[str, Any]


@dataclass(slots=True)
class LeadTouch:
    """What one batch changes on an existing lead."""

    lead_id: int
    first_seen_at: datetime
    last_seen_at: datetime
    traits: dict[str, Any]
    email: str | None = None
    phone: str | None = None
    account_group_id: str | None = None
    first_touch: dict[str, Any] | None = None  # of the earliest message, kept if earliest ever
    first_source_id: int | None = None


@dataclass(slots=True)
class EventRow:
    source_id: int
    message_id: str
    lead_id: int
    type: str
    name: str | None
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]
    raw: dict[str, Any]


@dataclass(slots=True)
class LeadRecord:
    """A lead as ingestion and qualification read and write it, under a row lock."""

    id: int
    stage: str
    version: int
    profile: Profile
    account_traits: dict[str, Any]
    score_state: dict[str, Any]
    fit_score: float
    fit_grade: str | None
    engagement_score: float
    p_convert: float | None
    scored_at: datetime | None
    model_version: str | None
    mql_at: datetime | None
    sla_due_at: datetime | None
    next_review_at: datetime | None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    lead_id: int
    event_id: int
    model_version: str
    rule_id: str
    points: float
    counted: bool
    reason: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class OutboxRow:
    topic: str
    lead_id: int | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """A rendered email, ready for a transport. ``key`` is the delivery's idempotency key."""

    key: str
    to: str
    from_addr: str
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """A rendered text message to an E.164 number. ``key`` is the delivery's idempotency key."""

    key: str
    to: str
    text: str
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """What a transport confirmed: its own id for the message, and anything worth keeping."""

    provider_id: str | None = None
    detail: str = ""
    parts: int = 1


class EmailSender(Protocol):
    """Hands an email to a mail server; raises TransientDeliveryError or
    PermanentDeliveryError (domain.errors) when it cannot."""

    def send(self, message: EmailMessage) -> SendReceipt: ...


class SmsSender(Protocol):
    """Hands a text to an SMS gateway; raises TransientDeliveryError or
    PermanentDeliveryError (domain.errors) when it cannot."""

    def send(self, message: SmsMessage) -> SendReceipt: ...


@dataclass(frozen=True, slots=True)
class SuppressionView:
    channel: str
    address: str
    reason: str
    detail: str
    lead_id: int | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "address": self.address,
            "reason": self.reason,
            "detail": self.detail,
            "lead_id": self.lead_id,
            "created_at": self.created_at.isoformat(),
        }


DELIVERY_STATUSES = ("queued", "sent", "delivered", "failed", "skipped", "bounced")


@dataclass(slots=True)
class DeliveryRecord:
    """One row of the delivery ledger: a message to one recipient and what became of it.

    ``queued`` until a transport confirms the hand-off (``sent``); ``delivered`` or
    ``bounced`` when the network says so; ``failed`` for a permanent refusal or too many
    transient ones; ``skipped`` with the reason when a rule stopped it before the transport.
    """

    id: int
    key: str
    lead_id: int
    channel: str
    address: str | None
    journey: str | None
    run_id: int | None
    step: str | None
    template: str | None
    variant: str | None
    status: str
    reason: str
    provider_id: str | None
    attempts: int
    parts: int
    next_attempt_at: datetime | None
    content: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    replied_at: datetime | None = None
    unsubscribed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "lead_id": self.lead_id,
            "channel": self.channel,
            "address": self.address,
            "journey": self.journey,
            "step": self.step,
            "template": self.template,
            "variant": self.variant,
            "status": self.status,
            "reason": self.reason,
            "provider_id": self.provider_id,
            "attempts": self.attempts,
            "parts": self.parts,
            "created_at": self.created_at.isoformat(),
            "sent_at": _iso(self.sent_at),
            "delivered_at": _iso(self.delivered_at),
            "opened_at": _iso(self.opened_at),
            "clicked_at": _iso(self.clicked_at),
            "replied_at": _iso(self.replied_at),
            "unsubscribed_at": _iso(self.unsubscribed_at),
        }


@dataclass(frozen=True, slots=True)
class NewDelivery:
    key: str
    lead_id: int
    channel: str
    address: str | None
    template: str | None = None
    journey: str | None = None
    run_id: int | None = None
    step: str | None = None
    variant: str | None = None
    content: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An outbox row as its consumers see it."""

    id: int
    topic: str
    lead_id: int | None
    payload: dict[str, Any]
    created_at: datetime


class ConsentRepository(Protocol):
    """The consent ledger and the suppression list (adapters/db/consent.py)."""

    def record(self, rows: Sequence[ConsentRecord]) -> None: ...
    def current(self, lead_ids: Iterable[int], channel: Channel) -> dict[int, ConsentStatus]: ...
    def leads_with_address(self, channel: Channel, address: str) -> list[int]: ...
    def suppress(
        self,
        channel: Channel,
        address: str,
        reason: str,
        at: datetime,
        lead_id: int | None = None,
        detail: str = "",
    ) -> bool: ...
    def unsuppress(self, channel: Channel, address: str) -> bool: ...
    def suppressed(self, channel: Channel, addresses: Iterable[str]) -> set[str]: ...


class DeliveryRepository(Protocol):
    """The delivery ledger (adapters/db/deliveries.py)."""

    def create(self, new: NewDelivery, at: datetime) -> tuple[DeliveryRecord, bool]: ...
    def create_many(self, rows: list[NewDelivery], at: datetime) -> int: ...
    def get(self, delivery_id: int, lock: bool = False) -> DeliveryRecord | None: ...
    def by_key(self, key: str) -> DeliveryRecord | None: ...
    def by_provider_id(self, channel: str, provider_id: str) -> DeliveryRecord | None: ...
    def of_lead(self, lead_id: int, limit: int = 100) -> list[DeliveryRecord]: ...
    def mark_sent(
        self,
        delivery_id: int,
        provider_id: str | None,
        parts: int,
        detail: str,
        at: datetime,
        content: dict[str, Any] | None = None,
    ) -> None: ...
    def mark_retry(self, delivery_id: int, error: str, next_at: datetime, at: datetime) -> None: ...
    def mark_failed(self, delivery_id: int, reason: str, at: datetime, attempted: bool) -> None: ...
    def mark_skipped(self, delivery_id: int, reason: str, at: datetime) -> None: ...
    def set_status(self, delivery_id: int, status: str, reason: str, at: datetime) -> None: ...
    def mark_first(self, delivery_id: int, column: str, at: datetime) -> bool: ...


class SourceRepository(Protocol):
    def by_write_key(self, write_key: str) -> SourceRecord | None: ...
    def by_name(self, name: str) -> SourceRecord | None: ...
    def add(self, name: str, write_key: str, at: datetime) -> SourceRecord: ...
    def all(self) -> list[SourceRecord]: ...


class IngestRepository(Protocol):
    """What ingestion needs from the store, in bulk, inside one transaction."""

    def existing_message_ids(self, source_id: int, message_ids: Sequence[str]) -> set[str]: ...
    def lock_keys(self, keys: Iterable[IdentityKey]) -> None: ...
    def owners(self, keys: Iterable[IdentityKey]) -> dict[IdentityKey, int]: ...
    def lead_keys(self, lead_ids: Iterable[int]) -> dict[int, frozenset[IdentityKey]]: ...
    def create_leads(self, leads: Sequence[NewLead]) -> dict[int, int]: ...
    def attach(self, keys: Sequence[tuple[IdentityKey, int]], at: datetime) -> None: ...
    def merge(
        self,
        merge: Merge,
        message_id: str | None,
        at: datetime,
        merge_scores: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ) -> None: ...
    def record_conflicts(
        self, conflicts: Sequence[tuple[IdentityConflict, str | None]], at: datetime
    ) -> None: ...
    def upsert_accounts(self, accounts: Mapping[str, dict[str, Any]], at: datetime) -> None: ...
    def accounts_by_group(
        self, group_ids: Iterable[str]
    ) -> dict[str, tuple[int, dict[str, Any]]]: ...
    def insert_events(self, rows: Sequence[EventRow]) -> dict[str, int]: ...
    def load_for_update(self, lead_ids: Iterable[int]) -> dict[int, LeadRecord]: ...
    def save_leads(self, records: Sequence[LeadRecord], at: datetime) -> None: ...
    def record_scores(self, rows: Sequence[LedgerRow]) -> None: ...
    def forget_scores(self, lead_ids: Sequence[int], version: str) -> None: ...
    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]: ...
    def record_changes(
        self, changes: Sequence[StageChange], outbox: Sequence[OutboxRow]
    ) -> None: ...


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


KIND_LABELS = {
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "email": "email",
    "phone": "phone",
}


@dataclass(slots=True)
class LeadView:
    """A lead as users see it: identities, traits, stage and scores."""

    id: int
    email: str | None
    phone: str | None
    identities: dict[str, list[str]]
    traits: dict[str, Any]
    stage: str
    fit_score: float
    fit_grade: str | None
    engagement_score: float
    p_convert: float | None
    account: dict[str, Any] | None
    first_touch: dict[str, Any]
    created_at: datetime
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    event_count: int = 0
    model_version: str | None = None
    scored_at: datetime | None = None
    mql_at: datetime | None = None
    sla_due_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "phone": self.phone,
            "identities": self.identities,
            "traits": self.traits,
            "stage": self.stage,
            "scores": {
                "fit": self.fit_score,
                "fit_grade": self.fit_grade,
                "engagement": self.engagement_score,
                "p_convert": self.p_convert,
                "model_version": self.model_version,
                "scored_at": _iso(self.scored_at),
            },
            "mql_at": _iso(self.mql_at),
            "sla_due_at": _iso(self.sla_due_at),
            "account": self.account,
            "first_touch": self.first_touch,
            "created_at": self.created_at.isoformat(),
            "first_seen_at": self.first_seen_at.isoformat() if self.first_seen_at else None,
            "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
            "event_count": self.event_count,
        }


@dataclass(frozen=True, slots=True)
class LeadFilter:
    stage: str | None = None
    email: str | None = None
    search: str | None = None
    source_id: int | None = None
    account_group_id: str | None = None
    seen_since: datetime | None = None
    grade: str | None = None


# How a page of leads can be ordered (best first, ties newest first); newest is by id.
LEAD_SORTS = ("newest", "engagement", "fit", "p_convert")


@dataclass(slots=True)
class LeadPage:
    items: list[LeadView]
    next_after: int | None
    total: int | None = None
    next_cursor: str | None = None  # the ``cursor`` of the next page, in any sort order


@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    source_id: int
    message_id: str
    type: str
    name: str | None
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source_id": self.source_id,
            "message_id": self.message_id,
            "type": self.type,
            "name": self.name,
            "timestamp": self.timestamp.isoformat(),
            "received_at": self.received_at.isoformat(),
            "properties": self.properties,
        }


@dataclass(frozen=True, slots=True)
class MergeView:
    survivor_id: int
    merged_id: int
    cause: str
    message_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "survivor_id": self.survivor_id,
            "merged_id": self.merged_id,
            "cause": self.cause,
            "message_id": self.message_id,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ConflictView:
    id: int
    lead_id: int
    other_lead_id: int
    key: str
    reason: str
    message_id: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lead_id": self.lead_id,
            "other_lead_id": self.other_lead_id,
            "key": self.key,
            "reason": self.reason,
            "message_id": self.message_id,
            "created_at": self.created_at.isoformat(),
        }


class LeadRepository(Protocol):
    def get(self, lead_id: int) -> LeadView | None: ...
    def survivor_of(self, lead_id: int) -> int | None: ...
    def page(
        self, filters: LeadFilter, limit: int, after: int | None, count: bool,
        sort: str = "newest", key: tuple[float, int] | None = None,
    ) -> LeadPage: ...  # fmt: skip
    def events(self, lead_id: int, limit: int) -> list[EventView]: ...
    def merges(self, lead_id: int | None) -> list[MergeView]: ...
    def conflicts(self, lead_id: int | None, include_resolved: bool) -> list[ConflictView]: ...
