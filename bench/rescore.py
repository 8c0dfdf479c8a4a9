"""Rescore benchmark: `leadflow score rebuild` against a DuckDB GROUP BY over the same events.

Goal (from the issue): 10 million events over 1 million leads rescored in at most 3 times the
time of a plain DuckDB GROUP BY sum over the same events, measured in the same run.

Steps (only 3 and 5 are timed):

1. Events from the simulator (leadflow.simulator, streamed: never all in memory), the first
   --events messages of a company of --leads simulated leads. The simulator emits about 13.5
   messages per lead over its 90-day window, so a smaller ratio cuts the window short (the
   leads who arrive last get no events); the leads actually stored are printed.
2. Loaded into a fresh store (SQLite by default) through `Leadflow.ingest`, --batch messages
   per call: the live path, which scores every event as it comes. The clock is fixed at the
   end of the simulated window, for loading and for the rebuild alike, so the engagement the
   live path stored and the rebuilt one are read at the same instant.
3. `Leadflow.rescore()`, what `leadflow score rebuild` runs: every lead's events replayed
   under the live model, the ledger rewritten, the policy applied. Best of --repeat.
4. Correctness: every lead's engagement_score after the rebuild equals the one the live path
   stored before it, within 1e-6 (--sample N checks N random leads instead of all).
5. The reference: the stored events (lead_id after identity resolution, event name,
   timestamp, and the points of the engagement rules each one matches, computed in Python
   beforehand) in an in-memory DuckDB table; `SELECT lead_id, sum(points) FROM events GROUP
   BY lead_id`, and the same with each rule's decay, `sum(points * pow(2, -(epoch(now) -
   epoch(ts)) / half_life))`; best of 3 each. The result lands in a DuckDB table (no
   conversion to Python objects; fetching it into Python is printed apart).

Prints events/s of each and the ratios. Timings are reported, never asserted.

    .venv/bin/python bench/rescore.py                      # 200k events, 20k leads, SQLite
    .venv/bin/python bench/rescore.py --backend postgresql
    .venv/bin/python bench/rescore.py --events 10000000 --leads 1000000   # the goal's size
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import itertools
import math
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
from _common import database
from leadflow import Settings
from leadflow.adapters.db.tables import Event, Lead
from leadflow.bootstrap import Leadflow
from leadflow.domain.scoring import ScoredEvent
from leadflow.services.rescore import RescoreReport
from leadflow.simulator import SimulationConfig, simulate

GOAL_RATIO = 3.0
TOLERANCE = 1e-6


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def chunks(config: SimulationConfig, events: int, size: int) -> Iterator[list[dict[str, object]]]:
    messages = itertools.islice(simulate(config).messages(), events)
    while chunk := list(itertools.islice(messages, size)):
        yield chunk


def load(core: Leadflow, args: argparse.Namespace, config: SimulationConfig) -> int:
    """The simulator's messages through the live ingestion path; the events stored."""
    source = core.create_source("bench")
    total = 0
    for chunk in chunks(config, args.events, args.batch):
        result = core.ingest(source, chunk, raise_on_error=True)
        total += result.accepted
    return total


def engagement(core: Leadflow) -> dict[int, tuple[float, str]]:
    """Every live lead's stored engagement score and stage."""
    table = Lead.__table__
    query = select(table.c.id, table.c.engagement_score, table.c.stage).where(
        table.c.merged_into.is_(None)
    )
    with core.engine.connect() as conn:
        return {row.id: (row.engagement_score, row.stage) for row in conn.execute(query)}


def write_reference_rows(core: Leadflow, path: Path) -> int:
    """The stored events as CSV rows (lead_id, name, ts, points, half_life): one row per
    matching engagement rule, or one with 0 points when none matches. Returns the rows."""
    table = Event.__table__
    query = select(
        table.c.lead_id,
        table.c.type,
        table.c.name,
        table.c.timestamp,
        table.c.properties,
        table.c.raw,
    ).execution_options(yield_per=20_000)
    rules = core.model.rules.engagement
    rows = 0
    with core.engine.connect() as conn, path.open("w", newline="") as out:
        writer = csv.writer(out)
        for row in conn.execute(query):
            context = row.raw.get("context") if isinstance(row.raw, dict) else None
            event = ScoredEvent(
                row.type, row.name, row.timestamp, row.properties or {}, context or {}
            )
            ts = row.timestamp.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
            matched = [r for r in rules if r.matcher.matches(event)]
            for rule in matched or [None]:
                points = rule.points if rule is not None else 0.0
                half_life = rule.half_life if rule is not None else None
                writer.writerow([row.lead_id, row.name or "", ts, points, half_life or "inf"])
                rows += 1
    return rows


def best_of(runs: int, work: duckdb.DuckDBPyConnection, sql: str) -> float:
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        work.execute(sql)
        best = min(best, time.perf_counter() - start)
    return best


