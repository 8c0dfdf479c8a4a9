"""/api/leads: paged, filterable lead listing and one lead with its events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from leadflow.api.state import leadflow_of
from leadflow.ports import LeadFilter

router = APIRouter(prefix="/api", tags=["leads"])


@router.get("/leads", summary="List leads, newest or best first, with keyset paging")
def list_leads(
    request: Request,
    stage: str | None = None,
    email: str | None = None,
    q: Annotated[str | None, Query(description="Substring of email or phone")] = None,
    source_id: int | None = None,
    account: Annotated[str | None, Query(description="Account group id")] = None,
    seen_since: datetime | None = None,
    grade: Annotated[str | None, Query(description="Fit grade: A, B, C or D")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    after: Annotated[int | None, Query(description="next_after of the previous page")] = None,
    sort: Annotated[
        str, Query(description="newest, engagement, fit or p_convert (best first)")
    ] = "newest",
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    count: bool = False,
) -> dict[str, Any]:
    filters = LeadFilter(stage, email, q, source_id, account, seen_since, grade)
    page = leadflow_of(request).leads(
        filters, limit=limit, after=after, count=count, sort=sort, cursor=cursor
    )
    return {
        "items": [lead.to_json() for lead in page.items],
        "next_after": page.next_after,
        "next_cursor": page.next_cursor,
        "total": page.total,
    }


@router.get("/leads/{lead_id}", summary="One lead: identities, traits, stage and scores")
def get_lead(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).lead(lead_id).to_json()


@router.get("/leads/{lead_id}/events", summary="A lead's events, newest first")
def lead_events(
    request: Request, lead_id: int, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    found = leadflow_of(request).lead_events(lead_id, limit)
    return {"items": [event.to_json() for event in found]}


@router.get("/identity/conflicts", summary="Leads whose identities disagree, never merged")
def conflicts(request: Request, lead_id: int | None = None) -> dict[str, Any]:
    return {"items": [c.to_json() for c in leadflow_of(request).conflicts(lead_id)]}


@router.get("/identity/merges", summary="Every merge of two leads, with its cause")
def merges(request: Request, lead_id: int | None = None) -> dict[str, Any]:
    return {"items": [m.to_json() for m in leadflow_of(request).merges(lead_id)]}
