"""/api/leads/{id}/export and erasure: everything held on a person, or none of it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api", tags=["privacy"])


@router.get("/leads/{lead_id}/export", summary="Everything held on a person, by table")
def export_lead(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).export_lead(lead_id)


@router.delete("/leads/{lead_id}", summary="Erase a person from every table")
def erase_lead(request: Request, lead_id: int) -> dict[str, Any]:
    return {"lead_id": lead_id, "erased": leadflow_of(request).erase_lead(lead_id)}
