"""Two leads that turn out to be one person: their histories are scored as one.

Daily limits, caps and decay apply to the merged history as if it had always been one lead,
so a merge and a later `leadflow score rebuild` agree.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadflow import Leadflow, SourceRecord
from tests.integration.scoring_support import T0, message

MODEL = """
scoring:
  engagement:
    rules:
      - id: blog
        match: {type: page, path: ["/blog/*"]}
        points: 10
        half_life: none
        daily_limit: 3
  fit:
    rules:
      - id: anyone
        when: [{field: traits.plan, op: missing}]
        points: 10
    grades: {A: 10, B: 5, C: 1}
lifecycle:
  mql_policy: "engagement >= 1000"
  sales:
    accept_reasons: [ok]
    reject_reasons: [not_a_fit]
"""


@pytest.fixture
def model_text() -> str:
    return MODEL


def _blog(anonymous_id: str, minute: int) -> dict[str, object]:
    at = T0 + timedelta(minutes=minute)
    found = message("page", "ignored", at, context={"page": {"path": f"/blog/{minute}"}})
    del found["userId"]
    return {**found, "anonymousId": anonymous_id}


def test_a_merge_applies_the_daily_limit_to_the_joined_history(
    app: Leadflow, source: SourceRecord
) -> None:
    # two devices of one person, three blog visits each on the same day: two leads of 30
    app.ingest(source, [_blog("phone", m) for m in range(3)])
    app.ingest(source, [_blog("laptop", m) for m in range(10, 13)])
    for device in ("phone", "laptop"):
        app.ingest(source, [message("identify", "u-1", T0, anonymousId=device)])
    leads = app.leads().items
    assert len(leads) == 1
    merged = leads[0]
    # one person, one day, a limit of three: 30 points, not 60
    assert merged.engagement_score == pytest.approx(30.0)
    explained = app.explain(merged.id)["engagement"]["rules"][0]
    assert (explained["events_counted"], explained["events_not_counted"]) == (3, 3)
    app.rescore()
    assert app.lead(merged.id).engagement_score == pytest.approx(30.0)
