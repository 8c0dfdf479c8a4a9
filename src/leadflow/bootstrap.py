"""The composition root: Settings -> engine -> repositories -> services, behind one facade.

``Leadflow`` is the library API. Each method is an edge: it opens a transaction, calls the
services and commits.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

import httpx
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from leadflow.adapters.db import handoff as handoff_db
from leadflow.adapters.db import migrate, privacy
from leadflow.adapters.db import webhooks as webhook_db
from leadflow.adapters.db.backtest import reading as backtest_reading
from leadflow.adapters.db.consent import SqlConsentRepository
from leadflow.adapters.db.deliveries import SqlDeliveryRepository
from leadflow.adapters.db.engine import make_engine, writing
from leadflow.adapters.db.explain import SqlExplainRepository
from leadflow.adapters.db.ingest import SqlIngestRepository
from leadflow.adapters.db.journeys import SqlJourneyRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.adapters.db.models import SqlModelRepository
from leadflow.adapters.db.predict import SqlPredictRepository
from leadflow.adapters.db.predict import reading as predict_reading
from leadflow.adapters.db.rescore import SqlRescoreRepository
from leadflow.adapters.db.segments import SqlSegmentRepository
from leadflow.adapters.db.sources import SqlSourceRepository
from leadflow.adapters.email.capture import CaptureEmailSender
from leadflow.adapters.email.mime import DkimSigner
from leadflow.adapters.email.smtp import SmtpEmailSender
from leadflow.adapters.sms import build_sms_sender
from leadflow.adapters.webhooks import ssrf
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
    AuthenticationError,
    BatchErrors,
    NotFound,
    StoreUnavailable,
    ValidationError,
)
from leadflow.domain.events import normalize_batch
from leadflow.domain.identity import normalize_phone
from leadflow.domain.lifecycle import StageChange
from leadflow.domain.sms import ReportStatus
from leadflow.ports import (
    Clock,
    ConflictView,
    DeliveryRecord,
    EmailMessage,
    EventView,
    LeadFilter,
    LeadPage,
    LeadView,
    MergeView,
    SendReceipt,
    SmsMessage,
    SmsSender,
    SourceRecord,
    SuppressionView,
    SystemClock,
)
from leadflow.services import assignment as assignment_service
from leadflow.services import backtest as backtest_service
from leadflow.services import bounces as bounce_service
from leadflow.services import consent as consent_service
from leadflow.services import email_tracking, journey_config, predict_live
from leadflow.services import explain as explain_service
from leadflow.services import handoff as handoff_service
from leadflow.services import leads as lead_service
from leadflow.services import lifecycle as lifecycle_service
from leadflow.services import rescore as rescore_service
from leadflow.services import segments as segment_service
from leadflow.services import sms as sms_service
from leadflow.services import sources as source_service
from leadflow.services import webhooks as webhook_service
from leadflow.services.activity import (
    ACTIVITY_SOURCE,
    COUPON_REDEEMED,
    Activity,
    activity_events,
)
from leadflow.services.email import EmailComposer, EmailSettings, email_settings
from leadflow.services.ingest import Ingestor, IngestResult
from leadflow.services.journeys import JourneyBook, check_references
from leadflow.services.models import ScoringModel, load_model
from leadflow.services.predict_live import LivePredictor
from leadflow.services.predict_model import ModelFile
from leadflow.services.predict_store import StoreTrainOptions, train_from_store
from leadflow.services.predict_train import Progress as TrainProgress
from leadflow.services.qualify import Qualifier
from leadflow.services.rescore import ProgressFn, RescoreReport
from leadflow.services.segments import RefreshReport, StoredSegment
from leadflow.services.templates import Templates
from leadflow.services.tokens import Tokens, load_secret

_RETRIES = 10
BOOK_TTL = 5.0  # seconds a process trusts its copy of the journeys
# PostgreSQL deadlock_detected and serialization_failure: the loser may simply run again.
_TRANSIENT_STATES = frozenset({"40P01", "40001"})


def _transient(exc: IntegrityError | OperationalError) -> bool:
    """A lost race with a concurrent batch (unique key taken, deadlock), worth a retry."""
    return isinstance(exc, IntegrityError) or (
        getattr(exc.orig, "sqlstate", None) in _TRANSIENT_STATES
    )


class Leadflow:
    """leadflow as a library: sources, ingestion and leads over one database."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = make_engine(settings.resolved_database_url(), settings.db_pool_size)
        self._write_keys: dict[str, SourceRecord] = {}
        self.model: ScoringModel = load_model(settings.config_file)
        self.qualifier = Qualifier(self.model)
        self.declared_segments = segment_service.from_config(
            settings.segments, settings.config_file
        )
        self.nurture_rules = journey_config.rules_from(settings.nurture, settings.config_file)
        self.declared_journeys = journey_config.journeys_from(
            settings.journeys, settings.config_file
        )
        self._book: tuple[float, JourneyBook] | None = None
        self.date_scan_at = float("-inf")  # when date-triggered journeys were last looked at
        self._email_settings = email_settings(settings.email, settings.config_file)  # email ---
        self._tokens: Tokens | None = None
        self.templates = Templates(settings.home / "templates")
        self.template_check: Callable[[str, str], None] | None = self.templates.check
        if settings.sms is not None:
            self.sms_config  # noqa: B018  -- a bad sms: section fails at open, not at first send

    # lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create or upgrade the schema to the latest revision."""
        try:
            migrate.upgrade(self.engine)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the database: {exc.orig}") from None
        with self.transaction() as conn:
            SqlModelRepository(conn).remember(self.model.version, self.model.spec, self.clock.now())
        self._load_predictor()
        with self.transaction() as conn:  # the config's segments, saved and refreshed if changed
            repo = SqlSegmentRepository(conn)
            segment_service.sync(repo, self.declared_segments, self.clock.now())
        for journey in self.declared_journeys:
            self.save_journey(journey.name, dict(journey.spec), origin="config")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Leadflow:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends (rolled back on error)."""
        with writing(self.engine) as conn:
            yield conn

    # sources ---------------------------------------------------------------------------
    def create_source(self, name: str) -> SourceRecord:
        with self.transaction() as conn:
            return source_service.create_source(SqlSourceRepository(conn), name, self.clock.now())

    def ensure_source(self, name: str) -> SourceRecord:
        with self.transaction() as conn:
            return source_service.ensure_source(SqlSourceRepository(conn), name, self.clock.now())

    def sources(self) -> list[SourceRecord]:
        with self.engine.connect() as conn:
            return SqlSourceRepository(conn).all()

    def source_for_key(self, write_key: str) -> SourceRecord:
        """The source a write key belongs to (cached); AuthenticationError when unknown."""
        found = self._write_keys.get(write_key)
        if found is None:
            with self.engine.connect() as conn:
                found = SqlSourceRepository(conn).by_write_key(write_key)
            if found is None:
                raise AuthenticationError("unknown write key")
            self._write_keys[write_key] = found
        return found

    # ingestion -------------------------------------------------------------------------
    def ingest(
        self,
        source: SourceRecord | str,
        messages: Sequence[object],
        *,
        route_type: str | None = None,
        defaults: dict[str, Any] | None = None,
        received_at: datetime | None = None,
        raise_on_error: bool = False,
    ) -> IngestResult:
        """Validate and store messages. Invalid items are reported by index; valid ones kept."""
        record = self.source_for_key(source) if isinstance(source, str) else source
        at = received_at or self.clock.now()
        good, bad = normalize_batch(
            list(messages), received_at=at, route_type=route_type, defaults=defaults
        )
        result = self.ingest_normalized(record.id, good, at)
        result.errors = bad
        if bad and raise_on_error:
            raise BatchErrors(errors=bad, accepted=result.accepted)
        return result

    def import_batch(
        self,
        source: SourceRecord,
        messages: Sequence[object],
        *,
        received_at: datetime | None = None,
    ) -> IngestResult:
        """Store messages read from a file (``leadflow import``), one chunk per call.

        Like :meth:`ingest`, except that a message with neither userId nor anonymousId is
        accepted when ``traits.email`` is an email address: a lead known only by email.
        Invalid messages are reported by index in ``errors``; valid ones are kept.
        """
        at = received_at or self.clock.now()
        good, bad = normalize_batch(list(messages), received_at=at, require_id=False)
        result = self.ingest_normalized(source.id, good, at)
        result.errors = bad
        return result

    def ingest_normalized(
        self, source_id: int, events: Sequence[Any], at: datetime
    ) -> IngestResult:
        """Store already normalised events, retrying when a concurrent batch won a race."""
        for attempt in range(_RETRIES):
            try:
                with self.transaction() as conn:
                    ingestor = Ingestor(
                        SqlIngestRepository(conn),
                        self.qualifier,
                        self.settings.default_phone_region,
                        on_change=self.segment_tracker(conn).leads_changed,
                        event_triggers=self.journey_book().event_names,
                        score_triggers=self.journey_book().score_thresholds,
                    )
                    return ingestor.ingest(source_id, events, at)
            except (IntegrityError, OperationalError) as exc:
                if attempt == _RETRIES - 1 or not _transient(exc):
                    raise
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
        raise AssertionError("unreachable")

    # leads -----------------------------------------------------------------------------
    def lead(self, lead_id: int) -> LeadView:
        with self.engine.connect() as conn:
            return lead_service.get_lead(SqlLeadRepository(conn), lead_id)

    def leads(
        self,
        filters: LeadFilter | None = None,
        *,
        limit: int = 50,
        after: int | None = None,
        count: bool = False,
    ) -> LeadPage:
        with self.engine.connect() as conn:
            return lead_service.list_leads(
                SqlLeadRepository(conn), filters or LeadFilter(), limit, after, count
            )

    def lead_events(self, lead_id: int, limit: int = 100) -> list[EventView]:
        with self.engine.connect() as conn:
            repo = SqlLeadRepository(conn)
            live = lead_service.get_lead(repo, lead_id).id
            return repo.events(live, limit)

    def merges(self, lead_id: int | None = None) -> list[MergeView]:
        with self.engine.connect() as conn:
            return SqlLeadRepository(conn).merges(lead_id)

    def conflicts(
        self, lead_id: int | None = None, include_resolved: bool = False
    ) -> list[ConflictView]:
        with self.engine.connect() as conn:
            return SqlLeadRepository(conn).conflicts(lead_id, include_resolved)

    # scoring and lifecycle -------------------------------------------------------------
    def explain(self, lead_id: int) -> dict[str, Any]:
        """Why the lead has its scores and stage: rules, events, fit, policy, history."""
        with self.engine.connect() as conn:
            live = lead_service.get_lead(SqlLeadRepository(conn), lead_id).id
            found = explain_service.explain(
                SqlExplainRepository(conn), self.model, live, self.clock.now(),
                self.qualifier.predictor,
            )  # fmt: skip
        if found is None:
            raise NotFound(f"no lead with id {lead_id}")
        return found

    def decide(
        self, lead_id: int, decision: str, reason: str, actor: str = "user", note: str = ""
    ) -> StageChange:
        """Sales accepts (MQL -> SAL) or rejects (MQL -> recycled) an MQL with a reason code."""
        if decision not in ("accept", "reject"):
            raise ValidationError(f"decision: {decision!r} is not 'accept' or 'reject'")
        with self.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            change = lifecycle_service.decide(
                repo, self.model, self._live(conn, lead_id), decision, reason, actor, note,
                self.clock.now(),
            )  # fmt: skip
            self.segment_tracker(conn).leads_changed([change.lead_id], change.at)
            return change

    def move_stage(
        self, lead_id: int, stage: str, reason: str, actor: str = "user", note: str = ""
    ) -> StageChange:
        """Move a lead along the lifecycle (SAL -> SQL -> opportunity -> customer...)."""
        with self.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            change = lifecycle_service.move(
                repo, self.model, self._live(conn, lead_id), stage, reason, actor, note,
                self.clock.now(),
            )  # fmt: skip
            self.segment_tracker(conn).leads_changed([change.lead_id], change.at)
            return change

    @staticmethod
    def _live(conn: Connection, lead_id: int) -> int:
        return lead_service.get_lead(SqlLeadRepository(conn), lead_id).id

    def rescore(self, progress: ProgressFn | None = None) -> RescoreReport:
        """Replay the event log under the live model version, in chunks of leads."""
        total = RescoreReport()
        with self.engine.connect() as conn:
            chunks = list(rescore_service.chunks_of_leads(SqlRescoreRepository(conn)))
        for ids in chunks:
            with self.transaction() as conn:
                done = rescore_service.rescore_chunk(
                    SqlRescoreRepository(conn), self.qualifier, ids, self.clock.now()
                )
                self.segment_tracker(conn).leads_changed(ids, self.clock.now())
            total.leads += done.leads
            total.events += done.events
            total.changes += done.changes
            if progress is not None:
                progress(done)
        return total

    def model_versions(self) -> list[tuple[str, datetime]]:
        """Every version of the scoring model this store has used, oldest first."""
        with self.engine.connect() as conn:
            return SqlModelRepository(conn).versions()

    def count_leads(self) -> int:
        with self.engine.connect() as conn:
            return SqlRescoreRepository(conn).count_leads()

    def backtest(
        self,
        candidate: ScoringModel,
        since: date | None = None,
        capacity: int = backtest_service.DEFAULT_CAPACITY,
        outcome_events: Sequence[str] = backtest_service.DEFAULT_OUTCOME_EVENTS,
        progress: backtest_service.ProgressFn | None = None,
    ) -> dict[str, Any]:
        """Replay the stored history with ``candidate`` and with the live model, read-only:
        MQLs per week, precision, recall, time to MQL and capacity (docs/backtest.md)."""
        return backtest_service.run_backtest(
            lambda: backtest_reading(self.engine), self.model, candidate, since=since,
            capacity=capacity, outcome_events=outcome_events, progress=progress,
        )  # fmt: skip

    # consent, suppression and activity ------------------------------------------------
    def record_activity(self, activities: Sequence[Activity]) -> IngestResult:
        """File what leadflow's own messages caused (opens, clicks, replies, unsubscribes,
        bounces, redemptions) as track events of their leads: scored like any other event."""
        if not activities:
            return IngestResult()
        source = self._activity_source()
        with self.engine.connect() as conn:
            leads_repo = SqlLeadRepository(conn)
            live = {a.lead_id: leads_repo.survivor_of(a.lead_id) for a in activities}
            keys = SqlIngestRepository(conn).lead_keys({v for v in live.values() if v})
        moved = [replace(a, lead_id=live[a.lead_id] or a.lead_id) for a in activities]
        now = self.clock.now()
        events, _dropped = activity_events(moved, keys, now)
        return self.ingest_normalized(source.id, events, now)

    def record_activity_in(
        self, conn: Connection, activities: Sequence[Activity], at: datetime
    ) -> IngestResult:
        """:meth:`record_activity` inside the caller's transaction (an outbox consumer's)."""
        source = self._write_keys.get(ACTIVITY_SOURCE) or source_service.ensure_source(
            SqlSourceRepository(conn), ACTIVITY_SOURCE, at
        )
        leads_repo = SqlLeadRepository(conn)
        live = {a.lead_id: leads_repo.survivor_of(a.lead_id) for a in activities}
        repo = SqlIngestRepository(conn)
        keys = repo.lead_keys({v for v in live.values() if v})
        moved = [replace(a, lead_id=live[a.lead_id] or a.lead_id) for a in activities]
        events, _dropped = activity_events(moved, keys, at)
        ingestor = Ingestor(repo, self.qualifier, self.settings.default_phone_region,
                            on_change=self.segment_tracker(conn).leads_changed)  # fmt: skip
        return ingestor.ingest(source.id, events, at)

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

    # segments --------------------------------------------------------------------------
    def segment_tracker(self, conn: Connection) -> segment_service.SegmentTracker:
        """Keeps segment membership current for leads changed in ``conn``'s transaction."""
        return segment_service.SegmentTracker(SqlSegmentRepository(conn))

    def segments(self) -> list[StoredSegment]:
        with self.engine.connect() as conn:
            return SqlSegmentRepository(conn).all()

    def segment(self, name: str) -> StoredSegment:
        with self.engine.connect() as conn:
            return segment_service.get(SqlSegmentRepository(conn), name)

    def segment_count(self, name: str) -> int:
        with self.engine.connect() as conn:
            repo = SqlSegmentRepository(conn)
            return repo.member_count(segment_service.get(repo, name).name)

    def put_segment(self, name: str, definition: object) -> RefreshReport:
        """Create or replace a segment from plain data and compute its members."""
        segment = segment_service.parse_definition(name, definition)
        with self.transaction() as conn:
            return segment_service.put(SqlSegmentRepository(conn), segment, self.clock.now())

    def delete_segment(self, name: str) -> None:
        with self.transaction() as conn:
            segment_service.delete(SqlSegmentRepository(conn), name)

    def segment_members(
        self, name: str, limit: int = 100, after: int | None = None
    ) -> list[tuple[int, datetime]]:
        """Members as (lead id, entered at), by lead id, after the lead id ``after``."""
        with self.engine.connect() as conn:
            return segment_service.members(SqlSegmentRepository(conn), name, limit, after)

    def lead_segments(self, lead_id: int) -> list[str]:
        """The segments the lead is in now, by name."""
        with self.engine.connect() as conn:
            live = self._live(conn, lead_id)
            return sorted(SqlSegmentRepository(conn).memberships([live]).get(live, set()))

    def refresh_segments(self, name: str | None = None) -> list[RefreshReport]:
        """Evaluate one segment (or all) in SQL and write the difference."""
        names = [name] if name is not None else [s.name for s in self.segments()]
        reports = []
        for each in names:
            with self.transaction() as conn:
                repo = SqlSegmentRepository(conn)
                reports.append(segment_service.refresh(repo, each, self.clock.now()))
        return reports

    def preview_segment(self, definition: object, limit: int = 20) -> dict[str, Any]:
        """How many leads an unsaved definition selects now, and the first ``limit`` ids."""
        tree = segment_service.parse_definition("preview", definition).tree
        with self.engine.connect() as conn:
            repo = SqlSegmentRepository(conn)
            return segment_service.preview(repo, tree, self.clock.now(), limit)

    # predictive scoring -----------------------------------------------------------------
    predictor_error: str | None = None  # why the active model could not be loaded

    def _load_predictor(self) -> None:
        """Load the active conversion model once; the qualifier sets p_convert with it. A
        model this version cannot read is left inactive, with the reason kept."""
        self.predictor_error = None
        with self.engine.connect() as conn:
            text = SqlPredictRepository(conn).model_text()
        predictor = None
        if text is not None:
            try:
                model = ModelFile.from_text(text, "the active model")
                predictor = LivePredictor(model, self.model.rules)
            except ValidationError as exc:
                self.predictor_error = exc.message
        self.qualifier = Qualifier(self.model, predictor)

    def train_model(
        self, options: StoreTrainOptions, progress: TrainProgress | None = None
    ) -> ModelFile:
        """Train a conversion model from the store's leads and store it (not activated)."""
        model = train_from_store(
            lambda: predict_reading(self.engine), self.model, options, progress
        )
        self.save_predictive_model(model)
        return model

    def save_predictive_model(self, model: ModelFile) -> None:
        with self.transaction() as conn:
            SqlPredictRepository(conn).save_model(model, self.clock.now())

    def predictive_models(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return SqlPredictRepository(conn).models()

    def predictive_model(self, version: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = SqlPredictRepository(conn).model_summary(version)
        if found is None:
            raise NotFound(f"no predictive model {version!r} (leadflow model list)")
        return found

    def predictive_model_file(self, version: str | None = None) -> ModelFile:
        """A stored model (the active one by default), ready to score or report on."""
        with self.engine.connect() as conn:
            text = SqlPredictRepository(conn).model_text(version)
        if text is None:
            raise NotFound(
                f"no predictive model {version!r} (leadflow model list)"
                if version
                else "no active predictive model (leadflow model activate VERSION)"
            )
        return ModelFile.from_text(text, f"model {version or 'active'}")

    def activate_model(
        self, version: str | None, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Make a stored model the live one (None: none) and refresh every lead's p_convert
        with it; returns the number of leads refreshed."""
        if version is not None:
            self.predictive_model(version)
        with self.transaction() as conn:
            SqlPredictRepository(conn).activate(version)
        self._load_predictor()
        return self.refresh_predictions(progress)

    def refresh_predictions(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild every lead's feature state from its events and its p_convert."""
        with self.engine.connect() as conn:
            chunks = list(rescore_service.chunks_of_leads(SqlRescoreRepository(conn)))
            total = SqlRescoreRepository(conn).count_leads()
        done = 0
        for ids in chunks:
            with self.transaction() as conn:
                predict_live.refresh_chunk(
                    SqlPredictRepository(conn), self.qualifier.predictor, ids, self.clock.now()
                )
            done += len(ids)
            if progress is not None:
                progress(done, total)
        return done

    def prediction(self, lead_id: int) -> dict[str, Any]:
        """The lead's conversion probability now and the factors pushing it up or down."""
        predictor = self.qualifier.predictor
        with self.engine.connect() as conn:
            live = lead_service.get_lead(SqlLeadRepository(conn), lead_id).id
            record = SqlPredictRepository(conn).current(live)
        if record is None:
            raise NotFound(f"no lead with id {lead_id}")
        if predictor is None:
            reason = self.predictor_error or "no active model (leadflow model activate)"
            return {"lead_id": live, "p_convert": None, "factors": [], "reason": reason}
        found = predictor.explain(record, self.clock.now())
        if found is None:
            return {"lead_id": live, "p_convert": None, "factors": [],
                    "reason": "no feature state yet (leadflow model refresh)"}  # fmt: skip
        return {"lead_id": live, **found}

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

    # sms -------------------------------------------------------------------------------
    @cached_property
    def sms_config(self) -> sms_service.SmsSettings:
        """The validated ``sms:`` settings (ConfigError naming file, line and key)."""
        return sms_service.sms_settings(self.settings.sms, self.settings.config_file)

    def sms_sender(self, client: httpx.Client) -> SmsSender:
        """The transport the ``sms:`` settings name, over the caller's HTTP client."""
        config = self.sms_config
        return build_sms_sender(config, self.settings.public_url, self.settings.home, client)

    def send_sms(
        self, to: str, text: str, *, key: str | None = None, lead_id: int | None = None
    ) -> sms_service.Outgoing:
        """Send one text now (transactional, not part of a journey); a suppressed number is
        skipped. Recorded in the delivery ledger when a lead has the number."""
        phone = self._sms_phone(to, "to")
        if not text.strip():
            raise ValidationError("text: the message is empty")
        key = key or sms_service.message_key("sms", "send", uuid.uuid4().hex)
        message = SmsMessage(key, phone, text, self.sms_config.sender)
        with self.transaction() as conn:
            out = sms_service.prepare(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), message, "sms_send",
                self.clock.now(), lead_id=lead_id,
            )  # fmt: skip
        return self._sms_deliver(out)

    def sms_inbound(
        self,
        sender: str,
        text: str,
        *,
        receiver: str = "",
        message_id: str | None = None,
        at: datetime | None = None,
        provider: str = "manual",
    ) -> sms_service.InboundOutcome:
        """Handle a text a recipient sent: STOP/START/HELP keywords or a reply (docs/sms.md)."""
        phone = self._sms_phone(sender, "from")
        inbound = sms_service.InboundSms(
            sender, receiver, text, message_id or uuid.uuid4().hex, at or self.clock.now(),
            provider,
        )  # fmt: skip
        with self.transaction() as conn:
            outcome = sms_service.apply_inbound(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), self.sms_config,
                inbound, phone,
            )  # fmt: skip
        if outcome.reply is not None:
            outcome.reply = self._sms_deliver(outcome.reply)
        self.record_activity(outcome.activities)
        return outcome

    def sms_report(
        self,
        status: ReportStatus,
        detail: str = "",
        *,
        key: str | None = None,
        provider_id: str | None = None,
    ) -> DeliveryRecord | None:
        """Record a delivery report (by our key or the provider's id); None if unknown."""
        with self.transaction() as conn:
            repo = SqlDeliveryRepository(conn)
            found = sms_service.find_delivery(repo, key, provider_id)
            row = repo.get(found.id, lock=True) if found is not None else None
            if row is None:
                return None
            activities = sms_service.apply_report(repo, row, status, detail, self.clock.now())
            row = repo.get(row.id)
        self.record_activity(activities)
        return row

    def _sms_phone(self, value: str, name: str) -> str:
        phone = normalize_phone(value, self.settings.default_phone_region)
        if phone is None:
            raise ValidationError(f"{name}: {value!r} is not a valid phone number")
        return phone

    def _sms_deliver(self, out: sms_service.Outgoing) -> sms_service.Outgoing:
        if out.skipped is not None or out.status != "queued":
            return out
        with httpx.Client(timeout=self.sms_config.timeout) as client:
            sender = self.sms_sender(client)
            with self.transaction() as conn:
                repo = SqlDeliveryRepository(conn)
                return sms_service.deliver(repo, sender, out, self.clock.now())

    # email -----------------------------------------------------------------------------
    @property
    def email_settings(self) -> EmailSettings:
        """The validated ``email:`` section of the config (docs/email.md)."""
        return self._email_settings

    @property
    def tokens(self) -> Tokens:
        """Signs the links of messages; the secret survives restarts (leadflow.secret)."""
        if self._tokens is None:
            self._tokens = Tokens(load_secret(self.settings.secret_key, self.settings.home))
        return self._tokens

    @property
    def public_base(self) -> str:
        return (self.settings.public_url or "http://127.0.0.1:8000").rstrip("/")

    def email_composer(self) -> EmailComposer:
        """Renders email deliveries with tracked links (the worker's email composer)."""
        return EmailComposer(self.email_settings, self.templates, self.tokens, self.public_base)

    def email_sender(self) -> SmtpEmailSender | CaptureEmailSender:
        """The configured email transport: SMTP, or a folder of .eml files (capture)."""
        config = self.email_settings
        signer = DkimSigner.from_settings(config.dkim) if config.dkim else None
        if config.transport == "capture":
            return CaptureEmailSender(config.capture_folder, config.id_domain, signer=signer)
        password = os.environ.get(config.password_env, "") if config.password_env else ""
        return SmtpEmailSender(config, password or config.password, signer=signer)

    def _live_lead(self, conn: Connection) -> Callable[[int], int]:
        repo = SqlLeadRepository(conn)
        return lambda lead_id: repo.survivor_of(lead_id) or lead_id

    def track_open(self, token: str, hit: email_tracking.Hit) -> None:
        """Record a pixel hit (a machine's is flagged); InvalidToken or NotFound if bad."""
        with self.transaction() as conn:
            found = email_tracking.record_open(
                SqlDeliveryRepository(conn), self.tokens, token, hit, self.email_settings
            )
        self.record_activity(found)

    def track_click(self, token: str, hit: email_tracking.Hit) -> str | None:
        """Record a click; the link's stored destination (None for the hidden honeypot)."""
        with self.transaction() as conn:
            url, found = email_tracking.record_click(
                SqlDeliveryRepository(conn), self.tokens, token, hit, self.email_settings
            )
        self.record_activity(found)
        return url

    def request_email_opt_in(
        self, lead_id: int, source: str, proof: dict[str, Any] | None = None
    ) -> DeliveryRecord:
        """Double opt-in: record a pending email consent and queue the confirmation email
        (the template ``nurture.double_opt_in_template``, checked first)."""
        template = self.nurture_rules.double_opt_in_template
        self.templates.check(template, "email")
        with self.transaction() as conn:
            live = self._live(conn, lead_id)
            address = SqlLeadRepository(conn).get(live)
            return consent_service.request_opt_in(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), live,
                address.email if address else None, template, source, proof or {},
                self.clock.now(),
            )  # fmt: skip

    def opt_in_target(self, token: str) -> DeliveryRecord:
        with self.engine.connect() as conn:
            return consent_service.opt_in_target(SqlDeliveryRepository(conn), self.tokens, token)

    def confirm_email_opt_in(self, token: str, ip: str | None) -> consent_service.Confirmed:
        """The click on a confirmation link: email consent granted, with the click as proof."""
        with self.transaction() as conn:
            return consent_service.confirm_opt_in(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), self.tokens, token, ip,
                self.clock.now(), self._live_lead(conn),
            )  # fmt: skip

    def unsubscribe_target(self, token: str) -> DeliveryRecord:
        with self.engine.connect() as conn:
            return email_tracking.unsubscribe_target(
                SqlDeliveryRepository(conn), self.tokens, token
            )

    def unsubscribe(self, token: str, method: str) -> email_tracking.Unsubscribed:
        """Suppress the address of an unsubscribe link at once and revoke email consent."""
        with self.transaction() as conn:
            done = email_tracking.unsubscribe(
                SqlDeliveryRepository(conn), SqlConsentRepository(conn), self.tokens, token,
                method, self.clock.now(), self._live_lead(conn),
            )  # fmt: skip
        self.record_activity(done.activities)
        return done

    def process_bounces(
        self, reports: Sequence[bounce_service.BounceReport]
    ) -> list[bounce_service.BounceOutcome]:
        """Hard bounces and complaints suppress; every report becomes an event."""
        with self.transaction() as conn:
            outcomes, found = bounce_service.apply_reports(
                SqlDeliveryRepository(conn), SqlConsentRepository(conn), reports,
                self.clock.now(), self._live_lead(conn),
            )  # fmt: skip
        self.record_activity(found)
        return outcomes

    def process_bounce(
        self, raw: bytes, where: str = "message"
    ) -> list[bounce_service.BounceOutcome]:
        """A DSN (RFC 3464) or ARF complaint (RFC 5965) message, applied."""
        return self.process_bounces(bounce_service.parse_report(raw, where))

    def preview_email(self, template: str, lead_id: int) -> tuple[EmailMessage, dict[str, Any]]:
        """The message a template makes for a lead, as the worker would send it."""
        lead = self.lead(lead_id)
        now = self.clock.now()
        draft = DeliveryRecord(
            id=0, key=f"preview:{template}:{lead.id}", lead_id=lead.id, channel="email",
            address=lead.email or "lead@example.invalid", journey=None, run_id=None, step=None,
            template=template, variant=None, status="queued", reason="", provider_id=None,
            attempts=0, parts=1, next_attempt_at=None, content={}, created_at=now, updated_at=now,
        )  # fmt: skip
        return self.email_composer().email(draft, lead)

    def is_suppressed(self, channel: str, address: str) -> bool:
        with self.engine.connect() as conn:
            repo = SqlConsentRepository(conn)
            return bool(repo.suppressed(parse_channel(channel), [address]))

    def send_test_email(self, to: str) -> SendReceipt:
        """Send a short message through the configured transport; its answer."""
        at = self.clock.now()
        message = EmailMessage(
            key=f"test:{at:%Y%m%dT%H%M%S%f}",
            to=to,
            from_addr=self.email_settings.sender,
            subject="leadflow test message",
            text=f"This is a test message from leadflow, sent at {at:%Y-%m-%d %H:%M:%S} UTC.\n",
        )
        sender = self.email_sender()
        try:
            return sender.send(message)
        finally:
            sender.close()

    # handoff ---------------------------------------------------------------------------
    @cached_property
    def handoff_config(self) -> handoff_service.HandoffConfig:
        """The ``webhooks`` and ``sales`` settings, validated and targets checked (SSRF)."""
        return handoff_service.load_handoff_config(
            self.settings.webhooks, self.settings.sales, self.settings.config_file,
            lambda url, allow: ssrf.check_target(url, allow, unresolved_ok=True),
        )  # fmt: skip

    def webhook_deliveries(
        self,
        status: str | None = None,
        endpoint: str | None = None,
        lead_id: int | None = None,
        limit: int = 100,
        after: int | None = None,
    ) -> list[webhook_service.WebhookView]:
        """The webhook ledger, newest first (``status``: pending, delivered or dead)."""
        webhook_service.check_status(status)
        with self.engine.connect() as conn:
            return webhook_db.SqlWebhookRepository(conn).page(
                status, endpoint, lead_id, limit, after
            )

    def webhook_delivery(self, delivery_id: int) -> webhook_service.WebhookView:
        with self.engine.connect() as conn:
            found = webhook_db.SqlWebhookRepository(conn).get(delivery_id)
        if found is None:
            raise NotFound(f"no webhook delivery with id {delivery_id}")
        return found

    def replay_webhooks(self, ids: Sequence[int] | None = None) -> list[int]:
        """Send deliveries again (the dead ones when ``ids`` is None), same webhook-id."""
        with self.transaction() as conn:
            repo = webhook_db.SqlWebhookRepository(conn)
            wanted = list(ids) if ids is not None else repo.dead_ids()
            done = repo.replay(wanted, self.clock.now())
            missing = sorted(set(wanted) - set(done))
            if missing:
                raise NotFound(f"no webhook delivery with id {missing[0]}")
            return done

    def webhook_counts(self) -> dict[str, dict[str, int]]:
        with self.engine.connect() as conn:
            return webhook_db.SqlWebhookRepository(conn).counts()

    def handoff_payload(self, lead_id: int) -> dict[str, Any]:
        """The payload a handoff of this lead would carry now (docs/handoff.md)."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            reader = handoff_db.SqlHandoffRepository(conn, self.model, now)
            facts = reader.facts(lead_id, self.handoff_config.webhooks.last_touches)
        if facts is None:
            raise NotFound(f"no lead with id {lead_id}")
        return handoff_service.handoff_payload(facts, now)

    def handoff_export(
        self, stage: str, since: datetime | None = None, chunk: int = 200
    ) -> tuple[int, Iterator[dict[str, str]]]:
        """How many leads, and the CSV rows of the leads now in ``stage`` (moved into it at
        or after ``since``), read in chunks."""
        handoff_service.check_stage(stage)
        touches = self.handoff_config.webhooks.last_touches
        with self.engine.connect() as conn:
            reader = handoff_db.SqlHandoffRepository(conn, self.model, self.clock.now())
            count = reader.count_in_stage(stage, since)

        def rows() -> Iterator[dict[str, str]]:
            after: int | None = None
            while True:
                with self.engine.connect() as conn:
                    now = self.clock.now()
                    reader = handoff_db.SqlHandoffRepository(conn, self.model, now)
                    ids = reader.export_ids(stage, since, after, chunk)
                    found = [reader.facts(i, touches) for i in ids]
                for facts in found:
                    if facts is not None:
                        yield handoff_service.csv_row(
                            handoff_service.handoff_payload(facts, now), stage
                        )
                if len(ids) < chunk:
                    return
                after = ids[-1]

        return count, rows()

    def sales_reps(self) -> list[assignment_service.Rep]:
        with self.transaction() as conn:
            repo = handoff_db.SqlAssignmentRepository(conn)
            repo.sync_reps(self.handoff_config.reps)
            return repo.reps()

    def assignment(self, lead_id: int) -> dict[str, Any]:
        """The lead's rep (or null), the rule that chose them, and the SLA due time."""
        with self.engine.connect() as conn:
            lead = lead_service.get_lead(SqlLeadRepository(conn), lead_id)
            found = handoff_db.SqlAssignmentRepository(conn).assignment_of(lead.id)
        return {
            "lead_id": lead.id,
            "stage": lead.stage,
            "assignment": found.to_json() if found else None,
            "mql_at": lead.mql_at.isoformat() if lead.mql_at else None,
            "sla_due_at": lead.sla_due_at.isoformat() if lead.sla_due_at else None,
        }

    def assign_lead(self, lead_id: int, rep_name: str) -> assignment_service.Assignment:
        """Give a lead to a rep by name (rule ``manual``), over any earlier assignment."""
        with self.transaction() as conn:
            repo = handoff_db.SqlAssignmentRepository(conn)
            repo.sync_reps(self.handoff_config.reps)
            live = self._live(conn, lead_id)
            return assignment_service.assign_to(repo, live, rep_name, self.clock.now())


def open_leadflow(settings: Settings | None = None, *, migrate_schema: bool = True) -> Leadflow:
    """Build leadflow from settings (the environment by default) and bring its schema up."""
    app = Leadflow(settings or Settings())
    if migrate_schema:
        app.migrate()
    return app
