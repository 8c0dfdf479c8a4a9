"""Ingesting tracking messages: identity resolution, accounts and the event log, in bulk.

One call handles one batch inside the caller's transaction: it looks up every identity key
of the batch at once, resolves each message in order in memory (so a batch that introduces a
visitor and then identifies them makes one lead), and writes leads, identities, merges,
conflicts, account links and events with a handful of bulk statements, then scores and
qualifies every lead it touched (services.qualify), under row locks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from leadflow.domain.errors import ItemError
from leadflow.domain.events import NormalizedEvent
from leadflow.domain.identity import (
    IdentityConflict,
    IdentityKey,
    Merge,
    keys_for,
    previous_keys,
    resolve,
)
from leadflow.domain.profiles import Profile, touched
from leadflow.domain.scoring import ScoredEvent
from leadflow.ports import EventRow, IngestRepository, LeadRecord, LeadTouch, NewLead, OutboxRow
from leadflow.services.qualify import Outcome, Qualifier
from leadflow.services.rescore import rescore_chunk

IDENTITY_TRAITS = ("email", "phone")
EVENT_TOPIC = "event.tracked"
SCORE_TOPIC = "score.crossed"


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[ItemError] = field(default_factory=list)
    leads_created: int = 0
    merges: int = 0
    conflicts: int = 0

    def add(self, other: IngestResult) -> None:
        """Count ``other``'s messages, leads and merges in this result (not its errors)."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.leads_created += other.leads_created
        self.merges += other.merges
        self.conflicts += other.conflicts


@dataclass
class _Plan:
    """The batch's changes, with batch-local negative ids for leads not yet created."""

    owners: dict[IdentityKey, int]
    lead_keys: dict[int, set[IdentityKey]]
    new_leads: list[NewLead] = field(default_factory=list)
    attach: list[tuple[IdentityKey, int]] = field(default_factory=list)
    merges: list[tuple[Merge, str]] = field(default_factory=list)
    conflicts: list[tuple[IdentityConflict, str | None]] = field(default_factory=list)
    touches: dict[int, LeadTouch] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[NormalizedEvent, int]] = field(default_factory=list)
    alias: dict[int, int] = field(default_factory=dict)

    def live(self, lead: int) -> int:
        while lead in self.alias:
            lead = self.alias[lead]
        return lead


def first_touch(event: NormalizedEvent) -> dict[str, Any]:
    """Where a lead came from: campaign, page and referrer of their first message."""
    context = event.context
    touch: dict[str, Any] = {}
    campaign = context.get("campaign")
    if isinstance(campaign, dict) and campaign:
        touch["campaign"] = campaign
    page = context.get("page")
    if isinstance(page, dict):
        for key in ("url", "path", "referrer"):
            if page.get(key):
                touch[key] = page[key]
    return touch


