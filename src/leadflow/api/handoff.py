"""/api/handoff: the CSV export for CRM imports, a lead's handoff payload and its rep."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from leadflow.api.state import leadflow_of
from leadflow.services.handoff import CSV_COLUMNS

router = APIRouter(prefix="/api", tags=["handoff"])


def _csv_lines(rows: Iterator[dict[str, str]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get("/handoff/export.csv", summary="Leads in a stage as a CRM import file (CSV)")
def export_csv(
    request: Request,
    stage: str = "sql",
    since: Annotated[
        datetime | None, Query(description="Only leads that reached the stage since then")
    ] = None,
) -> StreamingResponse:
    _total, rows = leadflow_of(request).handoff_export(stage.strip().lower(), since)
    return StreamingResponse(
        _csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="leadflow-{stage}.csv"'},
    )


@router.get("/leads/{lead_id}/handoff", summary="The payload a handoff of the lead carries now")
def payload(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).handoff_payload(lead_id)


@router.get("/leads/{lead_id}/assignment", summary="The lead's sales rep and SLA due time")
def assignment(request: Request, lead_id: int) -> dict[str, Any]:
    return leadflow_of(request).assignment(lead_id)


@router.get("/queue", summary="The sales queue: MQLs best first, with their rep, SLA and why")
def sales_queue(
    request: Request,
    rep: Annotated[str | None, Query(description="Only this rep's MQLs")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    return leadflow_of(request).sales_queue(rep, limit)
