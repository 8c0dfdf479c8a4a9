"""The delivery ledger: one row per message and recipient, unique on its idempotency key.

A row is created (``queued``) before any transport is called and moves to ``sent`` only after
the transport confirmed the hand-off, so a worker killed in between sends the row again on
restart at most once more only if the transport never confirmed it (see services.deliveries).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, RowMapping, select, text, update

from leadflow.adapters.db.engine import insert_ignore
from leadflow.adapters.db.tables import deliveries
from leadflow.ports import DeliveryRecord, NewDelivery

_CREATE_PG = text(
    """
    INSERT INTO deliveries (key, lead_id, channel, address, journey, run_id, step, template,
        variant, status, reason, attempts, parts, next_attempt_at, content, created_at,
        updated_at)
    SELECT key, lead_id, channel, address, journey, run_id, step, template, variant, status,
        reason, attempts, parts, next_attempt_at, content, created_at, updated_at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(
        key text, lead_id bigint, channel text, address text, journey text, run_id bigint,
        step text, template text, variant text, status text, reason text, attempts int,
        parts int, next_attempt_at timestamptz, content jsonb, created_at timestamptz,
        updated_at timestamptz
    )
    ON CONFLICT (key) DO NOTHING
    """
)


def _json(value: object) -> str:
    """JSON text for a json_to_recordset parameter (datetimes in ISO 8601)."""
    return orjson.dumps(value, default=str).decode()


FIRST_TIME_COLUMNS = frozenset(
    {"opened_at", "clicked_at", "replied_at", "delivered_at", "unsubscribed_at"}
)


def delivery_of(row: RowMapping) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        key=row["key"],
        lead_id=row["lead_id"],
        channel=row["channel"],
        address=row["address"],
        journey=row["journey"],
        run_id=row["run_id"],
        step=row["step"],
        template=row["template"],
        variant=row["variant"],
        status=row["status"],
        reason=row["reason"],
        provider_id=row["provider_id"],
        attempts=row["attempts"],
        parts=row["parts"],
        next_attempt_at=row["next_attempt_at"],
        content=dict(row["content"] or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        delivered_at=row["delivered_at"],
        opened_at=row["opened_at"],
        clicked_at=row["clicked_at"],
        replied_at=row["replied_at"],
        unsubscribed_at=row["unsubscribed_at"],
    )


def _queued(new: NewDelivery, at: datetime) -> dict[str, Any]:
    """The row of a new delivery: queued, due now, no attempt yet."""
    return {
        "key": new.key,
        "lead_id": new.lead_id,
        "channel": new.channel,
        "address": new.address,
        "journey": new.journey,
        "run_id": new.run_id,
        "step": new.step,
        "template": new.template,
        "variant": new.variant,
        "status": "queued",
        "reason": "",
        "attempts": 0,
        "parts": 1,
        "next_attempt_at": at,
        "content": new.content,
        "created_at": at,
        "updated_at": at,
    }


class SqlDeliveryRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def create(self, new: NewDelivery, at: datetime) -> tuple[DeliveryRecord, bool]:
        """The row for ``new.key``, created ``queued`` unless it exists; (row, created)."""
        values = _queued(new, at)
        statement = insert_ignore(self.conn, deliveries, ["key"]).values(values)
        inserted = self.conn.execute(statement.returning(deliveries.c.id)).first()
        found = self.by_key(new.key)
        assert found is not None
        return found, inserted is not None

    def create_many(self, rows: list[NewDelivery], at: datetime) -> int:
        """Queue many deliveries at once; keys that exist already are left alone."""
        if not rows:
            return 0
        values = [_queued(new, at) for new in rows]
        if self.pg:
            payload = _json(values)
            return max(self.conn.execute(_CREATE_PG, {"rows": payload}).rowcount, 0)
        result = self.conn.execute(insert_ignore(self.conn, deliveries, ["key"]), values)
        return max(result.rowcount, 0)

    def lease(self, ids: list[int], until: datetime, at: datetime) -> None:
        """Hold queued rows for one worker until ``until`` (they are due again after it)."""
        if ids:
            self.conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids), deliveries.c.status == "queued")
                .values(next_attempt_at=until, updated_at=at)
            )

    def get(self, delivery_id: int, lock: bool = False) -> DeliveryRecord | None:
        query = select(deliveries).where(deliveries.c.id == delivery_id)
        if lock and self.pg:
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return delivery_of(row) if row is not None else None

    def by_key(self, key: str) -> DeliveryRecord | None:
        row = self.conn.execute(select(deliveries).where(deliveries.c.key == key)).mappings()
        first = row.first()
        return delivery_of(first) if first is not None else None

    def by_provider_id(self, channel: str, provider_id: str) -> DeliveryRecord | None:
        query = select(deliveries).where(
            deliveries.c.channel == channel, deliveries.c.provider_id == provider_id
        )
        row = self.conn.execute(query.order_by(deliveries.c.id.desc())).mappings().first()
        return delivery_of(row) if row is not None else None

    def due(self, now: datetime, limit: int) -> list[DeliveryRecord]:
        """Queued rows whose next attempt is due, oldest first; locked on PostgreSQL."""
        query = (
            select(deliveries)
            .where(deliveries.c.status == "queued", deliveries.c.next_attempt_at <= now)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
        )
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return [delivery_of(row) for row in self.conn.execute(query).mappings()]

    def of_lead(self, lead_id: int, limit: int = 100) -> list[DeliveryRecord]:
        query = (
            select(deliveries)
            .where(deliveries.c.lead_id == lead_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        return [delivery_of(row) for row in self.conn.execute(query).mappings()]

    def _set(self, delivery_id: int, at: datetime, **values: Any) -> None:
        self.conn.execute(
            update(deliveries).where(deliveries.c.id == delivery_id).values(updated_at=at, **values)
        )

    def mark_sent(
        self,
        delivery_id: int,
        provider_id: str | None,
        parts: int,
        detail: str,
        at: datetime,
        content: dict[str, Any] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"content": content} if content is not None else {}
        if self.pg:  # a lost confirmation only means a resend of the same message id
            self.conn.execute(text("SET LOCAL synchronous_commit = off"))
        self._set(
            delivery_id,
            at,
            **extra,
            status="sent",
            provider_id=provider_id,
            parts=parts,
            reason=detail,
            sent_at=at,
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=None,
        )

    def mark_retry(self, delivery_id: int, error: str, next_at: datetime, at: datetime) -> None:
        self._set(
            delivery_id,
            at,
            reason=error,
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=next_at,
        )

    def reschedule(self, delivery_id: int, until: datetime, why: str, at: datetime) -> None:
        """Not yet (quiet hours, frequency cap): due again at ``until``, no attempt counted."""
        self._set(delivery_id, at, next_attempt_at=until, reason=why)

    def mark_failed(self, delivery_id: int, reason: str, at: datetime, attempted: bool) -> None:
        extra: dict[str, Any] = {"attempts": deliveries.c.attempts + 1} if attempted else {}
        self._set(delivery_id, at, status="failed", reason=reason, next_attempt_at=None, **extra)

    def mark_skipped(self, delivery_id: int, reason: str, at: datetime) -> None:
        self._set(delivery_id, at, status="skipped", reason=reason, next_attempt_at=None)

    def set_content(self, delivery_id: int, content: dict[str, Any], at: datetime) -> None:
        self._set(delivery_id, at, content=content)

    def set_status(self, delivery_id: int, status: str, reason: str, at: datetime) -> None:
        """A status reported by the network later (delivered, bounced, failed)."""
        extra: dict[str, Any] = {"delivered_at": at} if status == "delivered" else {}
        self._set(delivery_id, at, status=status, reason=reason, **extra)

    def mark_first(self, delivery_id: int, column: str, at: datetime) -> bool:
        """Set ``opened_at``/``clicked_at``/``replied_at``/``delivered_at`` once; True the
        first time."""
        if column not in FIRST_TIME_COLUMNS:
            raise ValueError(f"not a first-time column: {column}")
        target = deliveries.c[column]
        result = self.conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id, target.is_(None))
            .values({column: at, "updated_at": at})
        )
        return bool(result.rowcount)
