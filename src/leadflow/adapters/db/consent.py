"""The consent ledger and the suppression list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, func, insert, select

from leadflow.adapters.db.engine import insert_ignore
from leadflow.adapters.db.tables import consents, leads, suppressions
from leadflow.domain.consent import Channel, ConsentRecord, ConsentStatus
from leadflow.ports import SuppressionView


class SqlConsentRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # consent ledger ----------------------------------------------------------------------
    def record(self, rows: Sequence[ConsentRecord]) -> None:
        if not rows:
            return
        self.conn.execute(
            insert(consents),
            [
                {
                    "lead_id": r.lead_id,
                    "channel": r.channel.value,
                    "status": r.status.value,
                    "source": r.source,
                    "proof": r.proof,
                    "at": r.at,
                }
                for r in rows
            ],
        )

    def current(self, lead_ids: Iterable[int], channel: Channel) -> dict[int, ConsentStatus]:
        """The latest status per lead on the channel; leads with no row are absent."""
        ids = sorted(set(lead_ids))
        if not ids:
            return {}
        latest = (
            select(func.max(consents.c.id))
            .where(consents.c.lead_id.in_(ids), consents.c.channel == channel.value)
            .group_by(consents.c.lead_id)
        )
        rows = self.conn.execute(
            select(consents.c.lead_id, consents.c.status).where(consents.c.id.in_(latest))
        )
        return {lead: ConsentStatus(status) for lead, status in rows}

    def history(self, lead_id: int) -> list[ConsentRecord]:
        rows = self.conn.execute(
            select(consents).where(consents.c.lead_id == lead_id).order_by(consents.c.id)
        ).mappings()
        return [
            ConsentRecord(
                lead_id=row["lead_id"],
                channel=Channel(row["channel"]),
                status=ConsentStatus(row["status"]),
                source=row["source"],
                at=row["at"],
                proof=dict(row["proof"] or {}),
            )
            for row in rows
        ]

    def leads_with_address(self, channel: Channel, address: str) -> list[int]:
        """Live leads whose email or phone (per channel) is ``address``."""
        column = leads.c.email if channel is Channel.EMAIL else leads.c.phone
        query = (
            select(leads.c.id)
            .where(column == address, leads.c.merged_into.is_(None))
            .order_by(leads.c.id)
        )
        return list(self.conn.scalars(query))

    # suppression list --------------------------------------------------------------------
    def suppress(
        self,
        channel: Channel,
        address: str,
        reason: str,
        at: datetime,
        lead_id: int | None = None,
        detail: str = "",
    ) -> bool:
        """Add the address; False when it was already suppressed (the first reason is kept)."""
        values = {
            "channel": channel.value,
            "address": address,
            "reason": reason,
            "detail": detail,
            "lead_id": lead_id,
            "created_at": at,
        }
        statement = insert_ignore(self.conn, suppressions, ["channel", "address"]).values(values)
        inserted = self.conn.execute(statement.returning(suppressions.c.id)).first()
        return inserted is not None

    def unsuppress(self, channel: Channel, address: str) -> bool:
        result = self.conn.execute(
            suppressions.delete().where(
                and_(suppressions.c.channel == channel.value, suppressions.c.address == address)
            )
        )
        return bool(result.rowcount)

    def suppressed(self, channel: Channel, addresses: Iterable[str]) -> set[str]:
        wanted = sorted({a for a in addresses if a})
        if not wanted:
            return set()
        query = select(suppressions.c.address).where(
            suppressions.c.channel == channel.value, suppressions.c.address.in_(wanted)
        )
        return set(self.conn.scalars(query))

    def suppression_list(
        self, channel: Channel | None = None, limit: int = 1000
    ) -> list[SuppressionView]:
        query = select(suppressions).order_by(suppressions.c.id).limit(limit)
        if channel is not None:
            query = query.where(suppressions.c.channel == channel.value)
        return [
            SuppressionView(
                channel=row["channel"],
                address=row["address"],
                reason=row["reason"],
                detail=row["detail"],
                lead_id=row["lead_id"],
                created_at=row["created_at"],
            )
            for row in self.conn.execute(query).mappings()
        ]
