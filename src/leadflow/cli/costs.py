"""``leadflow costs``: what was spent per source, UTM campaign or journey (the ROI report).

Exit codes: 0 when done, 1 for a refused cost, an unknown id, or an import with invalid rows
(they are in the error file), 2 for usage errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from leadflow.cli.common import fail, group, print_json, stdout, store, warn
from leadflow.services.costs import Cost, CostImport, error_csv

app = group(
    "Costs per source, UTM campaign or journey, for the ROI report "
    "(`leadflow report roi`; docs/reports.md)."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _money(cost: Cost) -> str:
    return f"{cost.amount:,f} {cost.currency}"


def costs_table(found: list[Cost]) -> Table:
    table = Table("id", "dimension", "name", "from", "until", "amount", "note")
    for cost in found:
        table.add_row(
            str(cost.id), cost.dimension, cost.name, cost.period_start.isoformat(),
            cost.period_end.isoformat(), _money(cost), cost.note,
        )  # fmt: skip
    return table


@app.command("add")
def add(
    ctx: typer.Context,
    dimension: Annotated[str, typer.Argument(help="source, campaign or journey.")],
    name: Annotated[
        str, typer.Argument(help="The source's name, the UTM campaign or the journey.")
    ],
    amount: Annotated[
        str,
        typer.Option(
            "--amount", metavar="AMOUNT", help="What was spent, more than 0 (1200, 99.50)."
        ),
    ],
    start: Annotated[
        str,
        typer.Option(
            "--start",
            metavar="DATE|MONTH",
            help="First day of the period (2025-03-01), or a month (2025-03).",
        ),
    ],
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            metavar="DATE",
            help="The day after the period (exclusive). Left out when --start is a month: "
            "the period is that month.",
            show_default=False,
        ),
    ] = None,
    currency: Annotated[str, typer.Option("--currency", help="A 3-letter code.")] = "USD",
    note: Annotated[str, typer.Option("--note", help="A free note.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Record a cost: what was spent on a source, a UTM campaign or a journey over a period."""
    with store(ctx) as leadflow:
        cost = leadflow.add_cost(dimension, name, start, end, amount, currency, note)
    if as_json:
        print_json(cost.to_json())
        return
    stdout().print(
        f"cost {cost.id}: {_money(cost)} on {cost.dimension} '{cost.name}' from "
        f"{cost.period_start} until {cost.period_end} (exclusive)"
    )


@app.command("list")
def list_costs(
    ctx: typer.Context,
    dimension: Annotated[
        str | None,
        typer.Option("--dimension", help="source, campaign or journey (all when left out)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The costs, by dimension, name and period."""
    with store(ctx) as leadflow:
        found = leadflow.list_costs(dimension)
    if as_json:
        print_json([cost.to_json() for cost in found])
        return
    if not found:
        stdout().print("no costs yet: add one with 'leadflow costs add'")
        return
    stdout().print(costs_table(found))


@app.command("delete")
def delete(
    ctx: typer.Context,
    cost_id: Annotated[int, typer.Argument(metavar="ID", help="The id of the cost.")],
) -> None:
    """Delete a cost."""
    with store(ctx) as leadflow:
        leadflow.delete_cost(cost_id)
    stdout().print(f"deleted cost {cost_id}")


@app.command("import")
def import_costs(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="CSV with a header line.")],
    errors: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            metavar="PATH",
            help="Where to write the invalid rows (CSV: line, field, value, reason, raw). "
            "Default: FILE with the extension .errors.csv.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import costs from CSV: columns dimension, name, period_start, period_end, amount,
    currency (USD when empty) and note. Valid rows are kept; each invalid row is written to
    the error file with its line, field and value. A row equal to a stored cost (the note
    aside) is skipped, so importing the same file again adds nothing."""
    errors_path = errors or file.with_name(f"{file.stem}.errors.csv")
    if not errors_path.parent.is_dir():
        fail(f"cannot write the error file {errors_path}: its folder does not exist")
    with store(ctx) as leadflow:
        result = leadflow.import_costs(file)
    if result.errors:
        try:
            errors_path.write_text(error_csv(result.errors), encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write the error file {errors_path}: {exc.strerror or exc}")
    _summary(result, errors_path if result.errors else None, as_json)
    if result.errors:
        warn(
            f"{result.invalid} invalid row(s) were not imported; "
            f"see {errors_path} (line, field, value, reason)"
        )
        raise typer.Exit(1)


def _summary(result: CostImport, errors_path: Path | None, as_json: bool) -> None:
    if as_json:
        body = result.to_json()
        body["errors_file"] = str(errors_path) if errors_path else None
        print_json(body)
        return
    out = stdout()
    for label, value in (
        ("rows read", result.rows),
        ("imported", result.imported),
        ("duplicates", result.duplicates),
        ("invalid", result.invalid),
    ):
        out.print(f"{label:<15}{value}")
