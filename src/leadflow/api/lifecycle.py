"""/api/leads/{id}/explain, the sales step and stage changes, and the live model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api", tags=["scoring and lifecycle"])


class Decision(BaseModel):
    reason: str = Field(min_length=1, description="A reason code from the model's list.")
    note: str = ""
    by: str = Field(default="api", description="Who decides (a sales rep).")


class Move(Decision):
    stage: str = Field(min_length=1)


def _decide(request: Request, lead_id: int, decision: str, body: Decision) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    change = leadflow.decide(lead_id, decision, body.reason, f"user:{body.by}", body.note)
    return change.to_json()


@router.get("/leads/{lead_id}/explain", summary="Why the lead has its scores and stage")
def explain(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).explain(lead_id)


@router.post("/leads/{lead_id}/accept", summary="Sales accepts an MQL (MQL -> SAL)")
def accept(request: Request, lead_id: int, body: Decision) -> dict[str, Any]:
    change = leadflow_of(request).decide(
        lead_id, "accept", body.reason, f"user:{body.by}", body.note
    )
    return change.to_json()


@router.post("/leads/{lead_id}/reject", summary="Sales rejects an MQL (MQL -> recycled)")
def reject(request: Request, lead_id: int, body: Decision) -> dict[str, Any]:
    change = leadflow_of(request).decide(
        lead_id, "reject", body.reason, f"user:{body.by}", body.note
    )
    return change.to_json()


@router.post("/leads/{lead_id}/stage", summary="Move a lead along the lifecycle")
def move(request: Request, lead_id: int, body: Move) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    change = leadflow.move_stage(
        lead_id, body.stage.lower(), body.reason, f"user:{body.by}", body.note
    )
    return change.to_json()


@router.get("/model", summary="The live scoring model and its version")
def model(request: Request) -> dict[str, Any]:
    live = leadflow_of(request).model
    return {"version": live.version, **live.spec}