class Ingestor:
    """Resolves and stores batches of normalised events for one source."""

    def __init__(
        self,
        repo: IngestRepository,
        qualifier: Qualifier,
        phone_region: str | None = None,
        on_change: Callable[[Sequence[int], datetime], None] | None = None,
        event_triggers: frozenset[str] = frozenset(),
        score_triggers: frozenset[tuple[str, float]] = frozenset(),
    ) -> None:
        self.repo = repo
        self.qualifier = qualifier
        self.phone_region = phone_region
        self.on_change = on_change  # told which leads the batch changed (segments)
        self.event_triggers = event_triggers  # event names that start journeys
        self.score_triggers = score_triggers  # (score, threshold): crossing it starts journeys

    def ingest(
        self, source_id: int, events: Sequence[NormalizedEvent], at: datetime
    ) -> IngestResult:
        result = IngestResult()
        fresh = self._drop_duplicates(source_id, events, result)
        if not fresh:
            return result
        keyed = [(event, self._keys(event)) for event in fresh]
        wanted = {key for _, keys in keyed for key in keys}
        for event in fresh:
            wanted.update(previous_keys(event.previous_id))
        self.repo.lock_keys(wanted)  # concurrent batches sharing a key take turns
        owners = self.repo.owners(wanted)
        known = self.repo.lead_keys(_leads_to_load(keyed, owners))
        plan = _Plan(owners=dict(owners), lead_keys={k: set(v) for k, v in known.items()})
        for event, keys in keyed:
            self._place(plan, source_id, event, keys)
        self._write(plan, source_id, at, result)
        result.accepted = len(fresh)
        return result

    def _drop_duplicates(
        self, source_id: int, events: Sequence[NormalizedEvent], result: IngestResult
    ) -> list[NormalizedEvent]:
        seen = self.repo.existing_message_ids(source_id, [e.message_id for e in events])
        fresh: list[NormalizedEvent] = []
        for event in events:
            if event.message_id in seen:
                result.duplicates += 1
                continue
            seen.add(event.message_id)
            fresh.append(event)
        return fresh

    def _keys(self, event: NormalizedEvent) -> list[IdentityKey]:
        traits = event.traits
        region = traits.get("country") if isinstance(traits.get("country"), str) else None
        return keys_for(
            user_id=event.user_id,
            anonymous_id=event.anonymous_id,
            email=traits.get("email"),
            phone=traits.get("phone"),
            region=region if region and len(region) == 2 else self.phone_region,
        )

    def _place(
        self, plan: _Plan, source_id: int, event: NormalizedEvent, keys: list[IdentityKey]
    ) -> None:
        previous = previous_keys(event.previous_id)
        view = {k: plan.live(plan.owners[k]) for k in [*keys, *previous] if k in plan.owners}
        lead_keys = {lead: frozenset(plan.lead_keys.get(lead, ())) for lead in view.values()}
        res = resolve(keys, view, lead_keys, cause=event.type, lookup_only=previous)
        lead = res.lead_id
        if lead is None:
            lead = -(len(plan.new_leads) + 1)
            plan.new_leads.append(
                NewLead(lead, event.received_at, event.timestamp, source_id, first_touch(event))
            )
        for merge in res.merges:
            self._merge(plan, merge, event.message_id)
        for key in res.attach:
            plan.owners[key] = lead
            plan.lead_keys.setdefault(lead, set()).add(key)
            plan.attach.append((key, lead))
        plan.conflicts.extend((c, event.message_id) for c in res.conflicts)
        self._touch(plan, lead, event, keys, source_id)
        plan.events.append((event, lead))

    def _merge(self, plan: _Plan, merge: Merge, message_id: str) -> None:
        plan.alias[merge.loser] = merge.survivor
        plan.lead_keys.setdefault(merge.survivor, set()).update(
            plan.lead_keys.pop(merge.loser, set())
        )
        if merge.loser > 0:
            plan.merges.append((merge, message_id))
        loser_touch = plan.touches.pop(merge.loser, None)
        if loser_touch is None:
            return
        touch = plan.touches.get(merge.survivor)
        if touch is None:
            plan.touches[merge.survivor] = replace(loser_touch, lead_id=merge.survivor)
            return
        if loser_touch.first_seen_at < touch.first_seen_at:
            touch.first_seen_at = loser_touch.first_seen_at
            touch.first_touch = loser_touch.first_touch
            touch.first_source_id = loser_touch.first_source_id
        touch.last_seen_at = max(touch.last_seen_at, loser_touch.last_seen_at)
        touch.traits = {**loser_touch.traits, **touch.traits}
        touch.email = touch.email or loser_touch.email
        touch.phone = touch.phone or loser_touch.phone
        touch.account_group_id = touch.account_group_id or loser_touch.account_group_id

    def _touch(
        self,
        plan: _Plan,
        lead: int,
        event: NormalizedEvent,
        keys: list[IdentityKey],
        source_id: int,
    ) -> None:
        touch = plan.touches.get(lead)
        if touch is None:
            touch = plan.touches[lead] = LeadTouch(lead, event.timestamp, event.timestamp, {})
        if touch.first_touch is None or event.timestamp < touch.first_seen_at:
            touch.first_seen_at = event.timestamp
            touch.first_touch = first_touch(event)
            touch.first_source_id = source_id
        touch.last_seen_at = max(touch.last_seen_at, event.timestamp)
        owned = plan.lead_keys.get(lead, set())
        for key in keys:
            if key.kind in IDENTITY_TRAITS and key in owned:
                setattr(touch, key.kind, key.value)
        if event.type == "identify" and event.traits:
            touch.traits.update(event.traits)
            touch.traits.pop("email", None)
            touch.traits.pop("phone", None)
        if event.type == "group" and event.group_id:
            touch.account_group_id = event.group_id
            own = plan.accounts.setdefault(event.group_id, {})
            own.update(event.traits)

    def _write(self, plan: _Plan, source_id: int, at: datetime, result: IngestResult) -> None:
        created = [lead for lead in plan.new_leads if lead.ref not in plan.alias]
        real = self.repo.create_leads(created)

        def final(lead: int) -> int:
            lead = plan.live(lead)
            return real[lead] if lead < 0 else lead

        self.repo.attach([(key, final(lead)) for key, lead in plan.attach], at)
        for merge, message_id in plan.merges:
            self.repo.merge(
                Merge(merge.loser, final(merge.survivor), merge.cause),
                message_id,
                at,
                self.qualifier.merge_scores,
            )
        survivors = sorted({final(merge.survivor) for merge, _ in plan.merges})
        if survivors:  # one history now: replayed, so limits and caps apply to it as a whole
            rescore_chunk(self.repo, self.qualifier, survivors, at)
        conflicts = [
            (IdentityConflict(final(c.lead_a), final(c.lead_b), c.key, c.reason), mid)
            for c, mid in plan.conflicts
        ]
        self.repo.record_conflicts(conflicts, at)
        self.repo.upsert_accounts(plan.accounts, at)
        rows = [_row(source_id, event, final(lead)) for event, lead in plan.events]
        event_ids = self.repo.insert_events(rows)
        self._qualify(plan, final, event_ids, at)
        result.leads_created = len(created)
        result.merges = len(plan.merges)
        result.conflicts = len(conflicts)

    def _qualify(
        self, plan: _Plan, final: Callable[[int], int], event_ids: dict[str, int], at: datetime
    ) -> None:
        """Profiles, scores and stages of every lead the batch touched, under row locks."""
        touches = {final(lead): touch for lead, touch in plan.touches.items()}
        scored: dict[int, list[tuple[int, ScoredEvent]]] = {}
        for event, lead in plan.events:
            event_id = event_ids.get(event.message_id)
            if event_id is not None:
                scored.setdefault(final(lead), []).append((event_id, _scored(event)))
        records = self.repo.load_for_update(touches)
        accounts = self.repo.accounts_by_group(
            {t.account_group_id for t in touches.values() if t.account_group_id}
        )
        outcome = Outcome()
        before = {lead: _scores(record) for lead, record in records.items()}
        for lead_id in sorted(touches):
            record = records[lead_id]
            touch = touches[lead_id]
            account = accounts.get(touch.account_group_id or "")
            record.profile = touched(record.profile, _change(touch, account))
            if account is not None:
                record.account_traits = account[1]
            refit = bool(touch.traits or touch.email or account) or (
                record.model_version != self.qualifier.model.version
            )
            outcome.ledger.extend(self.qualifier.score_events(record, scored.get(lead_id, [])))
            outcome.extend(self.qualifier.refresh(record, at, refit))
        if self.event_triggers:
            outcome.outbox.extend(self._triggers(plan, final, event_ids, at))
        for lead_id, old in before.items():
            outcome.outbox.extend(
                crossings(lead_id, old, _scores(records[lead_id]), self.score_triggers, at)
            )
        self.repo.save_leads([records[lead] for lead in sorted(records)], at)
        self.repo.record_scores(outcome.ledger)
        self.repo.record_changes(outcome.changes, outcome.outbox)
        if self.on_change is not None:
            merged = [merge.loser for merge, _ in plan.merges]
            self.on_change([*sorted(records), *merged], at)

    def _triggers(
        self, plan: _Plan, final: Callable[[int], int], event_ids: dict[str, int], at: datetime
    ) -> list[OutboxRow]:
        """An outbox row for each new event whose name starts a journey."""
        rows = []
        for event, lead in plan.events:
            event_id = event_ids.get(event.message_id)
            if event_id is not None and event.name in self.event_triggers:
                payload = {"name": event.name, "event_id": event_id, "lead_id": final(lead)}
                rows.append(OutboxRow(EVENT_TOPIC, final(lead), payload, at))
        return rows


