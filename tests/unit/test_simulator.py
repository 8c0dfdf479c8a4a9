"""The B2B funnel simulator: determinism, message shape, ordering, ground truth, exports."""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from leadflow.simulator import (
    LEAD_COLUMNS,
    Company,
    SimLead,
    SimulationConfig,
    simulate,
    write_events_jsonl,
    write_leads_csv,
)

SMALL = SimulationConfig(seed=11, leads=400, days=30)
OUTCOME_EVENTS = {"Opportunity Created", "Deal Won", "Deal Lost"}


def ts(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["timestamp"])


@pytest.fixture(scope="module")
def company() -> Company:
    return simulate(SimulationConfig(seed=5, leads=3000, days=90))


@pytest.fixture(scope="module")
def leads(company: Company) -> list[SimLead]:
    return list(company.leads())


@pytest.fixture(scope="module")
def messages(company: Company) -> list[dict[str, Any]]:
    return list(company.messages())


@pytest.fixture(scope="module")
def by_lead(company: Company, leads: list[SimLead]) -> dict[str, list[dict[str, Any]]]:
    return {lead.key: company.lead_messages(lead) for lead in leads}


# -- determinism and streaming ----------------------------------------------------------------


def test_same_seed_gives_byte_identical_messages() -> None:
    first = [json.dumps(m, sort_keys=True) for m in simulate(SMALL).messages()]
    second = [json.dumps(m, sort_keys=True) for m in simulate(SMALL).messages()]
    assert first == second
    assert len(first) > 1000


def test_different_seed_gives_different_messages() -> None:
    other = SimulationConfig(seed=12, leads=SMALL.leads, days=SMALL.days)
    first = list(itertools.islice(simulate(SMALL).messages(), 200))
    second = list(itertools.islice(simulate(other).messages(), 200))
    assert {m["messageId"] for m in first}.isdisjoint(m["messageId"] for m in second)
    assert [m["timestamp"] for m in first] != [m["timestamp"] for m in second]


def test_ground_truth_is_deterministic_and_independent_of_outcome_events() -> None:
    plain = list(simulate(SMALL).leads())
    with_outcomes = list(
        simulate(SimulationConfig(**{**SMALL.__dict__, "emit_outcomes": True})).leads()
    )
    assert plain == with_outcomes
    assert plain == list(simulate(SMALL).leads())


def test_messages_stream_without_generating_everything() -> None:
    huge = simulate(SimulationConfig(seed=3, leads=200_000, days=90))
    began = time.perf_counter()
    first = list(itertools.islice(huge.messages(), 100))
    assert time.perf_counter() - began < 3.0
    assert len(first) == 100
    assert first[0]["timestamp"] >= "2026-08-01T00:00:00.000Z"


# -- message shape ----------------------------------------------------------------------------


def test_messages_are_globally_sorted_by_time(messages: list[dict[str, Any]]) -> None:
    times = [ts(m) for m in messages]
    assert all(a <= b for a, b in itertools.pairwise(times))


def test_every_message_has_the_segment_essentials(messages: list[dict[str, Any]]) -> None:
    assert json.loads(json.dumps(messages[:5000])) == messages[:5000]  # plain JSON values
    for m in messages:
        assert m["type"] in {"page", "track", "identify", "group", "alias"}
        assert m["messageId"] and m["anonymousId"]
        assert m["timestamp"].endswith("Z") and len(m["timestamp"]) == 24
        context = m["context"]
        assert {"userAgent", "locale", "timezone"} <= context.keys() and "ip" not in context
        ZoneInfo(context["timezone"])
        if m["type"] == "track":
            assert isinstance(m["event"], str) and isinstance(m["properties"], dict)
        elif m["type"] == "page":
            assert m["name"] and set(m["properties"]) == {"path", "url", "title", "referrer"}
            assert context["page"] == m["properties"]
        elif m["type"] == "identify":
            assert m["userId"] and "@" in m["traits"]["email"]
        elif m["type"] == "group":
            assert m["groupId"].startswith("acct-") and m["traits"]["domain"]
        else:
            assert m["previousId"] == m["anonymousId"] and m["userId"]


def test_message_ids_are_unique(messages: list[dict[str, Any]]) -> None:
    ids = [m["messageId"] for m in messages]
    assert len(ids) == len(set(ids))


