"""Dashboard benchmark: the leads list over a million leads on PostgreSQL, first page and a
deep page in every order, as the library answers it and as the signed-in page renders it,
against a primary-key scan of 50 rows and OFFSET paging measured in the same run.

1. A fresh PostgreSQL database, migrated; --leads leads generated in bulk by SQL (not timed):
   emails, stages (most leads, some MQL, fewer further), fit scores and grades, engagement,
   a predicted probability for four in five.
2. Timed, best of --repeat, for each order (newest, engagement, fit, p_convert): the first page
   of 50, the page after the lead at rank --deep (its cursor computed outside the timing), the
   first page of MQLs of grade A, and an email search; then the HTML pages /leads?sort=...
   (first and deep) and /leads/ID through the app, signed in.
3. References: ``SELECT id FROM leads ORDER BY id DESC LIMIT 50`` and the same deep page by
   ``OFFSET`` (what keyset paging avoids).
4. Correctness: each deep keyset page equals the OFFSET page.

    .venv/bin/python bench/dashboard.py                     # 200,000 leads
    .venv/bin/python bench/dashboard.py --leads 1000000
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from starlette.testclient import TestClient

from _common import best, database
from leadflow import Settings, open_leadflow
from leadflow.ports import LeadFilter
from leadflow.web import create_site

START = datetime(2025, 1, 1, tzinfo=UTC)
LEADS_SQL = """
INSERT INTO leads (id, email, traits, stage, version, fit_score, fit_grade, engagement_score,
                   p_convert, first_touch, score_state, created_at, updated_at, last_seen_at)
SELECT i, 'person' || i || '@company' || (i % 5000) || '.example',
       jsonb_build_object('first_name', 'P' || i, 'company', 'Company ' || (i % 5000)),
       CASE WHEN u < 0.90 THEN 'lead' WHEN u < 0.95 THEN 'mql' WHEN u < 0.97 THEN 'sal'
            WHEN u < 0.985 THEN 'sql' WHEN u < 0.995 THEN 'opportunity' ELSE 'customer' END,
       1, f,
       CASE WHEN f >= 60 THEN 'A' WHEN f >= 40 THEN 'B' WHEN f >= 20 THEN 'C' ELSE 'D' END,
       round((abs(hashint4(i + 2)) % 20000) / 100.0, 2),
       CASE WHEN i % 5 = 0 THEN NULL ELSE (abs(hashint4(i + 3)) % 10000) / 10000.0 END,
       '{}', '{}', :start + i * interval '20 second', :start + i * interval '20 second',
       :start + i * interval '20 second'
FROM (SELECT i, (abs(hashint4(i)) % 100000) / 100000.0 AS u, abs(hashint4(i + 1)) % 101 AS f
      FROM generate_series(1, :leads) AS i) AS g
"""
ORDER = {
    "newest": "id DESC",
    "engagement": "engagement_score DESC, id DESC",
    "fit": "fit_score DESC, id DESC",
    "p_convert": "coalesce(p_convert, -1.0) DESC, id DESC",
}
VALUE = {
    "newest": "id",
    "engagement": "engagement_score",
    "fit": "fit_score",
    "p_convert": "coalesce(p_convert, -1.0)",
}


def load(url: str, leads: int) -> None:
    app = open_leadflow(Settings(database_url=url, home=Path(tempfile.mkdtemp())))
    started = time.perf_counter()
    with app.transaction() as conn:
        conn.execute(text(LEADS_SQL), {"leads": leads, "start": START})
        conn.execute(text("SELECT setval('leads_id_seq', :n)"), {"n": leads})
    with app.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    app.add_user("bench@example.com", "bench password 1", "admin")
    app.close()
    print(f"loaded {leads:,} leads in {time.perf_counter() - started:.1f} s")


def run(url: str, repeat: int, deep: int) -> None:
    app = open_leadflow(Settings(database_url=url, home=Path(tempfile.mkdtemp())))
    timings: dict[str, float] = {}
    with app.engine.connect() as conn:
        reference, _ = best(
            repeat,
            lambda: conn.execute(text("SELECT id FROM leads ORDER BY id DESC LIMIT 50")).all(),
        )
        offsets: dict[str, float] = {}
        cursors: dict[str, str] = {}
        expected: dict[str, list[int]] = {}
        for sort, order in ORDER.items():
            query = f"SELECT id FROM leads ORDER BY {order} OFFSET :n LIMIT 50"
            offsets[sort], _ = best(repeat, lambda q=query: conn.execute(text(q), {"n": deep}))
            expected[sort] = [r.id for r in conn.execute(text(query), {"n": deep})]
            row = conn.execute(
                text(f"SELECT {VALUE[sort]} AS v, id FROM leads ORDER BY {order} "
                     "OFFSET :n LIMIT 1"),
                {"n": deep - 1},
            ).one()  # fmt: skip
            cursors[sort] = str(row.id) if sort == "newest" else f"{float(row.v)!r}:{row.id}"
    for sort in ORDER:
        timings[f"{sort}: first page"], _ = best(repeat, lambda s=sort: app.leads(sort=s))
        took, page = best(repeat, lambda s=sort: app.leads(sort=s, cursor=cursors[s]))
        timings[f"{sort}: page after rank {deep:,}"] = took
        assert [v.id for v in page.items] == expected[sort], sort
        timings[f"{sort}: MQLs of grade A"], _ = best(
            repeat, lambda s=sort: app.leads(LeadFilter(stage="mql", grade="A"), sort=s)
        )
    timings["search 'person4242'"], found = best(
        repeat, lambda: app.leads(LeadFilter(search="person4242@"))
    )
    assert found.items, "the search found nothing"
    with TestClient(create_site(leadflow=app)) as client:
        form = client.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        client.post(
            "/login",
            data={"email": "bench@example.com", "password": "bench password 1",
                  "login_token": token.group(1)},
        )  # fmt: skip

        def page(path: str) -> None:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)

        timings["HTML /leads?sort=engagement"], _ = best(
            repeat, lambda: page("/leads?sort=engagement")
        )
        deep_path = f"/leads?sort=engagement&cursor={cursors['engagement']}"
        timings[f"HTML /leads deep (rank {deep:,})"], _ = best(repeat, lambda: page(deep_path))
        timings["HTML /leads?stage=mql&grade=A"], _ = best(
            repeat, lambda: page("/leads?stage=mql&grade=A&sort=p_convert")
        )
        timings["HTML /leads/ID"], _ = best(repeat, lambda: page(f"/leads/{deep}"))
    app.close()
    print(f"reference  SELECT id ... ORDER BY id DESC LIMIT 50    {reference * 1000:8.2f} ms")
    for sort, took in offsets.items():
        print(f"reference  OFFSET {deep:,} paging by {sort:<11} {took * 1000:10.1f} ms")
    for name, took in timings.items():
        print(f"{name:<36} {took * 1000:9.1f} ms  ({took / reference:6.1f}x the reference)")
    worst = max(t for n, t in timings.items() if not n.startswith("search"))
    deepest = max(t for n, t in timings.items() if "page after rank" in n)
    print(f"slowest page {worst * 1000:.0f} ms; deep keyset pages at most "
          f"{deepest / min(offsets.values()):.3f}x the fastest OFFSET page")  # fmt: skip
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deep", type=int, default=None, help="Rank of the deep page.")
    args = parser.parse_args()
    deep = args.deep or args.leads // 2
    with tempfile.TemporaryDirectory() as folder, database("postgresql", Path(folder)) as url:
        load(url, args.leads)
        run(url, args.repeat, deep)


if __name__ == "__main__":
    main()