def _scores(record: LeadRecord) -> dict[str, float | None]:
    return {
        "engagement": record.engagement_score,
        "fit": record.fit_score,
        "p_convert": record.p_convert,
    }


def crossings(
    lead_id: int,
    old: dict[str, float | None],
    new: dict[str, float | None],
    thresholds: frozenset[tuple[str, float]],
    at: datetime,
) -> list[OutboxRow]:
    """An outbox row for each threshold a score rose above (from at or below it)."""
    rows = []
    for score, above in sorted(thresholds):
        was, now = old.get(score), new.get(score)
        if now is not None and now > above and (was is None or was <= above):
            payload = {"score": score, "above": above, "from": was, "to": now, "lead_id": lead_id}
            rows.append(OutboxRow(SCORE_TOPIC, lead_id, payload, at))
    return rows


def _change(touch: LeadTouch, account: tuple[int, dict[str, Any]] | None) -> Profile:
    return Profile(
        traits=touch.traits,
        email=touch.email,
        phone=touch.phone,
        account_id=account[0] if account is not None else None,
        first_seen_at=touch.first_seen_at,
        last_seen_at=touch.last_seen_at,
        first_touch=touch.first_touch or {},
        first_source_id=touch.first_source_id,
    )


def _scored(event: NormalizedEvent) -> ScoredEvent:
    return ScoredEvent(event.type, event.name, event.timestamp, event.properties, event.context)


def _leads_to_load(
    keyed: list[tuple[NormalizedEvent, list[IdentityKey]]], owners: dict[IdentityKey, int]
) -> set[int]:
    """The leads whose full key sets resolution may need: those of messages that could
    attach, merge or conflict. A message whose keys all belong to one lead needs none."""
    needed: set[int] = set()
    for event, keys in keyed:
        searched = [*keys, *previous_keys(event.previous_id)]
        found = {owners[key] for key in searched if key in owners}
        if len(searched) > 1 and not (len(found) == 1 and all(k in owners for k in keys)):
            needed |= found
    return needed


def _row(source_id: int, event: NormalizedEvent, lead_id: int) -> EventRow:
    return EventRow(
        source_id=source_id,
        message_id=event.message_id,
        lead_id=lead_id,
        type=event.type,
        name=event.name,
        timestamp=event.timestamp,
        received_at=event.received_at,
        properties=event.properties,
        raw=event.raw,
    )
