"""/api/costs: what was spent per source, UTM campaign or journey, for the ROI report
(docs/reports.md, "Costs")."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api/costs", tags=["costs"])


class NewCost(BaseModel):
    """A cost; the fields are checked by the library, which names the one it refuses."""

    dimension: str = Field(examples=["campaign"], description="source, campaign or journey")
    name: str = Field(examples=["spring-webinar"], description="The source, campaign or journey")
    period_start: date | str = Field(
        examples=["2025-03-01"], description="First day (or a month, 2025-03)"
    )
    period_end: date | str | None = Field(
        default=None,
        examples=["2025-04-01"],
        description="Day after the last one; may be left out when period_start is a month",
    )
    amount: Decimal | str = Field(examples=["1200.00"], description="More than 0")
    currency: str = Field(default="USD", examples=["USD"])
    note: str = ""


@router.get("", summary="The costs, of one dimension or all")
def list_costs(
    request: Request,
    dimension: Annotated[
        str | None, Query(description="source, campaign or journey (all when left out)")
    ] = None,
) -> dict[str, Any]:
    return {"items": [cost.to_json() for cost in leadflow_of(request).list_costs(dimension)]}


@router.post("", summary="Record a cost", status_code=201)
def add_cost(request: Request, body: NewCost) -> dict[str, Any]:
    cost = leadflow_of(request).add_cost(
        body.dimension,
        body.name,
        body.period_start,
        body.period_end,
        body.amount,
        body.currency,
        body.note,
    )
    return cost.to_json()


@router.delete("/{cost_id}", summary="Delete a cost", status_code=204)
def delete_cost(request: Request, cost_id: int) -> Response:
    leadflow_of(request).delete_cost(cost_id)
    return Response(status_code=204)