def test_event_catalogue(messages: list[dict[str, Any]]) -> None:
    events = Counter(m["event"] for m in messages if m["type"] == "track")
    expected = {
        "Content Downloaded",
        "Webinar Registered",
        "Webinar Attended",
        "Email Opened",
        "Email Clicked",
        "Form Submitted",
        "Demo Requested",
        "Unsubscribed",
        "Pricing Calculator Used",
    }
    assert set(events) == expected
    assert events["Email Opened"] > events["Email Clicked"] > events["Unsubscribed"] > 0
    assert events["Webinar Registered"] > events["Webinar Attended"] > 0
    for m in messages:
        if m.get("event") == "Content Downloaded":
            assert m["properties"]["asset_type"] in {"ebook", "whitepaper", "case_study"}
    paths = {m["properties"]["path"].split("/")[1] for m in messages if m["type"] == "page"}
    assert {"", "product", "pricing", "blog", "customers", "careers", "docs", "demo"} <= paths


def test_campaign_context_on_first_touch_and_email_visits(
    leads: list[SimLead], by_lead: dict[str, list[dict[str, Any]]]
) -> None:
    for lead in leads[:500]:
        first = by_lead[lead.key][0]
        campaign = first["context"].get("campaign")
        if lead.traits["utm_campaign"] is None:
            assert campaign is None
        else:
            assert campaign["name"] == lead.traits["utm_campaign"]
            assert f"utm_campaign={campaign['name']}" in first["properties"]["url"]
    clicked = [m for ms in by_lead.values() for m in ms if m.get("event") == "Email Clicked"]
    assert clicked and all(m["context"]["campaign"]["medium"] == "email" for m in clicked)


def test_user_id_appears_only_after_that_device_identified(
    by_lead: dict[str, list[dict[str, Any]]],
) -> None:
    for lead_messages in by_lead.values():
        identified: set[str] = set()
        for m in lead_messages:
            if m["type"] == "identify":
                identified.add(m["anonymousId"])
            if m.get("event") in OUTCOME_EVENTS:
                continue
            assert ("userId" in m) == (m["anonymousId"] in identified)


def test_lead_messages_are_exactly_the_leads_part_of_the_stream(
    messages: list[dict[str, Any]], by_lead: dict[str, list[dict[str, Any]]]
) -> None:
    stream = {m["messageId"]: m for m in messages}
    assert sum(len(ms) for ms in by_lead.values()) == len(stream)
    for lead_messages in by_lead.values():
        assert [stream[m["messageId"]] for m in lead_messages] == lead_messages
        assert all(ts(a) <= ts(b) for a, b in itertools.pairwise(lead_messages))


def test_summary_counts_match_the_stream(company: Company, messages: list[dict[str, Any]]) -> None:
    summary = company.summary()
    assert summary["messages"] == len(messages)
    assert summary["messages_by_type"] == dict(sorted(Counter(m["type"] for m in messages).items()))
    events = Counter(m["event"] for m in messages if m["type"] == "track")
    assert summary["events_by_name"] == dict(sorted(events.items()))
    assert summary["leads"] == 3000 and len(summary["by_fit_quartile"]) == 4


# -- people and identities --------------------------------------------------------------------


def test_leads_are_plausible_people(leads: list[SimLead]) -> None:
    emails = [lead.email for lead in leads]
    assert len(set(emails)) == len(emails)
    for lead in leads:
        assert lead.email == lead.email.strip().lower() and lead.email == lead.traits["email"]
        number = phonenumbers.parse(str(lead.traits["phone"]))
        assert phonenumbers.is_valid_number(number), lead.traits["phone"]
        assert phonenumbers.region_code_for_number(number) == lead.traits["country"]
        assert 0.0 <= lead.fit <= 1.0 and 0.0 <= lead.intent <= 1.0
        assert lead.first_touch.tzinfo is not None
    roles = Counter(lead.traits["role"] for lead in leads)
    assert {"executive", "manager", "individual_contributor", "student"} <= roles.keys()
    free = sum(lead.email.endswith(("@gmail.com", "@outlook.com", "@yahoo.com")) for lead in leads)
    assert 0.05 < free / len(leads) < 0.4


def test_timezone_matches_country(leads: list[SimLead]) -> None:
    prefixes = {"US": "America/", "CA": "America/", "BR": "America/", "AU": "Australia/"}
    for lead in leads:
        zone = str(lead.traits["timezone"])
        assert zone.startswith(prefixes.get(str(lead.traits["country"]), ("Europe/", "Asia/")))


