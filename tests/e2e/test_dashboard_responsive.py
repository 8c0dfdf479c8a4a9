"""A long dashboard request does not hold up the server: while a backtest replays a
simulated company's history for a marketer, the same uvicorn process keeps answering other
requests (the dashboard's form handlers run their work in a thread, not on the event loop
that serves tracking, the API and every other page)."""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadflow import Leadflow
from leadflow.simulator import SimulationConfig, simulate
from tests.e2e.conftest import Server

MODEL = (Path(__file__).resolve().parents[2] / "src" / "leadflow" / "model.yaml").read_text()
PASSWORD = "correct horse battery"


@pytest.fixture
def model_text() -> str:
    return MODEL


def signed_in(client: httpx.Client, email: str) -> None:
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "login_token": token.group(1), "next": "/"},
        headers={"origin": str(client.base_url).rstrip("/")},
    )
    assert answer.status_code == 303, answer.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_server_answers_other_requests_while_a_backtest_runs(
    dashboard_app: Leadflow, dashboard: Server
) -> None:
    messages = simulate(SimulationConfig(seed=3, leads=2000)).messages()
    while chunk := list(itertools.islice(messages, 2000)):
        assert dashboard_app.ingest(dashboard.source, chunk).errors == []
    dashboard_app.add_user("mia@acme.test", PASSWORD, "marketer")

    outcome: dict[str, Any] = {}
    with httpx.Client(base_url=dashboard.url, timeout=120, follow_redirects=False) as client:
        signed_in(client, "mia@acme.test")
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/model").text)
        assert csrf is not None
        candidate = MODEL.replace("engagement >= 45", "engagement >= 70")
        assert candidate != MODEL, "the default model's threshold moved: update the candidate"

        def backtest() -> None:
            started = time.perf_counter()
            answer = client.post(
                "/model/backtest",
                data={"csrf": csrf.group(1), "candidate": candidate, "capacity": "20"},
                headers={"origin": dashboard.url},
            )
            outcome["seconds"] = time.perf_counter() - started
            outcome["status"] = answer.status_code
            outcome["text"] = answer.text

        worker = threading.Thread(target=backtest)
        waits: list[float] = []
        with httpx.Client(base_url=dashboard.url, timeout=30) as other:
            worker.start()
            while worker.is_alive():
                started = time.perf_counter()
                assert other.get("/healthz").status_code == 200
                waits.append(time.perf_counter() - started)
                time.sleep(0.02)
            worker.join()

    assert outcome["status"] == 200, outcome["text"][:500]
    assert "Result over" in outcome["text"]
    # the backtest took long enough that a blocked event loop would have shown
    assert outcome["seconds"] > 1.0, outcome
    assert len(waits) >= 10
    assert max(waits) < outcome["seconds"] / 3, (max(waits), outcome["seconds"])
