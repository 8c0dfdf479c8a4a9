"""/api/leads/{id}/prediction and /api/models: the conversion probability and its factors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api", tags=["predictive scoring"])


@router.get(
    "/leads/{lead_id}/prediction",
    summary="A lead's conversion probability now and the factors pushing it up or down",
)
def prediction(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).prediction(lead_id)


@router.get("/models", summary="The stored conversion models, oldest first")
def models(request: Request) -> dict[str, Any]:
    items = leadflow_of(request).predictive_models()
    for item in items:
        item["metrics"] = {k: v for k, v in item["metrics"].items() if k != "curve"}
    return {"items": items}


@router.get("/models/{version}", summary="One stored conversion model: metrics and features")
def model(request: Request, version: str) -> dict[str, Any]:
    found = leadflow_of(request).predictive_model(version)
    found["metrics"] = {k: v for k, v in found["metrics"].items() if k != "curve"}
    return found