def test_accounts_are_shared_and_consistent(leads: list[SimLead]) -> None:
    members: dict[str, list[SimLead]] = defaultdict(list)
    for lead in leads:
        if lead.account_id:
            members[lead.account_id].append(lead)
    assert max(len(group) for group in members.values()) >= 5
    for group in members.values():
        assert all(lead.account_traits == group[0].account_traits for lead in group)
        assert all(lead.traits["company"] == group[0].account_traits["name"] for lead in group)


def test_identified_share(leads: list[SimLead]) -> None:
    identified = sum(lead.user_id is not None for lead in leads) / len(leads)
    assert 0.55 <= identified <= 0.75


def test_messy_emails_second_devices_and_aliases(messages: list[dict[str, Any]]) -> None:
    identifies = [m for m in messages if m["type"] == "identify"]
    messy = [m for m in identifies if m["traits"]["email"] != m["traits"]["email"].strip().lower()]
    assert 0.003 < len(messy) / len(identifies) < 0.06
    devices: dict[str, set[str]] = defaultdict(set)
    for m in identifies:
        devices[m["traits"]["email"].strip().lower()].add(m["anonymousId"])
    assert 5 <= sum(len(ids) == 2 for ids in devices.values()) <= len(devices) * 0.1
    assert any(m["type"] == "alias" for m in messages)


def test_every_device_is_tied_to_its_person(
    leads: list[SimLead], messages: list[dict[str, Any]]
) -> None:
    """A second device always identifies inside the window: one person, one merged lead."""
    primary = {lead.anonymous_id for lead in leads}
    identified = {m["anonymousId"] for m in messages if m["type"] == "identify"}
    others = {m["anonymousId"] for m in messages} - primary
    assert others and others <= identified
    owner = {lead.user_id: lead.email for lead in leads if lead.user_id}
    for m in messages:
        if m["type"] == "identify":
            assert m["traits"]["email"].strip().lower() == owner[m["userId"]]


def test_arrivals_have_weekly_seasonality(leads: list[SimLead]) -> None:
    days: Counter[int] = Counter()
    for lead in leads:
        local = lead.first_touch.astimezone(ZoneInfo(str(lead.traits["timezone"])))
        days[local.weekday()] += 1
    assert min(days[d] for d in range(5)) > 1.5 * max(days[5], days[6])


# -- ground truth -----------------------------------------------------------------------------


def test_conversions_are_consistent(company: Company, leads: list[SimLead]) -> None:
    start, end = company.window
    opportunities = [lead for lead in leads if lead.opportunity_at]
    customers = [lead for lead in leads if lead.customer_at]
    identified = [lead for lead in leads if lead.user_id]
    assert set(map(id, customers)) <= set(map(id, opportunities))
    for lead in customers:
        assert lead.opportunity_at and lead.customer_at >= lead.opportunity_at
    for lead in leads:
        assert (lead.deal_value is not None) == (lead.opportunity_at is not None)
        assert start <= lead.first_touch < end
    assert 0.03 <= len(opportunities) / len(identified) <= 0.09
    assert 0.2 <= len(customers) / len(opportunities) <= 0.45
    assert any(lead.opportunity_at >= end for lead in opportunities)  # kept past the window


def test_conversion_grows_with_fit_and_intent(leads: list[SimLead]) -> None:
    def rate_by(key: str) -> tuple[float, float]:
        ordered = sorted(leads, key=lambda lead: getattr(lead, key))
        q = len(ordered) // 4
        low, high = ordered[:q], ordered[-q:]
        return (
            sum(lead.opportunity_at is not None for lead in low) / q,
            sum(lead.opportunity_at is not None for lead in high) / q,
        )

    low_fit, high_fit = rate_by("fit")
    low_intent, high_intent = rate_by("intent")
    assert high_fit > 4 * max(low_fit, 0.005)
    assert high_intent > 4 * max(low_intent, 0.005)


def test_careers_only_visitors_rarely_convert(
    leads: list[SimLead], by_lead: dict[str, list[dict[str, Any]]]
) -> None:
    careers_only = [
        lead
        for lead in leads
        if all(
            m["properties"]["path"].startswith("/careers")
            for m in by_lead[lead.key]
            if m["type"] == "page"
        )
    ]
    assert len(careers_only) > 30
    assert sum(lead.opportunity_at is not None for lead in careers_only) <= 1
    assert all(lead.fit < 0.2 for lead in leads if lead.persona == "job_seeker")


