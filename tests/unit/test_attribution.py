"""The attribution models, the ROI figures and the costs' rules, without a database."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow.domain.errors import ValidationError
from leadflow.services.attribution import (
    AttributionGroup,
    AttributionReport,
    Opportunity,
    Touch,
    aggregate,
    check_dimension,
    check_model,
    credit,
    deal_amount,
    lead_creation,
    revenue_currency,
    weights,
)
from leadflow.services.costs import (
    Cost,
    CostError,
    check_cost,
    error_csv,
    one_currency,
    read_costs_csv,
)
from leadflow.services.roi import roi_report

T0 = datetime(2025, 3, 3, 12, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# --- models --------------------------------------------------------------------------------
def test_w_shaped_gives_30_30_30_and_shares_10_among_the_others() -> None:
    assert weights("w_shaped", 4, 1) == pytest.approx([0.3, 0.3, 0.1, 0.3])
    third = 0.1 / 3
    assert weights("w_shaped", 6, 2) == pytest.approx([0.3, third, 0.3, third, third, 0.3])


def test_w_shaped_folds_positions_that_fall_on_one_touch() -> None:
    assert weights("w_shaped", 1, 0) == [1.0]
    # first = lead creation, and the opportunity touch: 60% and 30%, scaled to add up to 1
    assert weights("w_shaped", 2, 0) == pytest.approx([2 / 3, 1 / 3])
    # lead creation = the opportunity touch
    assert weights("w_shaped", 2, 1) == pytest.approx([1 / 3, 2 / 3])
    assert weights("w_shaped", 3, 1) == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    # a fourth touch takes the 10%: the positions keep 30% each, the first holds two
    assert weights("w_shaped", 4, 0) == pytest.approx([0.6, 0.05, 0.05, 0.3])


def test_first_last_and_linear() -> None:
    assert weights("first_touch", 3) == [1.0, 0.0, 0.0]
    assert weights("last_touch", 3) == [0.0, 0.0, 1.0]
    assert weights("linear", 4) == [0.25] * 4
    assert weights("linear", 0) == []


@given(st.integers(min_value=1, max_value=40), st.data())
def test_every_model_hands_out_exactly_one_unit(count: int, data: st.DataObject) -> None:
    creation = data.draw(st.integers(min_value=0, max_value=count - 1))
    for model in ("first_touch", "last_touch", "linear", "w_shaped"):
        found = weights(model, count, creation)
        assert len(found) == count
        assert sum(found) == pytest.approx(1.0)
        assert min(found) >= 0


def test_the_lead_creation_touch_is_the_first_at_or_after_identification() -> None:
    touches = [Touch(at(h)) for h in (0, 2, 5)]
    assert lead_creation(touches, at(1)) == 1
    assert lead_creation(touches, at(2)) == 1  # at counts
    assert lead_creation(touches, None) == 0  # known from the first message
    assert lead_creation(touches, at(-3)) == 0  # identified before any touch
    assert lead_creation(touches, at(6)) == 2  # no touch after: the last one


def test_credit_by_label_with_revenue_customers_and_no_touch() -> None:
    won = Opportunity(1, at(10), at(1), won=True, revenue=1000.0)
    won.touches = [
        Touch(at(0), "web", "spring", key=(0, 1)),
        Touch(at(2), "ads", "webinar", key=(0, 2)),
        Touch(at(3), "leadflow-messages", None, "welcome", key=(1, 1)),
        Touch(at(4), "web", "nurture", key=(0, 3)),
        Touch(at(11), "web", "late", key=(0, 4)),  # after the opportunity: not a touch
    ]
    bare = Opportunity(2, at(5))  # no touch before it
    groups = {g.name: g for g in credit([won, bare], "w_shaped", "campaign")}
    assert groups["spring"].opportunities == pytest.approx(0.3)
    assert groups["webinar"].revenue == pytest.approx(300.0)
    assert groups["(none)"].opportunities == pytest.approx(1.1)
    assert groups["(none)"].customers == pytest.approx(0.1)
    assert "late" not in groups
    by_journey = {g.name: g for g in credit([won, bare], "linear", "journey")}
    assert by_journey["welcome"].revenue == pytest.approx(250.0)
    assert by_journey["(none)"].opportunities == pytest.approx(1.75)


def test_aggregate_adds_shares_by_lead_and_shares_already_added_up() -> None:
    won = Opportunity(1, at(10), won=True, revenue=900.0)
    lost = Opportunity(2, at(10))
    rows: list[tuple[int | None, str | None, float]] = [
        (1, "spring", 2 / 3), (1, None, 1 / 3),  # the won one, per lead
        (None, "spring", 1.5), (None, "webinar", 0.5),  # the others, added up per label
        (99, "autumn", 1.0),  # a lead with no opportunity here: left out
    ]  # fmt: skip
    groups = {g.name: g for g in aggregate([won, lost], rows)}
    assert list(groups) == ["spring", "(none)", "webinar"]
    assert groups["spring"].opportunities == pytest.approx(2 / 3 + 1.5)
    assert groups["spring"].customers == pytest.approx(2 / 3)
    assert groups["spring"].revenue == pytest.approx(600.0)
    assert groups["(none)"].revenue == pytest.approx(300.0)
    assert groups["webinar"].customers == 0 and groups["webinar"].revenue == 0


def test_touches_at_the_same_instant_keep_events_before_clicks() -> None:
    found = Opportunity(1, at(5))
    found.touches = [Touch(at(1), journey="j", key=(1, 1)), Touch(at(1), "web", key=(0, 9))]
    assert [t.key for t in found.ordered()] == [(0, 9), (1, 1)]


def test_bad_model_and_dimension_name_the_parameter() -> None:
    assert check_model("W-Shaped") == "w_shaped"
    with pytest.raises(ValidationError, match="model: 'u_shaped'"):
        check_model("u_shaped")
    with pytest.raises(ValidationError, match="by: 'region'"):
        check_dimension("region")


def test_deal_amounts_and_currencies() -> None:
    assert deal_amount(1200) == 1200.0
    assert deal_amount("99.5") == 99.5
    assert deal_amount("a lot") is None
    assert deal_amount(True) is None
    assert deal_amount("nan") is None
    assert revenue_currency(["USD", "USD"]) == "USD"
    assert revenue_currency([]) is None
    with pytest.raises(ValidationError, match=r"currency: .*EUR, USD"):
        revenue_currency(["USD", "EUR"])


# --- costs -----------------------------------------------------------------------------------
def _cost(start: date, end: date, amount: str = "3100", currency: str = "USD") -> Cost:
    return Cost(1, "campaign", "spring", start, end, Decimal(amount), currency, "", T0)


def test_a_cost_counts_pro_rata_by_days_in_the_window() -> None:
    march = _cost(date(2025, 3, 1), date(2025, 4, 1))
    day = lambda d: datetime(2025, 3, d, tzinfo=UTC)  # noqa: E731
    assert march.in_window(None, None) == Decimal("3100")
    assert march.in_window(day(1), day(11)) == Decimal("1000")
    assert march.in_window(day(31), None) == Decimal("100")
    assert march.in_window(datetime(2025, 4, 1, tzinfo=UTC), None) == 0
    assert march.in_window(None, day(1)) == 0
    # half a day counts half a day
    assert march.in_window(day(1), datetime(2025, 3, 1, 12, tzinfo=UTC)) == Decimal("50")


def test_check_cost_accepts_a_month_and_names_each_bad_field() -> None:
    cost = check_cost(" Campaign ", "spring", "2025-02", None, "99.5", "eur", "note")
    assert (cost.dimension, cost.period_start, cost.period_end) == (
        "campaign", date(2025, 2, 1), date(2025, 3, 1),
    )  # fmt: skip
    assert (cost.amount, cost.currency) == (Decimal("99.5"), "EUR")
    assert check_cost("source", "web", "2025-03", "2025-05", 1).period_end == date(2025, 5, 1)
    bad = [
        (("region", "x", "2025-03", None, 1), "dimension", "region"),
        (("source", " ", "2025-03", None, 1), "name", " "),
        (("source", "web", "March", None, 1), "period_start", "March"),
        (("source", "web", "2025-03-01", None, 1), "period_end", ""),
        (("source", "web", "2025-03-10", "2025-03-01", 1), "period_end", "2025-03-01"),
        (("source", "web", "2025-03", None, "-5"), "amount", "-5"),
        (("source", "web", "2025-03", None, "0"), "amount", "0"),
        (("source", "web", "2025-03", None, "ten"), "amount", "ten"),
        (("source", "web", "2025-03", None, "1.00001"), "amount", "1.00001"),
        (("source", "web", "2025-03", None, 5, "dollars"), "currency", "dollars"),
    ]
    for args, field, value in bad:
        with pytest.raises(CostError) as raised:
            check_cost(*args)
        assert (raised.value.field, raised.value.value) == (field, value), args
        assert raised.value.message.startswith(f"{field}: ")


def test_a_report_holds_one_currency() -> None:
    usd = _cost(date(2025, 3, 1), date(2025, 4, 1))
    eur = _cost(date(2025, 3, 1), date(2025, 4, 1), currency="EUR")
    assert one_currency([usd, usd]) == "USD"
    assert one_currency([], "EUR") == "EUR"
    with pytest.raises(ValidationError, match=r"currency: .*EUR, USD"):
        one_currency([usd, eur])
    with pytest.raises(ValidationError, match="EUR, USD"):
        one_currency([usd], "EUR")


def test_the_costs_csv_reports_each_bad_row_by_line_field_and_value() -> None:
    text = (
        "Dimension,Name,Period Start,period_end,amount,currency,note\n"
        "source,web,2025-03,,1200,,march\n"
        "\n"
        "campaign,spring,2025-03-01,2025-03-15,-5,USD,\n"
        'journey,"welcome, long",2025-03,,abc,USD,"two\nlines"\n'
        "region,x,2025-03,,5,USD,\n"
        "source,web,2025-03\n"
        "campaign,spring,2025-04,,50.25,eur,\n"
    )
    rows = read_costs_csv(text)
    assert rows.rows == 6
    assert [(line, c.name, c.amount, c.currency) for line, c in rows.costs] == [
        (2, "web", Decimal("1200"), "USD"), (9, "spring", Decimal("50.25"), "EUR"),
    ]  # fmt: skip
    assert [(e.line, e.field, e.value) for e in rows.errors] == [
        (4, "amount", "-5"), (5, "amount", "abc"), (7, "dimension", "region"), (8, "row", ""),
    ]  # fmt: skip
    assert rows.errors[1].raw == 'journey,"welcome, long",2025-03,,abc,USD,"two\nlines"'
    written = error_csv(rows.errors).splitlines()
    assert written[0] == "line,field,value,reason,raw"
    assert written[1].startswith("4,amount,-5,-5 is not positive")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("dimension,name,period_start,amount,cost_center\n", "unknown column 'cost_center'"),
        ("dimension,name,period_start\n", "no 'amount'"),
        ("dimension,name,Name,period_start,amount\n", "'name' appears twice"),
    ],
)
def test_a_costs_file_that_cannot_be_read_is_refused_whole(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        read_costs_csv(io.StringIO(text).getvalue())


# --- ROI -----------------------------------------------------------------------------------
def test_roi_rows_costs_per_stage_and_return() -> None:
    attribution = AttributionReport(
        "w_shaped", "campaign", None, None, "USD", 3, 1, 1200.0,
        [AttributionGroup("spring", 2.0, 1.0, 900.0), AttributionGroup("(none)", 1.0, 0, 300.0)],
    )  # fmt: skip
    funnel = {
        "spring": {"lead": 4, "mql": 2, "sql": 1, "customer": 0},
        "summer": {"lead": 1, "mql": 0, "sql": 0, "customer": 0},
    }
    overall = {"lead": 5, "mql": 2, "sql": 1, "customer": 0}
    costs = {"spring": Decimal("600"), "autumn": Decimal("100")}
    report = roi_report("campaign", costs, funnel, overall, attribution, "USD")
    rows = {r.name: r.to_json() for r in report.rows}
    assert list(rows) == ["(none)", "autumn", "spring", "summer"]
    assert rows["spring"] == {
        "name": "spring", "cost": 600.0, "leads": 4, "mqls": 2, "sqls": 1, "customers": 0,
        "cost_per_lead": 150.0, "cost_per_mql": 300.0, "cost_per_sql": 600.0,
        "cost_per_customer": None, "revenue": 900.0, "return": 0.5,
    }  # fmt: skip
    assert (rows["autumn"]["return"], rows["autumn"]["cost_per_lead"]) == (-1.0, None)
    assert rows["summer"]["cost_per_lead"] is None and rows["summer"]["return"] is None
    assert rows["(none)"]["revenue"] == 300.0 and rows["(none)"]["cost"] == 0.0
    whole = report.overall.to_json()
    assert (whole["cost"], whole["leads"], whole["revenue"]) == (700.0, 5, 1200.0)
    assert whole["cost_per_lead"] == 140.0 and whole["return"] == pytest.approx(0.7143)
