"""Reports benchmark: the funnel, the SLA, attribution and ROI reports over a large store on
PostgreSQL, against a plain count of the stage history measured in the same run.

Goal: each report over 1 million leads and 10 million events answers in under 2 seconds on
PostgreSQL.

1. A fresh PostgreSQL database, migrated; --leads leads created over a year from 5 sources
   and 20 campaigns, generated in bulk by SQL (generate_series, not timed), moved along a
   funnel: 100% lead, 10% MQL (half of the MQLs that go no further are rejected), 6% SAL,
   3% SQL, 1.5% opportunity, 0.5% customer; each step hours to weeks after the one before.
   --events events (5 per lead by default): each lead's first message (a page from its
   campaign), an identify, then pages and tracks, one in five from a campaign or a nurture
   email, spread over its life (about 80% of an opportunity's before
   it); "Opportunity Created" and "Deal Won" (with an amount) for the leads that got there.
   Every MQL enters one of 3 journeys and gets 3 emails, a third of them clicked. Costs
   (per source, campaign and journey, per month) come in through ``import_costs``.
2. The reference, best of --repeat: ``SELECT count(*) FROM stage_changes``.
3. Timed, best of --repeat: ``funnel_report`` by cohort_month, by source and by
   utm_campaign, ``sla_report``, ``attribution_report`` by campaign with each model and by
   source and journey (W-shaped), ``roi_report`` by source, campaign and journey,
   ``score_quality_report`` (deciles, the A1-D4 matrix, calibration; scores and
   probabilities generated to rise with the depth a lead reaches) and ``journey_report`` of
   one journey, each through the library, over the whole store (no window).
4. Correctness: the funnel's counts equal hand-written counts of the plan; attribution finds
   every opportunity, customer and dollar of the plan, and its credits add up to them.

    .venv/bin/python bench/reports.py                                        # 200,000 leads
    .venv/bin/python bench/reports.py --leads 1000000 --events 10000000      # the goal
    .venv/bin/python bench/reports.py --leads 1000000 --events 10000000 \
        --db postgresql://postgres@127.0.0.1/reportsbench     # kept: a second run skips the load
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from _common import best, database
from leadflow import Settings, open_leadflow

START = datetime(2024, 6, 1, tzinfo=UTC)
NOW = datetime(2025, 8, 1, tzinfo=UTC)
PLAN_SQL = """
CREATE UNLOGGED TABLE bench_plan AS
SELECT i, created, depth, depth = 1 AND hashint4(i + 2) % 2 = 0 AS rejected,
       created + (1 + abs(hashint4(i + 3)) % (10 * 86400)) * interval '1 second' AS t1,
       (abs(hashint4(i + 4)) % (48 * 3600) + 600) * interval '1 second' AS d2,
       (abs(hashint4(i + 5)) % (10 * 86400) + 3600) * interval '1 second' AS d3,
       (abs(hashint4(i + 6)) % (20 * 86400) + 3600) * interval '1 second' AS d4,
       (abs(hashint4(i + 7)) % (30 * 86400) + 3600) * interval '1 second' AS d5
FROM (SELECT i, :start + (abs(hashint4(i)) % (365 * 86400)) * interval '1 second' AS created,
             CASE WHEN u < 0.005 THEN 5 WHEN u < 0.015 THEN 4 WHEN u < 0.03 THEN 3
                  WHEN u < 0.06 THEN 2 WHEN u < 0.10 THEN 1 ELSE 0 END AS depth
      FROM (SELECT i, (abs(hashint4(i + 1)) % 100000) / 100000.0 AS u
            FROM generate_series(1, :leads) AS i) AS g) AS p
"""
LEADS_SQL = """
INSERT INTO leads (id, traits, stage, version, fit_score, fit_grade, engagement_score,
                   p_convert, first_source_id, first_touch, score_state, created_at,
                   first_seen_at, updated_at)
SELECT i, '{}',
       (ARRAY['lead', 'mql', 'sal', 'sql', 'opportunity', 'customer'])[depth + 1],
       1, fit,
       CASE WHEN fit >= 60 THEN 'A' WHEN fit >= 40 THEN 'B' WHEN fit >= 20 THEN 'C' ELSE 'D' END,
       least(200, depth * 20 + abs(hashint4(i + 21)) % 60),
       least(0.99, depth * 0.15 + (abs(hashint4(i + 22)) % 100) / 500.0), 1 + i % 5,
       jsonb_build_object('campaign', jsonb_build_object('name', 'campaign-' || (i % 20))),
       '{}', created, created, created
