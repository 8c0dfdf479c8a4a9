"""/api/segments: segment definitions, their members, and previews of unsaved trees.

A definition is the plain-data tree of docs/segments.md, with an optional ``description``. A
definition that cannot be accepted is answered 422 with the path of the bad node.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from leadflow.api.errors import error_body, json_response
from leadflow.api.state import leadflow_of
from leadflow.domain.segments import SegmentError, where
from leadflow.services.segments import MAX_PAGE

router = APIRouter(prefix="/api/segments", tags=["segments"])

Definition = Annotated[
    dict[str, Any],
    Body(
        examples=[
            {
                "description": "SaaS leads looking at pricing",
                "all": [
                    {"field": "trait.industry", "op": "in", "value": ["SaaS", "Fintech"]},
                    {"event": "Pricing Viewed", "min_count": 3, "within_days": 14},
                ],
            }
        ]
    ),
]


def _invalid(exc: SegmentError) -> Response:
    return json_response({**error_body(exc), "path": where(exc.loc)}, 422)


@router.get("", summary="Every segment, with its member count")
def list_segments(request: Request) -> list[dict[str, Any]]:
    leadflow = leadflow_of(request)
    return [
        {**found.to_json(), "members": leadflow.segment_count(found.name)}
        for found in leadflow.segments()
    ]


@router.post("/preview", summary="How many leads an unsaved definition selects, and a sample")
def preview(
    request: Request,
    definition: Definition,
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 20,
) -> Any:
    try:
        return leadflow_of(request).preview_segment(definition, limit)
    except SegmentError as exc:
        return _invalid(exc)


@router.get("/{name}", summary="A segment's definition and member count")
def get_segment(request: Request, name: str) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    return {**leadflow.segment(name).to_json(), "members": leadflow.segment_count(name)}


@router.put("/{name}", summary="Create or replace a segment; its members are computed at once")
def put_segment(request: Request, name: str, definition: Definition) -> Any:
    leadflow = leadflow_of(request)
    try:
        report = leadflow.put_segment(name, definition)
    except SegmentError as exc:
        return _invalid(exc)
    return {**leadflow.segment(name).to_json(), "members": report.members}


@router.delete("/{name}", summary="Delete a segment and its membership", status_code=204)
def delete_segment(request: Request, name: str) -> Response:
    leadflow_of(request).delete_segment(name)
    return Response(status_code=204)


@router.get("/{name}/members", summary="The segment's members, by lead id, a page at a time")
def members(
    request: Request,
    name: str,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    after: Annotated[
        int | None, Query(description="The last lead id of the previous page.")
    ] = None,
) -> dict[str, Any]:
    leadflow = leadflow_of(request)
    found = leadflow.segment_members(name, limit, after)
    return {
        "items": [{"lead_id": lead, "entered_at": at.isoformat()} for lead, at in found],
        "next_after": found[-1][0] if len(found) == limit else None,
        "total": leadflow.segment_count(name),
    }