def reference(csv_path: Path, now: datetime) -> dict[str, float]:
    """DuckDB in memory: the plain sum and the decayed sum per lead, best of 3."""
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE events AS SELECT * FROM read_csv('{csv_path}', header = false,
            columns = {{'lead_id': 'BIGINT', 'name': 'VARCHAR', 'ts': 'TIMESTAMP',
                        'points': 'DOUBLE', 'half_life': 'DOUBLE'}})"""
    )
    moment = now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    plain = "SELECT lead_id, sum(points) AS total FROM events GROUP BY lead_id"
    decayed = (
        f"SELECT lead_id, sum(points * pow(2, -(epoch(TIMESTAMP '{moment}') - epoch(ts)) "
        "/ half_life)) AS total FROM events GROUP BY lead_id"
    )
    (threads,) = con.execute("SELECT current_setting('threads')").fetchone() or (0,)
    (rows,) = con.execute("SELECT count(*) FROM events").fetchone() or (0,)
    found = {
        "threads": float(threads),
        "rows": float(rows),
        "plain": best_of(3, con, f"CREATE OR REPLACE TABLE totals AS {plain}"),
        "decayed": best_of(3, con, f"CREATE OR REPLACE TABLE totals AS {decayed}"),
    }
    start = time.perf_counter()
    con.execute(plain).fetchall()
    found["plain_fetch"] = time.perf_counter() - start
    con.close()
    return found


def rescore(core: Leadflow, args: argparse.Namespace) -> tuple[float, RescoreReport]:
    best, report = math.inf, RescoreReport()
    for _ in range(args.repeat):
        profiler = cProfile.Profile() if args.profile else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = core.rescore(processes=args.processes)
        if profiler is not None:
            profiler.disable()
        best = min(best, time.perf_counter() - start)
        if profiler is not None:
            print(f"cProfile of Leadflow.rescore() (top {args.profile} by own time):")
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(args.profile)
    return best, report


def check(
    before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]], sample: int
) -> tuple[int, list[tuple[int, float, float]], int]:
    """Leads checked, those whose engagement differs by more than the tolerance, and how
    many changed stage."""
    ids = sorted(before)
    if 0 < sample < len(ids):
        ids = sorted(random.Random(5).sample(ids, sample))
    wrong = [
        (i, before[i][0], after[i][0])
        for i in ids
        if i not in after or abs(before[i][0] - after[i][0]) > TOLERANCE
    ]
    moved = sum(1 for i in ids if i in after and before[i][1] != after[i][1])
    return len(ids), wrong, moved


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--leads", type=int, default=20_000, help="simulated leads")
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--batch", type=int, default=1000, help="messages per ingest call")
    parser.add_argument("--repeat", type=int, default=1, help="rescore runs (best of)")
    parser.add_argument(
        "--processes", type=int, default=1, help="rebuild worker processes (PostgreSQL)"
    )
    parser.add_argument("--sample", type=int, default=0, help="leads checked; 0: all")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile the rescore, print top N"
    )
    args = parser.parse_args()
    config = SimulationConfig(seed=args.seed, leads=args.leads)
    now = simulate(config).window[1]
    print(f"machine: {os.cpu_count()} cores, {load_average()}")
    with tempfile.TemporaryDirectory() as tmp, database(args.backend, Path(tmp)) as url:
        core = Leadflow(Settings(database_url=url), clock=FixedClock(now))
        core.migrate()
        start = time.perf_counter()
        events = load(core, args, config)
        loading = time.perf_counter() - start
        leads = core.count_leads()
        print(
            f"events: {events:,} simulator messages (seed {args.seed}, {args.leads:,} simulated "
            f"leads) over {leads:,} leads in {args.backend}; loaded through Leadflow.ingest "
            f"in {loading:.1f} s ({events / loading:,.0f} events/s, not part of the goal)"
        )
        csv_path = Path(tmp) / "events.csv"
        write_reference_rows(core, csv_path)
        before = engagement(core)
        print(f"rescore: {load_average()} before")
        seconds, report = rescore(core, args)
        print(f"rescore: {load_average()} after")
        after = engagement(core)
        checked, wrong, moved = check(before, after, args.sample)
        merges = {lead_id: len(core.merges(lead_id)) for lead_id, _, _ in wrong[:10]}
        core.close()
        ref = reference(csv_path, now)
    if report.events != events:
        raise RuntimeError(f"the rebuild replayed {report.events} events, {events} stored")
    rate = events / seconds
    label = f"leadflow Leadflow.rescore() [{args.backend}, {args.processes} process"
    label += "es]" if args.processes > 1 else "]"
    width = max(len(label), 36)
    print(
        f"{'duckdb GROUP BY sum(points)':{width}s} {ref['plain']:9.4f} s "
        f"{events / ref['plain']:14,.0f} events/s (best of 3, {ref['threads']:.0f} threads, "
        f"{ref['rows']:,.0f} rows; fetched into Python: {ref['plain_fetch']:.4f} s)"
    )
    print(
        f"{'duckdb GROUP BY sum(decayed points)':{width}s} {ref['decayed']:9.4f} s "
        f"{events / ref['decayed']:14,.0f} events/s (best of 3)"
    )
    print(
        f"{label:{width}s} {seconds:9.4f} s {rate:14,.0f} events/s "
        f"({report.leads:,} leads, {report.changes} stage changes"
        + (f", best of {args.repeat})" if args.repeat > 1 else ")")
    )
    print(
        f"ratio rescore / GROUP BY sum: {seconds / ref['plain']:,.1f} "
        f"(goal: at most {GOAL_RATIO:g}); rescore / decayed GROUP BY: "
        f"{seconds / ref['decayed']:,.1f}"
    )
    verdict = "equal" if not wrong else f"{len(wrong)} DIFFER"
    print(
        f"correctness: engagement of {checked:,} leads before and after the rebuild: {verdict} "
        f"(tolerance {TOLERANCE:g}); {moved} changed stage"
    )
    for lead_id, old, new in wrong[:10]:
        print(
            f"  lead {lead_id}: live path {old!r}, rebuilt {new!r} "
            f"({merges[lead_id]} merges of leads into it)"
        )
    print(f"machine: {load_average()} at the end")
    if wrong:
        sys.exit(1)


if __name__ == "__main__":
    main()
