"""What ``leadflow demo`` does after ingestion so every page has something to show: a sales
team working the MQLs (from the simulator's ground truth), two segments, campaign costs, a
predictive model when there is enough history, and three dashboard users."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from leadflow.bootstrap import Leadflow
from leadflow.domain.errors import Conflict, LeadflowError, NotFound
from leadflow.ports import LeadFilter
from leadflow.services.predict_store import StoreTrainOptions
from leadflow.simulator.model import SimLead

SEGMENTS: dict[str, Any] = {
    "hot-accounts": {
        "description": "Grade A or B leads with real engagement",
        "all": [
            {"field": "grade", "op": "in", "value": ["A", "B"]},
            {"field": "engagement", "op": "gte", "value": 30},
        ],
    },
    "pricing-researchers": {
        "description": "Used the pricing calculator in the last 30 days",
        "all": [{"event": "Pricing Calculator Used", "min_count": 1, "within_days": 30}],
    },
}
USERS = (
    ("admin@demo.leadflow", "Ada Admin", "admin"),
    ("marketer@demo.leadflow", "Mia Marketer", "marketer"),
    ("sales@demo.leadflow", "Sam Sales", "sales"),
)


def _all_mqls(leadflow: Leadflow) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while True:
        page = leadflow.leads(LeadFilter(stage="mql"), limit=500, sort="newest", cursor=cursor)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def work_the_queue(leadflow: Leadflow, truth: dict[str, SimLead], now: datetime) -> Counter[str]:
    """Sales decides about most MQLs: those the ground truth says became opportunities are
    accepted and moved along (SQL, opportunity, customer when won); of the others some are
    accepted, some rejected with a reason, and about two in five stay in the queue."""
    done: Counter[str] = Counter()
    sales = leadflow.model.sales
    for lead in sorted(_all_mqls(leadflow), key=lambda v: v.id):
        real = truth.get(lead.email or "")
        opportunity = bool(real and real.opportunity_at and real.opportunity_at <= now)
        won = bool(real and real.customer_at and real.customer_at <= now)
        slot = lead.id % 5
        try:
            if opportunity or slot == 0:
                leadflow.decide(lead.id, "accept", sales.accept_reasons[0], "user:sam")
                done["accepted"] += 1
                if opportunity:
                    leadflow.move_stage(lead.id, "sql", "discovery call held", "user:sam")
                    leadflow.move_stage(lead.id, "opportunity", "opportunity created", "crm")
                    done["opportunities"] += 1
                    if won:
                        leadflow.move_stage(lead.id, "customer", "deal won", "crm")
                        done["customers"] += 1
            elif slot in (1, 2):
                reason = sales.reject_reasons[lead.id % len(sales.reject_reasons)]
                leadflow.decide(lead.id, "reject", reason, "user:sam")
                done["rejected"] += 1
            else:
                done["waiting"] += 1
        except Conflict:  # a second run of the demo: already decided
            done["already decided"] += 1
    return done


def add_segments(leadflow: Leadflow) -> dict[str, int]:
    for name, definition in SEGMENTS.items():
        leadflow.put_segment(name, definition)
    return {name: leadflow.segment_count(name) for name in SEGMENTS}


def add_costs(leadflow: Leadflow, today: date, days: int) -> int:
    """A monthly budget for the five biggest first-touch campaigns, once."""
    funnel = leadflow.funnel_report("utm_campaign").to_json()["groups"]
    campaigns = [g for g in funnel if g["group"] != "(none)"]
    campaigns.sort(key=lambda g: (-g["entered"], g["group"]))
    start = (today - timedelta(days=days)).replace(day=1)
    end = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    existing = {(c.dimension, c.name) for c in leadflow.list_costs()}
    added = 0
    for rank, group in enumerate(campaigns[:5]):
        if ("campaign", group["group"]) in existing:
            continue
        amount = Decimal(1500 + 750 * (len(group["group"]) % 5) + 500 * rank)
        leadflow.add_cost("campaign", group["group"], start, end, amount, "USD", "demo budget")
        added += 1
    return added


def train_predictor(leadflow: Leadflow) -> str:
    """Train and activate a model of reaching SQL; say why not when history is too thin."""
    try:
        model = leadflow.train_model(StoreTrainOptions("sql", age_out_days=30.0, folds=3))
    except LeadflowError as exc:
        return f"no predictive model: {exc.message}"
    leadflow.activate_model(model.version)
    return f"predictive model {model.version} active (reaching SQL)"


def demo_users(leadflow: Leadflow) -> list[tuple[str, str, str]]:
    """The three demo users with fresh passwords (a second run resets them)."""
    made = []
    for email, name, role in USERS:
        password = secrets.token_urlsafe(9)
        try:
            leadflow.add_user(email, password, role, name)
        except Conflict:
            leadflow.set_user_password(email, password)
            leadflow.set_user_active(email, True)
        made.append((email, role, password))
    return made


def run_demo_sales(
    leadflow: Leadflow, out: Console, truth: list[SimLead], days: int
) -> list[tuple[str, str, str]]:
    now = leadflow.clock.now()
    by_email = {lead.email: lead for lead in truth if lead.email}
    done = work_the_queue(leadflow, by_email, now)
    out.print(
        "sales worked the queue: " + ", ".join(f"{n:,} {what}" for what, n in done.items() if n)
    )
    members = add_segments(leadflow)
    out.print("segments: " + ", ".join(f"{name} ({n:,} leads)" for name, n in members.items()))
    try:
        costs = add_costs(leadflow, now.date(), days)
        out.print(f"campaign costs entered: {costs}")
    except (LeadflowError, NotFound) as exc:
        out.print(f"[yellow]campaign costs: {exc}[/]")
    with out.status("training a predictive model of reaching SQL..."):
        trained = train_predictor(leadflow)
    out.print(trained)
    users = demo_users(leadflow)
    table = Table(title="dashboard users (passwords are new on every run)", title_justify="left")
    table.add_column("email")
    table.add_column("role")
    table.add_column("password")
    for email, role, password in users:
        table.add_row(email, role, password)
    out.print(table)
    return users