def test_recent_engagement_predicts_better_than_lifetime_points(
    company: Company, leads: list[SimLead], by_lead: dict[str, list[dict[str, Any]]]
) -> None:
    """Scored on days 40, 55 and 70, rank leads for an opportunity in the next 30 days."""
    start, _ = company.window
    lifetime, recent, fit_recent, labels = [], [], [], []
    for day in (40, 55, 70):
        as_of = start + timedelta(days=day)
        for lead in leads:
            if lead.first_touch >= as_of or (lead.opportunity_at and lead.opportunity_at <= as_of):
                continue
            total = decayed = 0.0
            for m in by_lead[lead.key]:
                when = ts(m)
                if when >= as_of:
                    break
                points = _points(m)
                total += points
                decayed += points * 0.5 ** ((as_of - when).total_seconds() / (7 * 86400))
            lifetime.append(total)
            recent.append(decayed)
            fit_recent.append(lead.fit * max(decayed, 0.0))
            soon = lead.opportunity_at and lead.opportunity_at <= as_of + timedelta(days=30)
            labels.append(bool(soon))
    assert sum(labels) >= 30
    assert _auc(recent, labels) > _auc(lifetime, labels) + 0.03
    assert _auc(fit_recent, labels) > _auc(lifetime, labels) + 0.05


def _points(m: dict[str, Any]) -> float:
    if m["type"] == "page":
        path = m["properties"]["path"]
        return {"/pricing": 5.0, "/demo": 8.0}.get(
            path, -5.0 if path.startswith("/careers") else 1.0
        )
    weights = {"Demo Requested": 25.0, "Webinar Attended": 10.0, "Unsubscribed": -10.0}
    return weights.get(m.get("event", ""), 3.0 if m["type"] == "track" else 0.0)


def _auc(scores: list[float], labels: list[bool]) -> float:
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def test_outcome_events_follow_the_ground_truth() -> None:
    config = SimulationConfig(seed=11, leads=1500, days=60, emit_outcomes=True)
    company = simulate(config)
    truth = {lead.user_id or f"u-{lead.index:06d}": lead for lead in company.leads()}
    outcomes = [m for m in company.messages() if m.get("event") in OUTCOME_EVENTS]
    created = [m for m in outcomes if m["event"] == "Opportunity Created"]
    assert len(created) == sum(lead.opportunity_at is not None for lead in truth.values()) > 0
    for m in outcomes:
        lead = truth[m["userId"]]
        assert m["properties"]["amount"] == lead.deal_value
        if m["event"] == "Opportunity Created":
            assert ts(m) == lead.opportunity_at
        elif m["event"] == "Deal Won":
            assert ts(m) == lead.customer_at


# -- configuration and exports ----------------------------------------------------------------


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SimulationConfig(days=0)
    with pytest.raises(ValueError):
        SimulationConfig(start=datetime(2026, 8, 1))  # naive on purpose
    assert list(simulate(SimulationConfig(leads=0)).messages()) == []


def test_start_time_is_respected() -> None:
    start = datetime(2027, 1, 4, 9, 30, tzinfo=UTC)
    company = simulate(SimulationConfig(seed=2, leads=200, days=7, start=start))
    first = next(iter(company.messages()))
    assert ts(first) >= start
    assert all(start <= lead.first_touch < start + timedelta(days=7) for lead in company.leads())


def test_leads_csv_round_trip(tmp_path: Path) -> None:
    company = simulate(SMALL)
    path = tmp_path / "leads.csv"
    rows = write_leads_csv(company, path)
    with path.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    identified = [lead for lead in company.leads() if lead.user_id]
    assert rows == len(read) == len(identified)
    assert tuple(read[0]) == LEAD_COLUMNS
    assert [row["email"] for row in read] == [lead.email for lead in identified]
    for row, lead in zip(read, identified, strict=True):
        assert row["company_size"] == str(lead.traits["company_size"] or "")
    everyone = write_leads_csv(company, tmp_path / "all.csv", include_anonymous=True)
    assert everyone == SMALL.leads


def test_events_jsonl_round_trip(tmp_path: Path) -> None:
    company = simulate(SMALL)
    path = tmp_path / "events.jsonl"
    assert write_events_jsonl(company, path, limit=500) == 500
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(itertools.islice(company.messages(), 500))
    assert write_events_jsonl(company, path) == company.summary()["messages"]


def test_generation_rate_is_reasonable() -> None:
    company = simulate(SimulationConfig(seed=9, leads=2000))
    began = time.process_time()
    count = sum(1 for _ in company.messages())
    rate = count / max(time.process_time() - began, 1e-9)
    assert rate > 20_000, f"{rate:.0f} messages/s"
    assert math.isfinite(rate)
