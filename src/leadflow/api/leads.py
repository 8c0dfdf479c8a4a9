"""/api/leads: paged, filterable lead listing and one lead with its events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from leadflow.bootstrap import Leadflow
from leadflow.ports import LeadFilter

router = APIRouter(prefix="/api", tags=["leads"])


def _leadflow(request: Request) -> Leadflow:
    app: Leadflow = request.app.state.leadflow
    return app


@router.get("/leads", summary="List leads, newest first, with keyset paging")
def list_leads(
    request: Request,
    stage: str | None = None,
    email: str | None = None,
    q: Annotated[str | None, Query(description="Substring of email or phone")] = None,
    source_id: int | None = None,
    account: Annotated[str | None, Query(description="Account group id")] = None,
    seen_since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    after: Annotated[int | None, Query(description="next_after of the previous page")] = None,
    count: bool = False,
) -> dict[str, Any]:
    filters = LeadFilter(stage, email, q, source_id, account, seen_since)
    page = _leadflow(request).leads(filters, limit=limit, after=after, count=count)
    return {
        "items": [lead.to_json() for lead in page.items],
        "next_after": page.next_after,
        "total": page.total,
    }


@router.get("/leads/{lead_id}", summary="One lead: identities, traits, stage and scores")
def get_lead(request: Request, lead_id: int) -> dict[str, Any]:
    return _leadflow(request).lead(lead_id).to_json()


@router.get("/leads/{lead_id}/events", summary="A lead's events, newest first")
def lead_events(
    request: Request, lead_id: int, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    found = _leadflow(request).lead_events(lead_id, limit)
    return {"items": [event.to_json() for event in found]}


@router.get("/identity/conflicts", summary="Leads whose identities disagree, never merged")
def conflicts(request: Request, lead_id: int | None = None) -> dict[str, Any]:
    return {
        "items": [
            {
                "id": c.id,
                "lead_id": c.lead_id,
                "other_lead_id": c.other_lead_id,
                "key": c.key,
                "reason": c.reason,
                "message_id": c.message_id,
                "created_at": c.created_at.isoformat(),
            }
            for c in _leadflow(request).conflicts(lead_id)
        ]
    }


@router.get("/identity/merges", summary="Every merge of two leads, with its cause")
def merges(request: Request, lead_id: int | None = None) -> dict[str, Any]:
    return {
        "items": [
            {
                "survivor_id": m.survivor_id,
                "merged_id": m.merged_id,
                "cause": m.cause,
                "message_id": m.message_id,
                "created_at": m.created_at.isoformat(),
            }
            for m in _leadflow(request).merges(lead_id)
        ]
    }
