"""The demo's nurture journey: its MQLs get an email with an offer code through a local SMTP
server, then a text through a capture file, with every consent and quiet-hours rule applied."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from leadflow.adapters.email.capture_server import CaptureServer
from leadflow.adapters.email.smtp import SmtpEmailSender
from leadflow.adapters.sms.capture import CaptureSmsSender
from leadflow.bootstrap import Leadflow
from leadflow.jobs.messaging import LeadflowComposer
from leadflow.jobs.nurture import Messaging, run_steps, send_due
from leadflow.jobs.outbox import dispatch
from leadflow.jobs.worker import consumers
from leadflow.ports import LeadFilter
from leadflow.services.deliveries import SendReport
from leadflow.services.email import EmailComposer, EmailSettings
from leadflow.services.templates import Templates

TEMPLATES = Path(__file__).resolve().parents[1] / "simulator" / "templates"
SMS_FILE = "demo-sms.jsonl"
MAX_ROUNDS = 5
JOURNEY = {
    "trigger": {"stage": "mql"},
    "goals": [{"stage": "sal"}, {"unsubscribed": "email"}],
    "offers": {"first-year": {"expires_in": "14d", "prefix": "ACME"}},
    "steps": [
        {"id": "welcome", "email": "demo-welcome", "offer": "first-year"},
        {"id": "nudge", "sms": "demo-nudge"},
        {"id": "pause", "wait": "3d"},
        {"id": "check", "if": {"clicked": "welcome"}, "then": "handoff", "else": "case-study"},
        {"id": "case-study", "email": "demo-case-study"},
        "exit",
        {"id": "handoff", "notify_sales": "Clicked the guide in the welcome email"},
    ],
}


def _grant_sms_consent(leadflow: Leadflow) -> int:
    """The simulated signup form asks for text messages; those who gave a phone agreed."""
    granted = 0
    page = leadflow.leads(LeadFilter(stage="mql"), limit=500)
    for lead in page.items:
        if lead.phone:
            proof = {"form": "signup (simulated)", "checkbox": "texts about my trial"}
            leadflow.set_consent(lead.id, "sms", "granted", "form", proof)
            granted += 1
    return granted


def run_demo_nurture(leadflow: Leadflow, out: Console, public_url: str) -> None:
    templates = Templates(TEMPLATES)
    leadflow.templates = templates
    leadflow.template_check = templates.check
    leadflow.save_journey("demo-nurture", JOURNEY, origin="demo")
    consented = _grant_sms_consent(leadflow)
    sms_file = leadflow.settings.home / SMS_FILE
    with CaptureServer() as smtp:
        config = EmailSettings(
            host="127.0.0.1", port=smtp.port, security="none",
            from_address="hello@acme.example.com", from_name="Acme",
        )  # fmt: skip
        composer = EmailComposer(config, templates, leadflow.tokens, public_url)
        messaging = Messaging(
            LeadflowComposer(composer, templates, "ACME"),
            SmtpEmailSender(config),
            CaptureSmsSender(sms_file, "ACME"),
        )
        started = dispatch(leadflow, consumers(leadflow))
        steps = run_steps(leadflow)
        sent = SendReport()
        for _ in range(MAX_ROUNDS):  # a send lets its run go on to the next step
            round_sent = send_due(leadflow, messaging)
            sent += round_sent
            moved = run_steps(leadflow)
            steps += moved
            if not moved.sends:
                break
        received = smtp.received
    texts = sms_file.read_text(encoding="utf-8").splitlines() if sms_file.exists() else []
    out.print(
        f"\nnurture: {started} outbox rows dispatched, {steps.runs} journey runs advanced, "
        f"{len(received)} emails received by the local SMTP server, {len(texts)} texts in "
        f"{sms_file.name} ({consented} MQLs with a phone agreed to texts)"
    )
    table = Table("outcome", "messages", title="demo-nurture: what the last checks decided")
    table.add_row("sent", str(sent.sent))
    if sent.deferred:
        table.add_row(
            "waiting for the recipient's local hours or the frequency cap", str(sent.deferred)
        )
    for reason, count in Counter(sent.reasons).most_common():
        if reason not in ("quiet_hours", "frequency_cap"):
            table.add_row(f"skipped: {reason.replace('_', ' ')}", str(count))
    out.print(table)
    if received:
        first = received[0].message
        out.print(f"first email: to {first['To']}, subject [bold]{first['Subject']}[/]")
        out.print(f"  List-Unsubscribe: {first['List-Unsubscribe']}")
    if texts:
        text = json.loads(texts[0])
        out.print(f"first text: to {text['to']} ({text['parts']} part): {text['text']}")
