"""/api/webhooks: the webhook ledger (the dead-letter list with ?status=dead) and replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api/webhooks", tags=["handoff"])


@router.get("/deliveries", summary="Webhook deliveries, newest first (status=dead: dead letters)")
def deliveries(
    request: Request,
    status: Annotated[str | None, Query(description="pending, delivered or dead")] = None,
    endpoint: str | None = None,
    lead_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(description="The last id of the previous page")] = None,
) -> dict[str, Any]:
    found = leadflow_of(request).webhook_deliveries(status, endpoint, lead_id, limit, after)
    return {
        "items": [item.to_json() for item in found],
        "next_after": found[-1].id if len(found) == limit else None,
    }


@router.get("/deliveries/{delivery_id}", summary="One delivery, with its payload")
def delivery(request: Request, delivery_id: int) -> dict[str, Any]:
    return leadflow_of(request).webhook_delivery(delivery_id).to_json(payload=True)


@router.post(
    "/deliveries/{delivery_id}/replay",
    summary="Send a delivery again (same webhook-id, fresh attempts)",
)
def replay(request: Request, delivery_id: int) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    leadflow.replay_webhooks([delivery_id])
    return leadflow.webhook_delivery(delivery_id).to_json()
