"""What the scoring, lifecycle, explain and rescore tests share: a clock moved by hand, a store
opened with a model written to ``leadflow.yaml``, and builders of Segment-style messages.

The fixtures built on these are in ``conftest.py``; each test module keeps its own model.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow import Leadflow, Settings, SourceRecord

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)

Opener = Callable[[str], Leadflow]
"""Opens leadflow with the model text given (the ``open_store`` fixture)."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def open_with_model(settings: Settings, clock: Clock, model: str) -> Leadflow:
    """Write the model to ``settings.config_file`` and open leadflow on it, migrated."""
    settings.config_file.write_text(model)
    app = Leadflow(settings, clock=clock)
    app.migrate()
    return app


# --- messages -----------------------------------------------------------------------------
def message(kind: str, user: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "userId": user,
        "timestamp": at.isoformat(),
        "messageId": uuid.uuid4().hex,
        **fields,
    }


def identify(user: str, at: datetime = T0, **traits: Any) -> dict[str, Any]:
    return message("identify", user, at, traits=traits)


def track(user: str, name: str, at: datetime = T0) -> dict[str, Any]:
    return message("track", user, at, event=name)


def page(user: str, path: str, at: datetime = T0) -> dict[str, Any]:
    return message("page", user, at, context={"page": {"path": path}})


# --- the store ----------------------------------------------------------------------------
def ingest(app: Leadflow, source: SourceRecord, *messages: dict[str, Any]) -> None:
    """Ingest the messages; none may be refused."""
    assert app.ingest(source, list(messages)).errors == []


def lead_id(app: Leadflow, user: str) -> int:
    """The id of the one lead known by this userId."""
    [found] = [lead for lead in app.leads(limit=100).items if user in lead.identities["userId"]]
    return found.id
