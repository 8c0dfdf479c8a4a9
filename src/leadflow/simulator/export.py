"""Writing a simulated company to files: a leads CSV (a CRM export) and Segment JSON lines."""

from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

from leadflow.simulator.generate import Company

LEAD_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "title",
    "company",
    "industry",
    "company_size",
    "country",
    "timezone",
    "source",
    "utm_campaign",
)


def write_leads_csv(company: Company, path: Path, *, include_anonymous: bool = False) -> int:
    """Write one row per lead known by e-mail (identified in the window); return the row count.

    With `include_anonymous` every lead is written (their real address included). Missing
    values are empty cells.
    """
    rows = 0
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LEAD_COLUMNS)
        for lead in company.leads():
            if lead.user_id is None and not include_anonymous:
                continue
            traits = lead.traits
            writer.writerow(["" if traits.get(c) is None else traits[c] for c in LEAD_COLUMNS])
            rows += 1
    return rows


def write_events_jsonl(company: Company, path: Path, limit: int | None = None) -> int:
    """Write the globally time-sorted messages, one JSON object per line; return how many."""
    written = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with Path(path).open("w", encoding="utf-8") as handle:
        for message in islice(company.messages(), limit):
            handle.write(dumps(message))
            handle.write("\n")
            written += 1
    return written
