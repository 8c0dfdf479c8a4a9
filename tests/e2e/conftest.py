"""A real HTTP server (uvicorn, in a background thread, on a free port) over the test store."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from leadflow import Leadflow, SourceRecord
from leadflow.api.app import create_app


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    source: SourceRecord


@pytest.fixture
def server(leadflow: Leadflow) -> Iterator[Server]:
    """uvicorn serving create_app() for the `leadflow` store (SQLite file or PostgreSQL)."""
    source = leadflow.create_source("e2e")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(leadflow=leadflow),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", port, source)
    finally:
        instance.should_exit = True
        thread.join(timeout=10)
        sock.close()
