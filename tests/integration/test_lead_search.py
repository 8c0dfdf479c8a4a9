"""Searching leads treats the user's text literally."""

from __future__ import annotations

from leadflow import LeadFilter, Leadflow


def test_search_wildcards_are_literal(leadflow: Leadflow) -> None:
    source = leadflow.ensure_source("web")
    leadflow.ingest(
        source,
        [
            {"type": "identify", "userId": "a", "traits": {"email": "ann_lee@acme.com"}},
            {"type": "identify", "userId": "b", "traits": {"email": "annxlee@acme.com"}},
        ],
    )
    found = leadflow.leads(LeadFilter(search="ann_lee")).items
    assert [lead.email for lead in found] == ["ann_lee@acme.com"]
    assert leadflow.leads(LeadFilter(search="%")).items == []
    assert len(leadflow.leads(LeadFilter(search="ACME.com")).items) == 2
