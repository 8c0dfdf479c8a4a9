"""``leadflow import``: leads and events from files, streamed in chunks.

Exit codes: 0 when every row was imported (or already was), 1 when some rows were invalid
(they are in the error file) or the file cannot be read, 2 for usage errors.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, BinaryIO

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from leadflow.cli.common import fail, group, print_json, stderr, stdout, store, warn
from leadflow.services import imports
from leadflow.services.imports import Chunk, FileFormatError, ImportSummary, RowError

app = group("Import leads (CSV) and events (JSON lines or CSV) from files.")

DEFAULT_SOURCE = "import"
ERROR_COLUMNS = ("line", "field", "reason", "raw")


class EventFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


SourceOption = Annotated[
    str, typer.Option("--source", help="Source the rows are recorded under (created if needed).")
]
ErrorsOption = Annotated[
    Path | None,
    typer.Option(
        "--errors",
        metavar="PATH",
        help="Where to write the invalid rows (CSV: line, field, reason, raw). "
        "Default: FILE with the extension .errors.csv.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]


class ErrorFile:
    """The CSV of invalid rows, created on the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    def write(self, errors: list[RowError]) -> None:
        if self._writer is None:
            try:
                self._file = self.path.open("w", encoding="utf-8", newline="")
            except OSError as exc:
                fail(f"cannot write the error file {self.path}: {exc.strerror or exc}")
            self._writer = csv.DictWriter(self._file, fieldnames=ERROR_COLUMNS)
            self._writer.writeheader()
        for error in errors:
            self._writer.writerow(
                {"line": error.line, "field": error.field, "reason": error.reason, "raw": error.raw}
            )
        self.count += len(errors)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def default_errors_path(file: Path) -> Path:
    return file.with_name(f"{file.stem}.errors.csv")


@contextmanager
def progress_by_bytes(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (terminals only), advanced to the bytes read so far."""
    console = stderr()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(label, total=total or None)

        def update(done: int) -> None:
            bar.update(task, completed=done)

        yield update


@contextmanager
def open_input(file: Path) -> Iterator[BinaryIO]:
    if not file.exists():
        fail(f"{file}: no such file")
    if not file.is_file():
        fail(f"{file}: not a file")
    try:
        stream = file.open("rb")
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror or exc}")
    with stream:
        yield stream


Reader = Callable[[BinaryIO, str | None], Iterable[Chunk]]


def run_file_import(
    ctx: typer.Context,
    file: Path,
    reader: Reader,
    source_name: str,
    errors_path: Path | None,
    as_json: bool,
) -> None:
    error_file = ErrorFile(errors_path or default_errors_path(file))
    if not error_file.path.parent.is_dir():
        fail(f"cannot write the error file {error_file.path}: its folder does not exist")
    with open_input(file) as stream, store(ctx) as leadflow:
        try:
            chunks = reader(stream, leadflow.settings.default_phone_region)
            source = leadflow.ensure_source(source_name)
            with progress_by_bytes(file.stat().st_size, f"importing {file.name}") as update:
                summary = imports.run_import(
                    chunks,
                    lambda messages: leadflow.import_batch(source, messages),
                    error_file.write,
                    update,
                )
        except FileFormatError as exc:
            fail(f"{file}: {exc.message}")
        except OSError as exc:
            fail(f"{file}: cannot read: {exc.strerror or exc}")
        finally:
            error_file.close()
    report(summary, error_file, as_json)
    if summary.invalid:
        warn(
            f"{summary.invalid} invalid row(s) were not imported; "
            f"see {error_file.path} (line, field, reason)"
        )
        raise typer.Exit(1)


def report(summary: ImportSummary, error_file: ErrorFile, as_json: bool) -> None:
    if as_json:
        body: dict[str, object] = dict(summary.to_json())
        body["errors_file"] = str(error_file.path) if error_file.count else None
        print_json(body)
        return
    out = stdout()
    for label, value in (
        ("rows read", summary.rows),
        ("imported", summary.imported),
        ("duplicates", summary.duplicates),
        ("invalid", summary.invalid),
        ("leads created", summary.leads_created),
        ("merges", summary.merges),
        ("conflicts", summary.conflicts),
    ):
        out.print(f"{label:<15}{value}")


@app.command("leads")
def import_leads(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="CSV with a header line.")],
    source: SourceOption = DEFAULT_SOURCE,
    errors: ErrorsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import leads from CSV: one identify per row, keyed by its email.

    Columns: email (required), user_id, first_name, last_name, phone, title, company,
    industry, company_size, country, timezone, created_at (the timestamp); any other
    column is kept as a trait. Importing the same file again adds nothing.
    """

    def reader(stream: BinaryIO, region: str | None) -> Iterable[Chunk]:
        return imports.read_leads_csv(stream, phone_region=region)

    run_file_import(ctx, file, reader, source, errors, as_json)


@app.command("events")
def import_events(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON lines or CSV.")],
    source: SourceOption = DEFAULT_SOURCE,
    file_format: Annotated[
        EventFormat | None,
        typer.Option(
            "--format",
            help="csv or jsonl. Default: from the extension (.csv; .jsonl, .ndjson, .json).",
            show_default=False,
        ),
    ] = None,
    errors: ErrorsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import events: Segment messages, one per JSON line or one per CSV row.

    CSV columns: type (required), event, userId, anonymousId, messageId, timestamp... and
    dotted columns such as properties.plan, traits.email or context.campaign.name that build
    nested objects; numeric-looking properties become numbers. A row without messageId gets
    one from its content, so importing the same file again adds nothing.
    """
    chosen = file_format or guess_format(file)

    def reader(stream: BinaryIO, _region: str | None) -> Iterable[Chunk]:
        if chosen is EventFormat.csv:
            return imports.read_events_csv(stream)
        return imports.read_events_jsonl(stream)

    run_file_import(ctx, file, reader, source, errors, as_json)


def guess_format(file: Path) -> EventFormat:
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return EventFormat.csv
    if suffix in (".jsonl", ".ndjson", ".json"):
        return EventFormat.jsonl
    raise typer.BadParameter(
        f"cannot tell the format of {file.name!r} from its extension; "
        "use --format csv or --format jsonl",
        param_hint="'--format'",
    )
