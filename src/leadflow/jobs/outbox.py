"""The outbox dispatcher: hands each new outbox row to every consumer, exactly once.

Consumers (journey triggers, sales webhooks...) only write rows of their own (runs to start,
webhook deliveries to make); they run in the dispatcher's transaction, so a batch of outbox
rows is marked processed together with everything its consumers wrote, or not at all.
The slow work (sending) happens later, from those rows, in transactions of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection

from leadflow.adapters.db.outbox import SqlOutboxRepository
from leadflow.bootstrap import Leadflow
from leadflow.ports import OutboxMessage

# A consumer: given the transaction's connection, the rows and the time, write its own rows.
Consumer = Callable[[Connection, Sequence[OutboxMessage], datetime], None]

BATCH = 500


def dispatch_once(leadflow: Leadflow, consumers: Sequence[Consumer], batch: int = BATCH) -> int:
    """Dispatch one batch; the number of outbox rows handled."""
    now = leadflow.clock.now()
    with leadflow.transaction() as conn:
        repo = SqlOutboxRepository(conn)
        rows = repo.pending(batch)
        if not rows:
            return 0
        for consume in consumers:
            consume(conn, rows, now)
        repo.mark_processed([row.id for row in rows], now)
    return len(rows)


def dispatch(leadflow: Leadflow, consumers: Sequence[Consumer], batch: int = BATCH) -> int:
    """Dispatch until the outbox is empty; the number of rows handled."""
    total = 0
    while True:
        done = dispatch_once(leadflow, consumers, batch)
        total += done
        if done < batch:
            return total
