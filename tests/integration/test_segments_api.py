"""/api/segments on both backends: create, read, list, page members, preview, delete; a bad
definition is answered 422 with the path of the bad node."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from leadflow import Leadflow, SourceRecord
from leadflow.api.app import create_app
from tests.integration.scoring_support import identify, ingest, lead_id

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SAAS = {
    "description": "SaaS leads",
    "field": "trait.industry",
    "op": "in",
    "value": ["SaaS", "Fintech"],
}


@pytest.fixture
def client(leadflow: Leadflow) -> Iterator[TestClient]:
    with TestClient(create_app(leadflow=leadflow)) as test_client:
        yield test_client


@pytest.fixture
def leads(leadflow: Leadflow) -> list[int]:
    source: SourceRecord = leadflow.create_source("website")
    ingest(
        leadflow, source,
        identify("u1", industry="SaaS"), identify("u2", industry="Fintech"),
        identify("u3", industry="Retail"),
    )  # fmt: skip
    return [lead_id(leadflow, user) for user in ("u1", "u2", "u3")]


def test_put_get_list_and_delete_a_segment(client: TestClient, leads: list[int]) -> None:
    created = client.put("/api/segments/saas", json=SAAS)
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["name"], body["members"], body["origin"]) == ("saas", 2, "user")
    assert body["definition"] == SAAS

    shown = client.get("/api/segments/saas").json()
    assert (shown["members"], shown["description"]) == (2, "SaaS leads")
    assert [s["name"] for s in client.get("/api/segments").json()] == ["saas"]

    assert client.delete("/api/segments/saas").status_code == 204
    missing = client.get("/api/segments/saas")
    assert missing.status_code == 404
    assert missing.json()["message"] == "no segment named 'saas'"
    assert client.delete("/api/segments/saas").status_code == 404


def test_members_are_paged_by_lead_id(client: TestClient, leads: list[int]) -> None:
    client.put("/api/segments/saas", json=SAAS)
    first = client.get("/api/segments/saas/members", params={"limit": 1}).json()
    assert [m["lead_id"] for m in first["items"]] == [leads[0]]
    assert first["total"] == 2
    after = first["next_after"]
    second = client.get("/api/segments/saas/members", params={"limit": 1, "after": after}).json()
    assert [m["lead_id"] for m in second["items"]] == [leads[1]]
    rest = client.get("/api/segments/saas/members", params={"after": leads[1]}).json()
    assert (rest["items"], rest["next_after"]) == ([], None)


def test_a_bad_definition_is_422_with_the_path_of_the_bad_node(
    client: TestClient, leads: list[int]
) -> None:
    bad = {"all": [{"field": "stage", "op": "eq", "value": "mql"}, {"field": "fit", "op": "gte"}]}
    answer = client.put("/api/segments/hot", json=bad)
    assert answer.status_code == 422
    assert answer.json()["path"] == "segments.hot.all[1].value"
    assert answer.json()["message"] == "segments.hot.all[1].value: operator 'gte' needs a value"
    assert client.get("/api/segments").json() == []
    assert client.put("/api/segments/bad name", json=SAAS).status_code == 422


def test_preview_counts_an_unsaved_definition(client: TestClient, leads: list[int]) -> None:
    answer = client.post("/api/segments/preview", params={"limit": 1}, json=SAAS)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 2, "sample": [leads[0]]}
    bad = client.post("/api/segments/preview", json={"event": "X", "min_count": -1})
    assert bad.status_code == 422
    assert bad.json()["path"] == "segments.preview.min_count"
    assert client.get("/api/segments").json() == []
