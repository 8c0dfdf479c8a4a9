"""/api/sources: the sources and their write keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from leadflow.api.state import leadflow_of
from leadflow.ports import SourceRecord

router = APIRouter(prefix="/api", tags=["sources"])


class NewSource(BaseModel):
    name: str = Field(min_length=1, max_length=100)


def _json(source: SourceRecord) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "write_key": source.write_key,
        "created_at": source.created_at.isoformat(),
    }


@router.get("/sources", summary="List sources")
def list_sources(request: Request) -> dict[str, Any]:
    return {"items": [_json(s) for s in leadflow_of(request).sources()]}


@router.post("/sources", summary="Create a source and its write key", status_code=201)
def create_source(request: Request, body: NewSource) -> dict[str, Any]:
    return _json(leadflow_of(request).create_source(body.name))
