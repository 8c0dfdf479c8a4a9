"""What ``leadflow demo`` does after ingestion so every page has something to show: a sales
team working the MQLs (from the simulator's ground truth), two segments, campaign costs, a
predictive model when there is enough history, and three dashboard users."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

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


class Clock(Protocol):
    at: datetime | None

    def now(self) -> datetime: ...


WAITING_DAYS = 7  # most MQLs of the last week wait in the queue; older ones were decided


def work_the_queue(
    leadflow: Leadflow, truth: dict[str, SimLead], now: datetime, clock: Clock
) -> Counter[str]:
    """Sales decides about the MQLs, each at its own time: a few hours after it became an MQL
    (some later than the SLA), then along the ground truth's dates. Those the ground truth
    says became opportunities are accepted and moved along (SQL, opportunity, customer when
    won); of the others some are accepted and some rejected with a reason, except that three
    in five of those of the last week still wait in the queue."""
    done: Counter[str] = Counter()
    sales = leadflow.model.sales
    for lead in sorted(_all_mqls(leadflow), key=lambda v: v.id):
        real = truth.get(lead.email or "")
        opportunity_at = real.opportunity_at if real and real.opportunity_at else None
        customer_at = real.customer_at if real and real.customer_at else None
        opportunity = opportunity_at is not None and opportunity_at <= now
        won = customer_at is not None and customer_at <= now
        mql_at = lead.mql_at or now
        recent = mql_at > now - timedelta(days=WAITING_DAYS)
        slot = lead.id % 5
        steps = _Steps(clock, mql_at, now)
        try:
            if opportunity or slot == 0 or (slot in (3, 4) and not recent):
                steps.at(mql_at + timedelta(hours=1 + lead.id * 7 % 30))  # some miss the SLA
                leadflow.decide(lead.id, "accept", sales.accept_reasons[0], "user:sam")
                done["accepted"] += 1
                if opportunity and opportunity_at is not None:
                    steps.at(opportunity_at - timedelta(days=2))
                    leadflow.move_stage(lead.id, "sql", "discovery call held", "user:sam")
                    steps.at(opportunity_at)
                    leadflow.move_stage(lead.id, "opportunity", "opportunity created", "crm")
                    done["opportunities"] += 1
                    if won and customer_at is not None:
                        steps.at(customer_at)
                        leadflow.move_stage(lead.id, "customer", "deal won", "crm")
                        done["customers"] += 1
            elif slot == 1 or (slot == 2 and not recent):
                steps.at(mql_at + timedelta(hours=2 + lead.id * 5 % 20))
                reason = sales.reject_reasons[lead.id % len(sales.reject_reasons)]
                leadflow.decide(lead.id, "reject", reason, "user:sam")
                done["rejected"] += 1
            else:
                done["waiting"] += 1
        except Conflict:  # a second run of the demo: already decided
            done["already decided"] += 1
        finally:
            clock.at = None
    return done


class _Steps:
    """Sets the clock for one lead's decisions: each after the one before, none in the
    future."""

    def __init__(self, clock: Clock, first: datetime, now: datetime) -> None:
        self.clock, self.last, self.now = clock, first, now

    def at(self, moment: datetime) -> None:
        self.last = min(max(moment, self.last + timedelta(minutes=1)), self.now)
        self.clock.at = self.last


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
    leadflow: Leadflow, out: Console, truth: list[SimLead], days: int, clock: Clock
) -> list[tuple[str, str, str]]:
    now = leadflow.clock.now()
    by_email = {lead.email: lead for lead in truth if lead.email}
    done = work_the_queue(leadflow, by_email, now, clock)
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
