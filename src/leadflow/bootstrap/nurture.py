"""Nurture: consent, suppression, activity events, journeys and offers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from leadflow.adapters.db import privacy
from leadflow.adapters.db.consent import SqlConsentRepository
from leadflow.adapters.db.deliveries import SqlDeliveryRepository
from leadflow.adapters.db.ingest import SqlIngestRepository
from leadflow.adapters.db.journeys import SqlJourneyRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.sources import SqlSourceRepository
from leadflow.bootstrap.predict import Predict
from leadflow.config import Settings
from leadflow.domain.campaigns import Journey, parse_journey
from leadflow.domain.consent import (
    Channel,
    ConsentRecord,
    ConsentStatus,
    parse_channel,
    parse_status,
)
from leadflow.domain.errors import (
    NotFound,
)
from leadflow.domain.events import NormalizedEvent
from leadflow.ports import (
    Clock,
    DeliveryRecord,
    SourceRecord,
    SuppressionView,
)
from leadflow.services import journey_config
from leadflow.services import sources as source_service
from leadflow.services.activity import (
    ACTIVITY_SOURCE,
    COUPON_REDEEMED,
    Activity,
    activity_events,
)
from leadflow.services.ingest import IngestResult
from leadflow.services.journeys import JourneyBook, check_references
from leadflow.services.templates import Templates

BOOK_TTL = 5.0  # seconds a process trusts its copy of the journeys


class Nurture(Predict):
    """Nurture: consent, suppression, activity events, journeys and offers."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self.nurture_rules = journey_config.rules_from(settings.nurture, settings.config_file)
        self.declared_journeys = journey_config.journeys_from(
            settings.journeys, settings.config_file
        )
        self._book: tuple[float, JourneyBook] | None = None
        self.date_scan_at = float("-inf")  # when date-triggered journeys were last looked at
        self.templates = Templates(settings.home / "templates")
        self.template_check: Callable[[str, str], None] | None = self.templates.check

    def _ingest_options(self, conn: Connection) -> dict[str, Any]:
        book = self.journey_book()
        return {
            **super()._ingest_options(conn),
            "event_triggers": book.event_names,
            "score_triggers": book.score_thresholds,
        }

    # consent, suppression and activity ------------------------------------------------
    def record_activity(self, activities: Sequence[Activity]) -> IngestResult:
        """File what leadflow's own messages caused (opens, clicks, replies, unsubscribes,
        bounces, redemptions) as track events of their leads: scored like any other event."""
        if not activities:
            return IngestResult()
        source = self._activity_source()
        now = self.clock.now()
        with self.engine.connect() as conn:
            events = self._activity_events(conn, activities, now)
        return self.ingest_normalized(source.id, events, now)

    def record_activity_in(
        self, conn: Connection, activities: Sequence[Activity], at: datetime
    ) -> IngestResult:
        """:meth:`record_activity` inside the caller's transaction (an outbox consumer's)."""
        source = self._write_keys.get(ACTIVITY_SOURCE) or source_service.ensure_source(
            SqlSourceRepository(conn), ACTIVITY_SOURCE, at
        )
        events = self._activity_events(conn, activities, at)
        return self._ingestor(conn).ingest(source.id, events, at)

    @staticmethod
    def _activity_events(
        conn: Connection, activities: Sequence[Activity], at: datetime
    ) -> list[NormalizedEvent]:
        """The activities as track events of their live leads (merges followed); those whose
        lead has no identity left (erased) are dropped."""
        leads_repo = SqlLeadRepository(conn)
        live = {a.lead_id: leads_repo.survivor_of(a.lead_id) for a in activities}
        keys = SqlIngestRepository(conn).lead_keys({v for v in live.values() if v})
        moved = [replace(a, lead_id=live[a.lead_id] or a.lead_id) for a in activities]
        events, _dropped = activity_events(moved, keys, at)
        return events

    def _activity_source(self) -> SourceRecord:
        found = self._write_keys.get(ACTIVITY_SOURCE)
        if found is None:
            found = self._write_keys[ACTIVITY_SOURCE] = self.ensure_source(ACTIVITY_SOURCE)
        return found

    def set_consent(
        self,
        lead_id: int,
        channel: str,
        status: str,
        source: str,
        proof: dict[str, Any] | None = None,
    ) -> ConsentRecord:
        """Append to the lead's consent ledger (granted, pending or revoked, with proof)."""
        record = ConsentRecord(
            lead_id=lead_id,
            channel=parse_channel(channel),
            status=parse_status(status),
            source=source,
            at=self.clock.now(),
            proof=proof or {},
        )
        with self.transaction() as conn:
            record = replace(record, lead_id=self._live(conn, lead_id))
            SqlConsentRepository(conn).record([record])
            self.segment_tracker(conn).leads_changed([record.lead_id], record.at)
        return record

    def consent(self, lead_id: int) -> dict[str, Any]:
        """The lead's current consent per channel and the whole ledger."""
        with self.engine.connect() as conn:
            live = self._live(conn, lead_id)
            repo = SqlConsentRepository(conn)
            current = {
                c.value: repo.current([live], c).get(live, ConsentStatus.NONE).value
                for c in Channel
            }
            history = repo.history(live)
        return {
            "lead_id": live,
            "current": current,
            "history": [
                {
                    "channel": r.channel.value,
                    "status": r.status.value,
                    "source": r.source,
                    "at": r.at.isoformat(),
                    "proof": r.proof,
                }
                for r in history
            ],
        }

    def suppress(self, channel: str, address: str, reason: str, detail: str = "") -> bool:
        """Put an address on the channel's suppression list; False if it already was."""
        kind = parse_channel(channel)
        with self.transaction() as conn:
            repo = SqlConsentRepository(conn)
            owners = repo.leads_with_address(kind, address)
            return repo.suppress(
                kind, address, reason, self.clock.now(), owners[0] if owners else None, detail
            )

    def unsuppress(self, channel: str, address: str) -> bool:
        with self.transaction() as conn:
            return SqlConsentRepository(conn).unsuppress(parse_channel(channel), address)

    def suppressions(self, channel: str | None = None, limit: int = 1000) -> list[SuppressionView]:
        with self.engine.connect() as conn:
            kind = parse_channel(channel) if channel else None
            return SqlConsentRepository(conn).suppression_list(kind, limit)

    def export_lead(self, lead_id: int) -> dict[str, Any]:
        """Everything held on a person (the lead and the leads merged into it), by table."""
        with self.engine.connect() as conn:
            live = self._live(conn, lead_id)
            ids = privacy.person(conn, live)
            return {
                "lead_id": live,
                "exported_at": self.clock.now().isoformat(),
                "tables": privacy.export(conn, ids),
            }

    def erase_lead(self, lead_id: int) -> dict[str, int]:
        """Erase a person from every table; their addresses stay on the suppression list
        (without the link to the lead) so that an opt-out is still honoured."""
        with self.transaction() as conn:
            live = self._live(conn, lead_id)
            return privacy.erase(conn, privacy.person(conn, live))

    def deliveries(self, lead_id: int, limit: int = 100) -> list[DeliveryRecord]:
        """The messages sent (or skipped, with the reason) to a lead, newest first."""
        with self.engine.connect() as conn:
            return SqlDeliveryRepository(conn).of_lead(self._live(conn, lead_id), limit)

    # journeys --------------------------------------------------------------------------
    def journey_book(self) -> JourneyBook:
        """The journeys in force, read from the store at most every few seconds."""
        now = time.monotonic()
        if self._book is None or now - self._book[0] > BOOK_TTL:
            with self.engine.connect() as conn:
                specs = SqlJourneyRepository(conn).definitions()
            book = JourneyBook.from_specs((name, spec, on) for name, spec, on, _o, _v in specs)
            self._book = (now, book)
        return self._book[1]

    def save_journey(self, name: str, spec: dict[str, Any], origin: str = "api") -> Journey:
        """Validate a journey (its templates and segments too) and store it."""
        journey = parse_journey(name, spec)
        with self.transaction() as conn:
            segments = SqlJourneyRepository(conn).segment_names()
            check_references(journey, self.template_check, segments)
            SqlJourneyRepository(conn).save(
                name, journey.version, dict(journey.spec), origin, self.clock.now()
            )
        self._book = None
        return journey

    def set_journey_enabled(self, name: str, enabled: bool) -> None:
        with self.transaction() as conn:
            if not SqlJourneyRepository(conn).set_enabled(name, enabled, self.clock.now()):
                raise NotFound(f"no journey named {name!r}")
        self._book = None

    def delete_journey(self, name: str) -> None:
        with self.transaction() as conn:
            if not SqlJourneyRepository(conn).delete(name):
                raise NotFound(f"no journey named {name!r}")
        self._book = None

    def journeys(self) -> list[dict[str, Any]]:
        """Every journey with its trigger, state and runs by status."""
        with self.engine.connect() as conn:
            repo = SqlJourneyRepository(conn)
            return [
                journey_config.summary(name, spec, enabled, origin, version, repo.run_counts(name))
                for name, spec, enabled, origin, version in repo.definitions()
            ]

    def journey(self, name: str) -> dict[str, Any]:
        for found in self.journeys():
            if found["name"] == name:
                return found
        raise NotFound(f"no journey named {name!r}")

    def journey_runs(
        self,
        journey: str | None = None,
        lead_id: int | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            repo = SqlJourneyRepository(conn)
            runs = repo.runs(journey, lead_id, status, limit)
            return [{**run.to_json(), "log": repo.logs_of(run.id)} for run in runs]

    def journey_report(self, name: str) -> dict[str, Any]:
        """Runs by status, exits, and per step and A/B variant: sent, delivered, opened,
        clicked, replied, with the significance of the difference between variants."""
        self.journey(name)
        with self.engine.connect() as conn:
            repo = SqlJourneyRepository(conn)
            return journey_config.report(
                name, repo.run_counts(name), repo.exit_reasons(name), repo.step_report(name)
            )

    def coupons(self, lead_id: int) -> list[dict[str, Any]]:
        """The offer codes issued to a lead."""
        with self.engine.connect() as conn:
            return SqlJourneyRepository(conn).coupons_of(self._live(conn, lead_id))

    def redeem_coupon(self, code: str) -> dict[str, Any]:
        """Redeem an offer code: once, before it expires; files a Coupon Redeemed event."""
        now = self.clock.now()
        with self.transaction() as conn:
            coupon = journey_config.redeem(SqlJourneyRepository(conn), code.strip().upper(), now)
        self.record_activity(
            [
                Activity(
                    coupon["lead_id"],
                    COUPON_REDEEMED,
                    f"coupon:{coupon['id']}:redeemed",
                    now,
                    {"offer": coupon["offer"], "code": coupon["code"]},
                )
            ]
        )
        return coupon