FROM (SELECT *, least(100, depth * 12 + abs(hashint4(i + 20)) % 50) AS fit FROM bench_plan) AS p
"""
REJECTED_SQL = (
    "UPDATE leads SET stage = 'recycled' FROM bench_plan p WHERE p.i = leads.id AND p.rejected"
)
CHANGES_SQL = """
INSERT INTO stage_changes (lead_id, from_stage, to_stage, at, actor, reason, note, model_version)
SELECT p.i, v.from_stage, v.to_stage, v.at, v.actor, v.reason, '', 'bench'
FROM bench_plan p CROSS JOIN LATERAL (VALUES
  (1, 'lead', 'mql', p.t1, 'policy', 'fit'),
  (2, 'mql', CASE WHEN p.rejected THEN 'recycled' ELSE 'sal' END, p.t1 + p.d2, 'user',
      CASE WHEN p.rejected THEN 'no_budget' ELSE 'meets_criteria' END),
  (3, 'sal', 'sql', p.t1 + p.d2 + p.d3, 'user', 'qualified'),
  (4, 'sql', 'opportunity', p.t1 + p.d2 + p.d3 + p.d4, 'crm', 'deal'),
  (5, 'opportunity', 'customer', p.t1 + p.d2 + p.d3 + p.d4 + p.d5, 'crm', 'won')
) AS v(k, from_stage, to_stage, at, actor, reason)
WHERE v.k <= p.depth OR (v.k = 2 AND p.rejected)
"""

# Per lead: a first page (from its campaign and source, as leads.first_touch and
# first_source_id say), an identify, then pages and tracks spread over its life (over 125% of
# the time to its opportunity for the leads that have one, so that about 80% come before it;
# 60 days for the others), one in five from a campaign (ads) or a nurture email. The raw
# message is shaped like a tracked one.
EVENTS_SQL = """
INSERT INTO events (source_id, message_id, lead_id, type, name, timestamp, received_at,
                    properties, raw)
SELECT source_id, 'b' || i || '-' || j, i, kind, name, ts, ts, '{}', json_build_object(
         'type', kind, 'messageId', 'b' || i || '-' || j, 'userId', 'u' || i,
         'timestamp', ts, 'event', name,
         'context', json_build_object(
           'userAgent', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15',
           'locale', 'en-US', 'page', json_build_object('path', '/p/' || (j % 40)),
           'campaign', CASE WHEN campaign IS NOT NULL THEN json_build_object(
             'name', campaign, 'source', 'google', 'medium', 'cpc') END))
FROM (
  SELECT p.i, e.j, CASE WHEN e.j = 1 THEN 'identify' WHEN e.j % 3 = 0 THEN 'track'
                        ELSE 'page' END AS kind,
         CASE WHEN e.j = 1 THEN NULL WHEN e.j % 3 = 0 THEN 'Pricing Viewed'
              ELSE 'Page ' || (e.j % 40) END AS name,
         CASE WHEN e.j = 0 THEN 'campaign-' || (p.i % 20)
              WHEN e.j > 1 AND abs(hashint4(p.i * 64 + e.j)) % 10 = 0
                THEN 'campaign-' || ((p.i + e.j) % 20)
              WHEN e.j > 1 AND abs(hashint4(p.i * 64 + e.j)) % 10 = 1
                THEN 'nurture-' || (e.j % 6) END AS campaign,
         CASE WHEN e.j > 0 AND abs(hashint4(p.i * 64 + e.j + 7)) % 10 = 0
              THEN 1 + (p.i + e.j) % 5
              ELSE 1 + p.i % 5 END AS source_id,
         p.created + e.j * p.span / p.n + e.j * interval '1 second' AS ts
  FROM (SELECT i, created, n,
               CASE WHEN depth >= 4 THEN (t1 + d2 + d3 + d4 - created) * 1.25
                    ELSE interval '60 days' END AS span
        FROM (SELECT *, :base + (abs(hashint4(i + 11)) % 100 < :frac)::int + 6 * depth AS n
              FROM bench_plan WHERE i BETWEEN :low AND :high) AS counted) AS p
  CROSS JOIN LATERAL generate_series(0, p.n - 1) AS e(j)
) AS planned
"""
OUTCOMES_SQL = """
INSERT INTO events (source_id, message_id, lead_id, type, name, timestamp, received_at,
                    properties, raw)
SELECT 1 + i % 5, 'o' || i || '-' || k, i, 'track', name, at, at, properties,
       json_build_object('type', 'track', 'event', name, 'userId', 'u' || i,
                         'timestamp', at, 'properties', properties)
FROM (SELECT i, 1 AS k, 'Opportunity Created' AS name, t1 + d2 + d3 + d4 AS at,
             '{}'::jsonb AS properties
      FROM bench_plan WHERE depth >= 4
      UNION ALL
      SELECT i, 2, 'Deal Won', t1 + d2 + d3 + d4 + d5,
             jsonb_build_object('amount', 1000 + abs(hashint4(i + 12)) % 50000,
                                'currency', 'USD')
      FROM bench_plan WHERE depth = 5) AS outcomes
