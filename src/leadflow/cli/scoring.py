"""``leadflow explain``, ``leadflow score``, ``leadflow worker`` and the sales step."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.cli.common import group, print_json, stdout, store
from leadflow.domain.lifecycle import StageChange
from leadflow.jobs.messaging import messaging_for
from leadflow.jobs.worker import WorkReport, run_forever, work_once
from leadflow.services.rescore import RescoreReport

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
score_app = group("The scoring model: show it, rebuild every lead's scores with it.")
LeadId = Annotated[int, typer.Argument(metavar="ID", help="A lead id (leadflow leads list).")]


def explain(
    ctx: typer.Context,
    lead_id: LeadId,
    json: JsonOption = False,
) -> None:
    """Why a lead has its scores and its stage: each rule's contribution with the events
    behind it, the fit criteria met, the policy clause that holds, the stage history."""
    with store(ctx) as leadflow:
        found = leadflow.explain(lead_id)
    if json:
        print_json(found)
        return
    out = stdout()
    engagement = found["engagement"]
    fit = found["fit"]
    out.print(
        f"[bold]lead {found['lead_id']}[/]  stage [bold]{found['stage']}[/]  "
        f"fit {fit['grade']} ({fit['score']:g})  engagement {engagement['total']:g}  "
        f"model {found['model_version']}"
    )
    out.print(_rules_table(engagement))
    if engagement["groups"]:
        groups = ", ".join(
            f"{name} {g['score']:g}" + (f"/{g['ceiling']:g}" if g["ceiling"] else "")
            for name, g in engagement["groups"].items()
        )
        out.print(f"groups: {groups}")
    out.print(_fit_table(fit))
    policy = found["policy"]
    verdict = "holds" if policy["result"] else "does not hold"
    out.print(f"MQL policy {verdict}: {escape(policy['expression'])}")
    for clause in policy["fired"]:
        out.print(f"  fired: {escape(clause)}")
    out.print(_history_table(found["history"]))
    if found.get("prediction"):
        out.print(_prediction_table(found["prediction"]))


def _rules_table(engagement: dict[str, Any]) -> Table:
    table = Table(title="engagement", title_justify="left")
    for column in ("rule", "group", "events", "points", "half-life", "decayed", "score"):
        table.add_column(column, justify="right" if column not in ("rule", "group") else "left")
    for rule in engagement["rules"]:
        capped = " (cap)" if rule["capped"] else ""
        skipped = (
            f" +{rule['events_not_counted']} not counted" if rule["events_not_counted"] else ""
        )
        table.add_row(
            rule["rule"], rule["group"] or "-", f"{rule['events_counted']}{skipped}",
            f"{rule['points_per_event']:g}", rule["half_life"], f"{rule['raw']:.2f}",
            f"{rule['score']:.2f}{capped}",
        )  # fmt: skip
    table.add_row("total", "", "", "", "", "", f"{engagement['total']:.2f}")
    return table


def _fit_table(fit: dict[str, Any]) -> Table:
    table = Table(title=f"fit: grade {fit['grade']}, score {fit['score']:g}", title_justify="left")
    table.add_column("criterion")
    table.add_column("points", justify="right")
    table.add_column("conditions")
    for item in fit["criteria"]:
        table.add_row(item["rule"], f"{item['points']:g}", "; ".join(item["conditions"]))
    return table


def _prediction_table(prediction: dict[str, Any]) -> Table:
    title = (
        f"p_convert {prediction['p_convert']:.3f} ({escape(prediction['outcome'])}, "
        f"model {prediction['model_version']})"
    )
    table = Table(title=title, title_justify="left")
    for column in ("factor", "value", "effect (log-odds)"):
        table.add_column(column, justify="right" if column.startswith("effect") else "left")
    for factor in prediction["factors"]:
        table.add_row(
            escape(factor["feature"]), escape(str(factor["value"])), f"{factor['effect']:+.3f}"
        )
    return table


def _history_table(history: list[dict[str, Any]]) -> Table | str:
    if not history:
        return "stage history: none yet"
    table = Table(title="stage history", title_justify="left")
    for column in ("at", "from", "to", "actor", "reason", "model"):
        table.add_column(column)
    for item in history:
        table.add_row(
            item["at"][:19], item["from"], item["to"], item["actor"], escape(item["reason"]),
            item["model_version"] or "-",
        )  # fmt: skip
    return table


@score_app.command("show")
def show_model(ctx: typer.Context, json: JsonOption = False) -> None:
    """The live scoring model: its version, rules, grades and MQL policy."""
    with store(ctx) as leadflow:
        model = leadflow.model
        versions = leadflow.model_versions()
    history = [{"version": v, "first_used": at.isoformat()} for v, at in versions]
    if json:
        print_json({"version": model.version, **model.spec, "history": history})
        return
    out = stdout()
    out.print(f"model version [bold]{model.version}[/] ({len(history)} version(s) used so far)")
    table = Table(title="engagement rules", title_justify="left")
    for column in ("rule", "points", "half-life", "cap", "per day", "group"):
        table.add_column(column)
    for rule in model.spec["scoring"]["engagement"]["rules"]:
        table.add_row(
            rule["id"], f"{rule['points']:g}", str(rule["half_life"] or "none"),
            str(rule["cap"] or "-"), str(rule["daily_limit"] or "-"), rule["group"] or "-",
        )  # fmt: skip
    out.print(table)
    out.print(f"grades: {model.spec['scoring']['fit']['grades']}")
    out.print(f"MQL policy: {escape(model.policy.source)}")


@score_app.command("rebuild")
def rebuild(
    ctx: typer.Context,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the leads (PostgreSQL; SQLite takes one writer).",
        ),
    ] = 1,
    json: JsonOption = False,
) -> None:
    """Replay the event log with the live model: every lead's scores rebuilt, the policy
    applied, as incremental scoring would have reached with this model."""
    with store(ctx) as leadflow:
        total = leadflow.count_leads()
        columns = (
            TextColumn("rescoring leads"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
        )  # fmt: skip
        with Progress(*columns, console=stdout(wide=False), disable=json) as progress:
            task = progress.add_task("rescore", total=total, events=0)
            seen = RescoreReport()

            def advance(done: RescoreReport) -> None:
                seen.events += done.events
                progress.update(task, advance=done.leads, events=seen.events)

            report = leadflow.rescore(advance, processes=processes)
        version = leadflow.model.version
    result = {
        "model_version": version,
        "leads": report.leads,
        "events": report.events,
        "stage_changes": report.changes,
    }
    if json:
        print_json(result)
    else:
        stdout().print(
            f"rescored {report.leads:,} leads from {report.events:,} events with model "
            f"{version}; {report.changes:,} stage changes"
        )


def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Work until nothing is due, then exit.")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between polls.")] = 1.0,
) -> None:
    """Run due work: leads whose scores decayed or whose policy windows expired are looked at
    again, MQLs past their SLA are escalated, stage changes start journeys and sales
    webhooks, due journey steps run and their messages are sent. Ctrl-C stops it."""
    out = stdout()

    def say(report: WorkReport) -> None:
        out.print(report.summary())

    with store(ctx) as leadflow:
        if once:
            with httpx.Client(timeout=10.0, follow_redirects=False) as client:
                say(work_once(leadflow, messaging_for(leadflow, client), client))
            return
        out.print(f"worker running every {interval:g}s; Ctrl-C stops it")
        stop = threading.Event()
        try:
            run_forever(leadflow, interval, stop, say)
        except KeyboardInterrupt:
            stop.set()


def _print_change(change: StageChange, json: bool) -> None:
    if json:
        print_json(change.to_json())
    else:
        stdout().print(
            f"lead {change.lead_id}: {change.from_stage} -> {change.to_stage} ({change.reason})"
        )


ReasonOption = Annotated[str, typer.Option("--reason", help="A reason code from the model's list.")]
NoteOption = Annotated[str, typer.Option("--note", help="Free text kept with the change.")]
ActorOption = Annotated[str, typer.Option("--by", help="Who decides (a sales rep's name).")]


def accept(
    ctx: typer.Context, lead_id: LeadId, reason: ReasonOption,
    note: NoteOption = "", by: ActorOption = "user", json: JsonOption = False,
) -> None:  # fmt: skip
    """Sales accepts an MQL (MQL -> SAL) with a reason code."""
    with store(ctx) as leadflow:
        _print_change(leadflow.decide(lead_id, "accept", reason, f"user:{by}", note), json)


def reject(
    ctx: typer.Context, lead_id: LeadId, reason: ReasonOption,
    note: NoteOption = "", by: ActorOption = "user", json: JsonOption = False,
) -> None:  # fmt: skip
    """Sales rejects an MQL (MQL -> recycled) with a reason code; it returns to nurture and
    must earn its engagement again to requalify."""
    with store(ctx) as leadflow:
        _print_change(leadflow.decide(lead_id, "reject", reason, f"user:{by}", note), json)


def move(
    ctx: typer.Context, lead_id: LeadId,
    stage: Annotated[str, typer.Argument(metavar="STAGE")], reason: ReasonOption,
    note: NoteOption = "", by: ActorOption = "user", json: JsonOption = False,
) -> None:  # fmt: skip
    """Move a lead along the lifecycle (sal -> sql -> opportunity -> customer, or
    disqualified), as the transition table allows."""
    with store(ctx) as leadflow:
        _print_change(leadflow.move_stage(lead_id, stage.lower(), reason, f"user:{by}", note), json)
