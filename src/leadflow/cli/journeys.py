"""``leadflow journeys``, ``leadflow offers`` and ``leadflow consent``: nurture from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from leadflow.cli.common import fail, group, print_json, stdout, store
from leadflow.domain.errors import ValidationError

app = group("Nurture journeys: save them, switch them on and off, follow their runs and results.")
offers_app = group("Offer codes issued by journeys: look them up and redeem them.")
consent_app = group("The consent ledger of a lead, per channel, with its proof.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The journey's name.")]
LeadId = Annotated[int, typer.Argument(metavar="ID", help="A lead id (leadflow leads list).")]


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read: {exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        fail(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
    if not isinstance(data, dict):
        fail(f"{path}: the file must hold one journey as a mapping (trigger, steps, ...)")
    return data


@app.command("list")
def list_journeys(ctx: typer.Context, json: JsonOption = False) -> None:
    """Every journey: trigger, state, and its runs by status."""
    with store(ctx) as leadflow:
        found = leadflow.journeys()
    if json:
        print_json(found)
        return
    table = Table("name", "enabled", "trigger", "steps", "active", "done", "origin")
    for item in found:
        trigger = ", ".join(f"{k}: {v}" for k, v in (item["trigger"] or {}).items())
        runs = item["runs"]
        table.add_row(
            item["name"], "yes" if item["enabled"] else "no", trigger, str(item["steps"]),
            str(runs.get("active", 0)), str(runs.get("done", 0)), item["origin"],
        )  # fmt: skip
    stdout().print(table if found else "no journeys yet: leadflow journeys save NAME --file F")


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json: JsonOption = False) -> None:
    """One journey's definition and its runs by status."""
    with store(ctx) as leadflow:
        found = leadflow.journey(name)
    if json:
        print_json(found)
        return
    out = stdout()
    out.print(f"[bold]{name}[/]  version {found['version']}  enabled {found['enabled']}")
    out.print(yaml.safe_dump(found["spec"], sort_keys=False).rstrip())
    out.print(f"runs: {found['runs'] or 'none'}")


@app.command("save")
def save(
    ctx: typer.Context,
    name: NameArg,
    file: Annotated[Path, typer.Option("--file", "-f", help="A YAML file with the journey.")],
) -> None:
    """Create or replace a journey from a YAML file; its templates and segments are checked
    first, and a problem is named with its path."""
    spec = _read_spec(file)
    with store(ctx) as leadflow:
        try:
            journey = leadflow.save_journey(name, spec)
        except ValidationError as exc:
            fail(f"{file}: {exc.message}")
    stdout().print(f"saved journey {name} (version {journey.version}, {len(journey.steps)} steps)")


@app.command("enable")
def enable(ctx: typer.Context, name: NameArg) -> None:
    """Switch a journey on: new leads enter, waiting runs go on."""
    with store(ctx) as leadflow:
        leadflow.set_journey_enabled(name, True)
    stdout().print(f"journey {name} enabled")


@app.command("disable")
def disable(ctx: typer.Context, name: NameArg) -> None:
    """Pause a journey: nobody enters, runs wait where they are."""
    with store(ctx) as leadflow:
        leadflow.set_journey_enabled(name, False)
    stdout().print(f"journey {name} disabled")


@app.command("delete")
def delete(ctx: typer.Context, name: NameArg) -> None:
    """Remove a journey; its active runs end at their next step."""
    with store(ctx) as leadflow:
        leadflow.delete_journey(name)
    stdout().print(f"journey {name} deleted")