"""
DEFINITIONS_SQL = """
INSERT INTO journeys (name, version, spec, enabled, origin, created_at, updated_at)
SELECT 'journey-' || k, 'bench', '{"trigger": {"stage": "mql"}, "steps": []}', true, 'api',
       :start, :start
FROM generate_series(0, 2) AS k
"""
JOURNEYS_SQL = """
INSERT INTO journey_runs (journey, lead_id, entry, status, step, state, version, entered_at,
                          updated_at, exit_reason)
SELECT 'journey-' || (i % 3), i, 1, 'done', NULL, '{}', 'bench', t1, t1, ''
FROM bench_plan WHERE depth >= 1
"""
DELIVERIES_SQL = """
INSERT INTO deliveries (key, lead_id, channel, journey, step, status, reason, attempts, parts,
                        content, created_at, updated_at, sent_at, clicked_at)
SELECT 'bench:' || i || ':' || k, i, 'email', 'journey-' || (i % 3), 'email-' || k, 'sent',
       '', 1, 1, '{}', t1 + k * interval '2 days', t1 + k * interval '2 days',
       t1 + k * interval '2 days',
       CASE WHEN abs(hashint4(i * 4 + k)) % 3 = 0
            THEN t1 + k * interval '2 days' + interval '2 hours' END
FROM bench_plan CROSS JOIN generate_series(1, 3) AS k
WHERE depth >= 1
"""
PLAN_TOTALS_SQL = """
SELECT count(*) FILTER (WHERE depth >= 4), count(*) FILTER (WHERE depth = 5),
       coalesce(sum(1000 + abs(hashint4(i + 12)) % 50000) FILTER (WHERE depth = 5), 0)
