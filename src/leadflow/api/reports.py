"""/api/reports: the funnel waterfall, the sales SLA, score quality, attribution and ROI, as
JSON (docs/reports.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from leadflow.api.state import leadflow_of

router = APIRouter(prefix="/api/reports", tags=["reports"])

Since = Annotated[
    datetime | date | None,
    Query(description="Start of the window, inclusive (a date is its midnight, UTC)"),
]
Until = Annotated[
    datetime | date | None,
    Query(description="End of the window, exclusive (a date is its midnight, UTC)"),
]


@router.get("/funnel", summary="Leads per stage, conversion and time in stage, per group")
def funnel(
    request: Request,
    since: Since = None,
    until: Until = None,
    group_by: Annotated[
        str,
        Query(description="none, cohort_month, source, utm_campaign, segment or journey"),
    ] = "none",
) -> dict[str, Any]:
    return leadflow_of(request).funnel_report(group_by, since, until).to_json()


@router.get("/sla", summary="MQLs decided on time, late or not yet; acceptance rate; reasons")
def sla(request: Request, since: Since = None, until: Until = None) -> dict[str, Any]:
    return leadflow_of(request).sla_report(since, until).to_json()


@router.get("/score-quality", summary="Conversion by score decile, A1-D4 matrix, calibration")
def score_quality(
    request: Request,
    since: Since = None,
    until: Until = None,
    outcome: Annotated[str, Query(description="The stage that counts as converted")] = "sql",
) -> dict[str, Any]:
    return leadflow_of(request).score_quality_report(outcome, since, until).to_json()


Model = Annotated[
    str, Query(description="first_touch, last_touch, linear or w_shaped (docs/reports.md)")
]
By = Annotated[str, Query(description="source, campaign (UTM campaign) or journey")]


@router.get("/attribution", summary="Opportunities and revenue credited to what touched them")
def attribution(
    request: Request,
    since: Since = None,
    until: Until = None,
    model: Model = "w_shaped",
    by: By = "source",
) -> dict[str, Any]:
    return leadflow_of(request).attribution_report(model, by, since, until).to_json()


@router.get("/roi", summary="Cost, leads, cost per stage, attributed revenue and return")
def roi(
    request: Request,
    since: Since = None,
    until: Until = None,
    by: By = "source",
    model: Model = "w_shaped",
) -> dict[str, Any]:
    return leadflow_of(request).roi_report(by, since, until, model).to_json()
