"""/api/journeys, their runs and reports; offer codes; a lead's consent and messages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api", tags=["nurture"])


class Enabled(BaseModel):
    enabled: bool


class ConsentChange(BaseModel):
    channel: str = Field(description="email or sms")
    status: str = Field(description="granted, pending or revoked")
    source: str = Field(min_length=1, description="Where it came from: form, call, import...")
    proof: dict[str, Any] = Field(default_factory=dict)


class Redemption(BaseModel):
    code: str = Field(min_length=1)


@router.get("/journeys", summary="Every journey with its trigger, state and runs")
def list_journeys(request: Request) -> list[dict[str, Any]]:
    return leadflow_of(request).journeys()


@router.get("/journeys/{name}", summary="One journey: definition and runs by status")
def get_journey(request: Request, name: str) -> dict[str, Any]:
    return leadflow_of(request).journey(name)


@router.put("/journeys/{name}", summary="Create or replace a journey (checked first)")
def put_journey(
    request: Request, name: str, spec: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    leadflow.save_journey(name, spec)
    return leadflow.journey(name)


@router.patch("/journeys/{name}", summary="Switch a journey on or off")
def patch_journey(request: Request, name: str, body: Enabled) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    leadflow.set_journey_enabled(name, body.enabled)
    return leadflow.journey(name)


@router.delete("/journeys/{name}", status_code=204, summary="Remove a journey")
def delete_journey(request: Request, name: str) -> Response:
    leadflow_of(request).delete_journey(name)
    return Response(status_code=204)


@router.get("/journeys/{name}/runs", summary="Runs of a journey, newest first, with their log")
def journey_runs(
    request: Request,
    name: str,
    status: str | None = Query(default=None, description="active or done"),
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    leadflow = leadflow_of(request)
    leadflow.journey(name)
    return leadflow.journey_runs(name, None, status, limit)


@router.get("/journeys/{name}/report", summary="Results per step and A/B variant")
def journey_report(request: Request, name: str) -> dict[str, Any]:
    return leadflow_of(request).journey_report(name)


@router.post("/offers/redeem", summary="Redeem an offer code (once, before it expires)")
def redeem(request: Request, body: Redemption) -> dict[str, Any]:
    return leadflow_of(request).redeem_coupon(body.code)


@router.get("/leads/{lead_id}/offers", summary="The offer codes issued to a lead")
def lead_offers(request: Request, lead_id: int) -> list[dict[str, Any]]:
    return leadflow_of(request).coupons(lead_id)


@router.get("/leads/{lead_id}/consent", summary="A lead's consent per channel and its ledger")
def lead_consent(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).consent(lead_id)


@router.post("/leads/{lead_id}/consent", summary="Record a consent grant or withdrawal")
def set_consent(request: Request, lead_id: int, body: ConsentChange) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    leadflow.set_consent(lead_id, body.channel, body.status, body.source, body.proof)
    return leadflow.consent(lead_id)


class OptInRequest(BaseModel):
    source: str = Field(min_length=1, description="Where the sign-up came from.")
    proof: dict[str, Any] = Field(default_factory=dict)


@router.post("/leads/{lead_id}/consent/request", summary="Double opt-in: ask to confirm")
def request_opt_in(request: Request, lead_id: int, body: OptInRequest) -> dict[str, Any]:
    delivery = leadflow_of(request).request_email_opt_in(lead_id, body.source, body.proof)
    return delivery.to_json()


@router.get("/leads/{lead_id}/messages", summary="Messages sent or skipped for a lead")
def lead_messages(
    request: Request, lead_id: int, limit: int = Query(default=100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    return [d.to_json() for d in leadflow_of(request).deliveries(lead_id, limit)]


@router.get("/leads/{lead_id}/journeys", summary="The journey runs of a lead, with their log")
def lead_journeys(request: Request, lead_id: int) -> list[dict[str, Any]]:
    return leadflow_of(request).journey_runs(None, lead_id, None, 100)