FROM bench_plan
"""
MODELS = ("first_touch", "last_touch", "linear", "w_shaped")


def load(url: str, leads: int, events: int) -> None:
    app = open_leadflow(Settings(database_url=url, home=Path(tempfile.mkdtemp())))
    started = time.perf_counter()
    with app.transaction() as conn:
        for n in range(1, 6):
            conn.execute(
                text("INSERT INTO sources (id, name, write_key, created_at) "
                     "VALUES (:n, :name, :key, :now)"),
                {"n": n, "name": f"source-{n}", "key": f"k{n}", "now": START},
            )  # fmt: skip
        conn.execute(text(PLAN_SQL), {"leads": leads, "start": START})
        conn.execute(text(LEADS_SQL))
        conn.execute(text(REJECTED_SQL))
        conn.execute(text(CHANGES_SQL))
        changes = conn.execute(text("SELECT count(*) FROM stage_changes")).scalar_one()
        conn.execute(text(DEFINITIONS_SQL), {"start": START})
        conn.execute(text(JOURNEYS_SQL))
        conn.execute(text(DELIVERIES_SQL))
    stored = load_events(app, leads, events)
    with app.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    took = time.perf_counter() - started
    print(f"loaded {leads:,} leads, {changes:,} stage changes and {stored:,} events "
          f"in {took:.1f} s")  # fmt: skip
    load_costs(app)
    app.close()


def load_events(app: Any, leads: int, events: int) -> int:
    """About ``events`` events (the funnel's depth adds 6 per stage beyond lead), in slices
    of leads, each its own transaction."""
    per_lead = max(events / leads - 0.21 * 6, 2.0)
    base, frac = int(per_lead), round((per_lead - int(per_lead)) * 100)
    step = 50_000
    for low in range(1, leads + 1, step):
        with app.transaction() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(
                text(EVENTS_SQL),
                {"base": base, "frac": frac, "low": low, "high": low + step - 1},
            )
        done = min(low + step - 1, leads)
        print(f"  events of leads 1-{done:,}", end="\r", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    with app.transaction() as conn:
        conn.execute(text(OUTCOMES_SQL))
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def load_costs(app: Any) -> None:
    """A cost per month for every source, campaign and journey, through ``import_costs``."""
    names = [("source", f"source-{n}") for n in range(1, 6)]
    names += [("campaign", f"campaign-{n}") for n in range(20)]
    names += [("journey", f"journey-{n}") for n in range(3)]
    lines = ["dimension,name,period_start,period_end,amount,currency,note"]
    for month in range(14):
        year, number = divmod(START.month - 1 + month, 12)
        start = date(START.year + year, number + 1, 1)
        for k, (dimension, name) in enumerate(names):
            lines.append(f"{dimension},{name},{start:%Y-%m},,{500 + 37 * k + 11 * month},,")
    file = Path(tempfile.mkdtemp()) / "costs.csv"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = app.import_costs(file)
    assert (result.imported, result.invalid) == (len(lines) - 1, 0), result.to_json()


def run(url: str, repeat: int) -> None:
    app = open_leadflow(Settings(database_url=url, home=Path(tempfile.mkdtemp())))
    with app.engine.connect() as conn:
        reference, _ = best(
            repeat, lambda: conn.execute(text("SELECT count(*) FROM stage_changes")).scalar()
        )
        expected = dict(
            conn.execute(text("SELECT depth, count(*) FROM bench_plan GROUP BY depth")).all()
        )
    timings = {}
    for by in ("cohort_month", "source", "utm_campaign"):
        timings[f"funnel by {by}"], report = best(repeat, lambda by=by: app.funnel_report(by))
        reached_sql = sum(g.reached["sql"] for g in report.groups)
        assert reached_sql == sum(n for d, n in expected.items() if d >= 3), reached_sql
    timings["sla"], sla = best(repeat, app.sla_report)
    with app.engine.connect() as conn:
        totals = conn.execute(text(PLAN_TOTALS_SQL)).one()
    for model in MODELS:
        timings[f"attribution {model}"], found = best(
            repeat, lambda model=model: app.attribution_report(model, "campaign")
        )
        check_attribution(found, totals)
    for by in ("source", "journey"):
        timings[f"attribution by {by}"], found = best(
            repeat, lambda by=by: app.attribution_report("w_shaped", by)
        )
        check_attribution(found, totals)
    for by in ("source", "campaign", "journey"):
        timings[f"roi by {by}"], roi = best(repeat, lambda by=by: app.roi_report(by))
        assert roi.overall.leads == sum(expected.values()), roi.overall
    timings["score quality (sql)"], quality = best(repeat, app.score_quality_report)
    assert quality.leads == sum(expected.values()), quality.leads
    assert quality.converted == sum(n for d, n in expected.items() if d >= 3), quality.converted
    timings["journey journey-0"], journey = best(repeat, lambda: app.journey_report("journey-0"))
    sent = sum(step["sent"] for step in journey["steps"])
    with app.engine.connect() as conn:
        mqls_of_journey = conn.execute(
            text("SELECT count(*) FROM bench_plan WHERE depth >= 1 AND i % 3 = 0")
        ).scalar_one()
    assert sent == 3 * mqls_of_journey, (sent, mqls_of_journey)
    app.close()
    assert sla.mqls == sum(n for d, n in expected.items() if d >= 1), sla.mqls
    print(f"MQLs {sla.mqls:,}; acceptance rate {sla.acceptance_rate}")
    print(f"opportunities {found.opportunities:,}, customers {found.customers:,}, "
          f"revenue {found.revenue:,.0f}; ROI by journey {roi.overall.roi}")  # fmt: skip
    print(f"reference  SELECT count(*) FROM stage_changes   {reference * 1000:8.1f} ms")
    for name, took in timings.items():
        print(f"{name:<28} {took * 1000:12.1f} ms  ({took / reference:.1f}x the count)")
    goal = "met" if max(timings.values()) < 2.0 else "NOT met"
    print(f"goal (< 2 s for each report): {goal}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def check_attribution(found: Any, totals: Any) -> None:
    """Every opportunity, customer and dollar of the plan, handed out exactly once."""
    assert (found.opportunities, found.customers) == (totals[0], totals[1]), found
    assert abs(found.revenue - float(totals[2])) < 1e-6 * max(1.0, found.revenue)
    assert abs(sum(g.opportunities for g in found.groups) - found.opportunities) < 1e-6
    assert abs(sum(g.revenue for g in found.groups) - found.revenue) < 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--events", type=int, help="events in all (default: 5 per lead)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--db",
        metavar="URL",
        help="Use this PostgreSQL database (kept; loaded only when it has no leads) instead of "
        "a throwaway one.",
    )
    args = parser.parse_args()
    if args.db:
        if not has_leads(args.db):
            load(args.db, args.leads, args.events or 5 * args.leads)
        run(args.db, args.repeat)
        return
    with tempfile.TemporaryDirectory() as folder, database("postgresql", Path(folder)) as url:
        load(url, args.leads, args.events or 5 * args.leads)
        run(url, args.repeat)


def has_leads(url: str) -> bool:
    app = open_leadflow(Settings(database_url=url, home=Path(tempfile.mkdtemp())))
    try:
        with app.engine.connect() as conn:
            return bool(conn.execute(text("SELECT EXISTS (SELECT 1 FROM leads)")).scalar())
    finally:
        app.close()


if __name__ == "__main__":
    main()
