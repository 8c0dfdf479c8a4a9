"""The funnel and SLA reports on SQLite and PostgreSQL: library, API and CLI.

One story, under a clock moved by hand (T0 = 2025-03-03 12:00 UTC, SLA 24h):
A: MQL +1h, accepted +3h (2h, on time), SQL +13h, opportunity +37h, customer +85h.
B: MQL +1h, accepted +31h (30h, late), SQL +51h.
C: MQL +2h, rejected +6h (4h, on time, not_a_fit).
D: MQL +2h, never decided (overdue).  E: stays a lead.
F: created 31 days later from another source, MQL 1h later, undecided an hour after (pending).
A, B, C came from the campaign "spring"; A and B are in the segment "saas"; every MQL
enters the journey "welcome".
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow import Leadflow, Settings
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.domain.errors import ValidationError
from leadflow.jobs.nurture import journey_consumer
from leadflow.jobs.outbox import dispatch
from tests.integration.scoring_support import T0, Clock, ingest, message

HOUR = 3600.0
WELCOME = {"trigger": {"stage": "mql"}, "steps": [{"id": "pause", "wait": "90d"}]}


@dataclass
class Story:
    app: Leadflow
    settings: Settings
    ids: dict[str, int]


def _lead(app: Leadflow, source: str, user: str, **fields: object) -> int:
    record = next((s for s in app.sources() if s.name == source), None)
    record = record or app.create_source(source)
    ingest(app, record, message("identify", user, app.clock.now(), **fields))
    [found] = [x for x in app.leads(limit=100).items if user in x.identities["userId"]]
    return found.id


@pytest.fixture
def story(leadflow: Leadflow, settings: Settings) -> Iterator[Story]:
    clock = Clock(T0)
    app = Leadflow(Settings(database_url=settings.database_url, home=settings.home), clock)
    app.migrate()
    spring = {"context": {"campaign": {"name": "spring", "source": "google"}}}
    saas = {"traits": {"industry": "SaaS"}}
    ids = {
        "A": _lead(app, "web", "a", **spring, **saas),
        "B": _lead(app, "web", "b", **spring, **saas),
        "C": _lead(app, "web", "c", **spring),
        "D": _lead(app, "web", "d"),
        "E": _lead(app, "web", "e"),
    }
    app.put_segment("saas", {"field": "trait.industry", "op": "eq", "value": "SaaS"})
    app.save_journey("welcome", WELCOME)
    steps: list[tuple[float, str, str, str]] = [
        (1, "A", "mql", "manual"), (1, "B", "mql", "manual"),
        (2, "C", "mql", "manual"), (2, "D", "mql", "manual"),
        (3, "A", "accept", "meets_criteria"), (6, "C", "reject", "not_a_fit"),
        (13, "A", "sql", "qualified"), (31, "B", "accept", "meets_criteria"),
        (37, "A", "opportunity", "deal"), (51, "B", "sql", "qualified"),
        (85, "A", "customer", "won"),
    ]  # fmt: skip
    for hours, who, what, reason in steps:
        clock.at = T0 + timedelta(hours=hours)
        if what in ("accept", "reject"):
            app.decide(ids[who], what, reason)
        else:
            app.move_stage(ids[who], what, reason)
    clock.at = T0 + timedelta(days=31)
    ids["F"] = _lead(app, "ads", "f")
    clock.advance(hours=1)
    app.move_stage(ids["F"], "mql", "manual")
    clock.advance(hours=1)
    dispatch(app, [journey_consumer(app)])  # every MQL enters the journey "welcome"
    yield Story(app, settings, ids)
    app.close()


# --- library ----------------------------------------------------------------------------
def test_funnel_counts_reached_stages_conversion_and_velocity(story: Story) -> None:
    [group] = story.app.funnel_report().groups
    assert group.group == "all"
    assert group.entered == 6
    assert group.reached == {
        "lead": 6, "mql": 5, "sal": 2, "sql": 2, "opportunity": 1, "customer": 1,
    }  # fmt: skip
    assert group.conversion == {
        "lead_to_mql": 0.8333, "mql_to_sal": 0.4, "sal_to_sql": 1.0,
        "sql_to_opportunity": 0.5, "opportunity_to_customer": 1.0,
    }  # fmt: skip
    mql = group.velocity["mql"]  # ended stays: 2h, 4h, 30h (D and F are still MQLs)
    assert (mql.stints, mql.median_seconds) == (3, pytest.approx(4 * HOUR))
    assert mql.p90_seconds == pytest.approx(24.8 * HOUR)
    sal = group.velocity["sal"]  # 10h and 20h
    assert (sal.stints, sal.median_seconds, sal.p90_seconds) == (
        2, pytest.approx(15 * HOUR), pytest.approx(19 * HOUR),
    )  # fmt: skip
    assert group.velocity["sql"].median_seconds == pytest.approx(24 * HOUR)
    assert group.velocity["opportunity"].p90_seconds == pytest.approx(48 * HOUR)


def test_funnel_groups_by_month_source_campaign_and_segment(story: Story) -> None:
    def entered(by: str) -> dict[str, tuple[int, int, int]]:
        report = story.app.funnel_report(by)
        return {g.group: (g.entered, g.reached["mql"], g.reached["sal"]) for g in report.groups}

    assert entered("cohort_month") == {"2025-03": (5, 4, 2), "2025-04": (1, 1, 0)}
    assert entered("source") == {"web": (5, 4, 2), "ads": (1, 1, 0)}
    assert entered("utm_campaign") == {"spring": (3, 3, 2), "(none)": (3, 2, 0)}
    assert entered("segment") == {"saas": (2, 2, 2)}
    assert entered("journey") == {"welcome": (5, 5, 2)}


def test_funnel_window_counts_leads_created_in_it(story: Story) -> None:
    report = story.app.funnel_report("none", since=date(2025, 4, 1))
    assert [(g.entered, g.reached["mql"]) for g in report.groups] == [(1, 1)]
    assert story.app.funnel_report(until=date(2025, 3, 1)).groups == []


def test_bad_parameters_name_the_parameter(story: Story) -> None:
    with pytest.raises(ValidationError, match="group_by"):
        story.app.funnel_report("region")
    with pytest.raises(ValidationError, match="until"):
        story.app.sla_report(since=date(2025, 4, 1), until=date(2025, 3, 1))


def test_sla_counts_on_time_late_undecided_and_reasons(story: Story) -> None:
    report = story.app.sla_report()
    assert report.sla_seconds == 24 * HOUR
    assert (report.mqls, report.on_time, report.late) == (5, 2, 1)
    assert (report.overdue, report.pending, report.closed) == (1, 1, 0)
    assert (report.accepted, report.rejected, report.acceptance_rate) == (2, 1, 0.6667)
    assert report.median_decision_seconds == pytest.approx(4 * HOUR)
    assert report.p90_decision_seconds == pytest.approx(24.8 * HOUR)
    assert report.rejection_reasons == {"not_a_fit": 1}


def test_sla_window_is_on_the_time_of_entry_into_mql(story: Story) -> None:
    report = story.app.sla_report(since=date(2025, 4, 1))
    assert (report.mqls, report.pending, report.overdue, report.acceptance_rate) == (
        1, 1, 0, None,
    )  # fmt: skip


# --- API --------------------------------------------------------------------------------
def test_api_reports_as_json_and_refuses_bad_parameters(story: Story) -> None:
    client = TestClient(create_app(leadflow=story.app))
    funnel = client.get("/api/reports/funnel", params={"group_by": "source"})
    assert funnel.status_code == 200, funnel.text
    body = funnel.json()
    assert body["group_by"] == "source"
    assert {g["group"]: g["reached"]["sal"] for g in body["groups"]} == {"ads": 0, "web": 2}
    sla = client.get("/api/reports/sla", params={"until": "2025-04-01"}).json()
    assert (sla["mqls"], sla["late"], sla["acceptance_rate"]) == (4, 1, 0.6667)
    assert sla["rejection_reasons"] == {"not_a_fit": 1}
    wrong = client.get("/api/reports/funnel", params={"group_by": "region"})
    assert wrong.status_code in (400, 422) and "group_by" in wrong.text
    bad_date = client.get("/api/reports/sla", params={"since": "yesterday"})
    assert bad_date.status_code == 422 and "since" in bad_date.text


# --- CLI --------------------------------------------------------------------------------
def _cli(story: Story, *args: str) -> str:
    result = CliRunner().invoke(
        cli,
        ["--db", story.settings.database_url, *args],
        env={"LEADFLOW_HOME": str(story.settings.home)},
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_funnel_table_json_and_csv(story: Story) -> None:
    table = _cli(story, "report", "funnel", "--by", "utm_campaign")
    assert "spring" in table and "(none)" in table
    rows = list(
        csv.DictReader(io.StringIO(_cli(story, "report", "funnel", "--by", "source", "--csv")))
    )
    web = next(r for r in rows if r["group"] == "web")
    assert (web["entered"], web["mql"], web["sal"], web["mql_to_sal"]) == ("5", "4", "2", "0.5")
    assert float(web["sal_median_hours"]) == pytest.approx(15.0)
    data = json.loads(_cli(story, "report", "funnel", "--since", "2025-04-01", "--json"))
    assert [g["entered"] for g in data["groups"]] == [1]


def test_cli_sla_table_json_csv_and_bad_input(story: Story) -> None:
    assert "not_a_fit" in _cli(story, "report", "sla")
    data = json.loads(_cli(story, "report", "sla", "--json"))
    # the CLI runs on the real clock: F's SLA has long passed too
    assert (data["on_time"], data["late"], data["overdue"], data["pending"]) == (2, 1, 2, 0)
    [row] = list(csv.DictReader(io.StringIO(_cli(story, "report", "sla", "--csv"))))
    assert (row["mqls"], row["accepted"], row["acceptance_rate"]) == ("5", "2", "0.6667")
    result = CliRunner().invoke(
        cli, ["--db", story.settings.database_url, "report", "funnel", "--by", "region"]
    )
    assert result.exit_code != 0 and "group_by" in result.output + result.stderr
    assert result.exit_code == 1 and "Traceback" not in result.output
    dated = CliRunner().invoke(
        cli, ["--db", story.settings.database_url, "report", "sla", "--since", "yesterday"]
    )
    assert dated.exit_code == 2 and "--since" in dated.output + dated.stderr