@app.command("runs")
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="Only this journey.")] = None,
    lead: Annotated[int | None, typer.Option("--lead", help="Only this lead.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active or done.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json: JsonOption = False,
) -> None:
    """Runs of journeys, newest first, with what each step did."""
    with store(ctx) as leadflow:
        found = leadflow.journey_runs(name, lead, status, limit)
    if json:
        print_json(found)
        return
    table = Table("run", "journey", "lead", "status", "step", "due", "steps so far")
    for run in found:
        steps = " > ".join(f"{e['step']}:{e['outcome']}" for e in run["log"][-4:])
        table.add_row(
            str(run["id"]), run["journey"], str(run["lead_id"]), run["status"],
            run["step"] or "-", run["due_at"] or "-", steps,
        )  # fmt: skip
    stdout().print(table if found else "no runs")


@app.command("report")
def report(ctx: typer.Context, name: NameArg, json: JsonOption = False) -> None:
    """Results per step and A/B variant: sent, delivered, opened, clicked, replied, and
    whether the difference between variants is significant."""
    with store(ctx) as leadflow:
        found = leadflow.journey_report(name)
    if json:
        print_json(found)
        return
    out = stdout()
    out.print(f"[bold]{name}[/]  runs {found['runs']}  exits {found['exits']}")
    table = Table("step", "variant", "sent", "delivered", "skipped", "failed", "opened",
                  "clicked", "replied", "unsubscribed", "converted", "open rate",
                  "click rate")  # fmt: skip
    for row in found["steps"]:
        table.add_row(
            row["step"], row["variant"] or "-", str(row["sent"]), str(row["delivered"]),
            str(row["skipped"]), str(row["failed"]), str(row["opened"]), str(row["clicked"]),
            str(row["replied"]), str(row["unsubscribed"]), str(row["converted"]),
            _pct(row["open_rate"]), _pct(row["click_rate"]),
        )  # fmt: skip
    out.print(table)
    for test in found["ab_tests"]:
        verdict = "significant" if test["significant"] else "not significant"
        out.print(
            f"{test['step']} {test['metric']}: {test['leader']} leads {test['runner_up']} "
            f"(p = {test['p_value']}, {verdict})"
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


# ------------------------------------------------------------------------------------------
@offers_app.command("redeem")
def redeem(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(metavar="CODE", help="The offer code.")],
    json: JsonOption = False,
) -> None:
    """Redeem an offer code (once, before it expires); the lead gets a Coupon Redeemed event."""
    with store(ctx) as leadflow:
        found = leadflow.redeem_coupon(code)
    if json:
        print_json(found)
        return
    stdout().print(f"redeemed {found['code']} ({found['offer']}) for lead {found['lead_id']}")


@offers_app.command("list")
def list_offers(ctx: typer.Context, lead_id: LeadId, json: JsonOption = False) -> None:
    """The offer codes issued to a lead."""
    with store(ctx) as leadflow:
        found = leadflow.coupons(lead_id)
    if json:
        print_json(found)
        return
    table = Table("code", "offer", "issued", "expires", "redeemed")
    for item in found:
        table.add_row(item["code"], item["offer"], item["created_at"],
                      item["expires_at"] or "-", item["redeemed_at"] or "-")  # fmt: skip
    stdout().print(table if found else f"lead {lead_id} has no offer codes")


# ------------------------------------------------------------------------------------------
@consent_app.command("show")
def consent_show(ctx: typer.Context, lead_id: LeadId, json: JsonOption = False) -> None:
    """A lead's consent per channel now, and every grant and withdrawal with its proof."""
    with store(ctx) as leadflow:
        found = leadflow.consent(lead_id)
    if json:
        print_json(found)
        return
    out = stdout()
    out.print(
        "  ".join(f"{channel}: [bold]{status}[/]" for channel, status in found["current"].items())
    )
    table = Table("at", "channel", "status", "source", "proof")
    for row in found["history"]:
        table.add_row(row["at"], row["channel"], row["status"], row["source"], str(row["proof"]))
    out.print(table)


@consent_app.command("request")
def consent_request(
    ctx: typer.Context,
    lead_id: LeadId,
    source: Annotated[str, typer.Option("--source", help="Where the sign-up came from.")],
    proof: Annotated[
        list[str] | None, typer.Option("--proof", help="KEY=VALUE kept as proof (repeatable).")
    ] = None,
) -> None:
    """Double opt-in for email: record a pending consent and queue the confirmation email
    (sent by the worker); the click on its link grants consent, with the click as proof."""
    evidence = _proof(proof)
    with store(ctx) as leadflow:
        delivery = leadflow.request_email_opt_in(lead_id, source, evidence)
    stdout().print(f"lead {delivery.lead_id}: confirmation queued to {delivery.address}")


def _proof(items: list[str] | None) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--proof: {item!r} is not KEY=VALUE")
        evidence[key] = value
    return evidence


@consent_app.command("set")
def consent_set(
    ctx: typer.Context,
    lead_id: LeadId,
    channel: Annotated[str, typer.Option("--channel", help="email or sms.")],
    status: Annotated[str, typer.Option("--status", help="granted, pending or revoked.")],
    source: Annotated[str, typer.Option("--source", help="Where it came from: form, call...")],
    proof: Annotated[
        list[str] | None, typer.Option("--proof", help="KEY=VALUE kept as proof (repeatable).")
    ] = None,
) -> None:
    """Record a consent grant, request or withdrawal for a lead, with its proof."""
    evidence = _proof(proof)
    with store(ctx) as leadflow:
        record = leadflow.set_consent(lead_id, channel, status, source, evidence)
    stdout().print(f"lead {record.lead_id}: {record.channel.value} consent {record.status.value}")
