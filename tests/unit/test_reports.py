"""The pure rules of the reports: percentiles, conversion, SLA classification, parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from leadflow.domain.errors import ValidationError
from leadflow.services.reports import (
    FunnelGroup,
    SlaTally,
    Velocity,
    check_group_by,
    check_window,
    percentile,
    sla_report,
)

H = timedelta(hours=1)


def test_percentile_interpolates_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([30.0, 2.0, 4.0], 0.5) == 4.0
    assert percentile([2.0, 4.0, 30.0], 0.9) == pytest.approx(24.8)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


def test_conversion_is_the_share_of_the_stage_before_and_none_when_empty() -> None:
    reached = {"lead": 10, "mql": 4, "sal": 1, "sql": 0, "opportunity": 0, "customer": 0}
    conversion = FunnelGroup("all", 10, reached).conversion
    assert conversion["lead_to_mql"] == 0.4
    assert conversion["mql_to_sal"] == 0.25
    assert conversion["sal_to_sql"] == 0.0
    assert conversion["sql_to_opportunity"] is None


def test_sla_sums_the_tallies_into_on_time_late_overdue_and_reasons() -> None:
    tallies = [
        SlaTally("accepted", 3),
        SlaTally("accepted", 1, late=True),
        SlaTally("rejected", 2, reason="no_budget"),
        SlaTally("rejected", 1, late=True, reason="not_a_fit"),
        SlaTally("rejected", 1, reason="not_a_fit"),
        SlaTally("closed", 2),
        SlaTally("open", 1, overdue=True),
        SlaTally("open", 4),
    ]
    report = sla_report(tallies, 24 * H, Velocity(8, 3600.0, 7200.0), None, None)
    assert (report.mqls, report.on_time, report.late) == (15, 6, 2)
    assert (report.closed, report.overdue, report.pending) == (2, 1, 4)
    assert (report.accepted, report.rejected, report.acceptance_rate) == (4, 4, 0.5)
    assert report.on_time_rate == pytest.approx(0.6667)
    assert report.rejection_reasons == {"no_budget": 2, "not_a_fit": 2}
    assert report.to_json()["decided"] == 8
    assert report.to_json()["sla_seconds"] == 86400.0


def test_nothing_decided_gives_no_rate_instead_of_zero() -> None:
    report = sla_report([SlaTally("open", 2)], None, Velocity(), None, None)
    assert (report.acceptance_rate, report.pending, report.median_decision_seconds) == (
        None, 2, None,
    )  # fmt: skip
    assert report.to_json()["sla_seconds"] is None


def test_parameters_are_checked_and_named() -> None:
    assert check_group_by(" Source ") == "source"
    with pytest.raises(ValidationError, match="group_by: 'region'"):
        check_group_by("region")
    start, end = check_window(date(2025, 3, 1), datetime(2025, 4, 1))
    assert start == datetime(2025, 3, 1, tzinfo=UTC)
    assert end == datetime(2025, 4, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="until"):
        check_window(date(2025, 4, 1), date(2025, 4, 1))
