"""The sales handoff: webhooks, dead letters, payloads, export and assignment."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from leadflow.adapters.db import handoff as handoff_db
from leadflow.adapters.db import webhooks as webhook_db
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.webhooks import ssrf
from leadflow.bootstrap.channels import Channels
from leadflow.domain.errors import (
    NotFound,
)
from leadflow.services import assignment as assignment_service
from leadflow.services import handoff as handoff_service
from leadflow.services import leads as lead_service
from leadflow.services import webhooks as webhook_service


class Handoff(Channels):
    """The sales handoff: webhooks, dead letters, payloads, export and assignment."""

    # handoff ---------------------------------------------------------------------------
    @cached_property
    def handoff_config(self) -> handoff_service.HandoffConfig:
        """The ``webhooks`` and ``sales`` settings, validated and targets checked (SSRF)."""
        return handoff_service.load_handoff_config(
            self.settings.webhooks, self.settings.sales, self.settings.config_file,
            ssrf.check_configured_target,
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

    def sales_queue(self, rep: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The MQLs waiting for sales, best first (predicted probability, engagement, fit,
        oldest MQL), each with its rep, its SLA and why it is an MQL; ``rep``: only theirs."""
        if rep is not None and rep not in {r.name for r in self.sales_reps()}:
            known = ", ".join(sorted(r.name for r in self.sales_reps())) or "none configured"
            raise NotFound(f"rep: no sales rep named {rep!r}; reps: {known}")
        now = self.clock.now()
        with self.engine.connect() as conn:
            found = handoff_db.queue_ids(conn, rep, limit)
            views = SqlLeadRepository(conn).views([lead for lead, _ in found])
        items = []
        for rank, (lead_id, owner) in enumerate(found, start=1):
            lead = views[lead_id]
            why = handoff_service.explanation_summary(self.explain(lead_id))
            items.append(
                {
                    "rank": rank,
                    "lead_id": lead_id,
                    "email": lead.email,
                    "name": " ".join(
                        str(lead.traits.get(k, "")) for k in ("first_name", "last_name")
                    ).strip(),
                    "company": lead.traits.get("company"),
                    "fit_grade": lead.fit_grade,
                    "engagement": round(lead.engagement_score, 2),
                    "p_convert": lead.p_convert,
                    "rep": owner,
                    "mql_at": lead.mql_at.isoformat() if lead.mql_at else None,
                    "sla_due_at": lead.sla_due_at.isoformat() if lead.sla_due_at else None,
                    "overdue": bool(lead.sla_due_at and lead.sla_due_at < now),
                    "why": why,
                }
            )
        return items
