"""The Leadflow an app serves, as the routers reach it."""

from __future__ import annotations

from fastapi import Request

from leadflow.bootstrap import Leadflow


def leadflow_of(request: Request) -> Leadflow:
    found: Leadflow = request.app.state.leadflow
    return found
