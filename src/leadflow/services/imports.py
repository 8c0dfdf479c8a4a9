"""File imports: rows of a CSV or JSON-lines file become Segment messages, bad rows errors.

The readers stream. They take a binary file object, read it line by line and yield
:class:`Chunk` objects of about a thousand rows: the messages of the valid rows with the
1-based line number and raw text of each, the errors of the rows that could not be read, and
how many bytes of the file have been read so far. Nothing here touches the store:
:func:`run_import` hands each chunk to an ``ingest`` callable (the facade's ``import_batch``)
and reports the rows it rejected by line.

Every message gets a deterministic ``messageId`` (a hash of the row's content) when the row
has none, so importing the same file twice stores nothing new.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from leadflow.domain.errors import ItemError, ValidationError
from leadflow.domain.events import parse_timestamp
from leadflow.domain.identity import normalize_email, normalize_phone
from leadflow.services.ingest import IngestResult

CHUNK_ROWS = 1000
MAX_RAW_CHARS = 4000
LEAD_COLUMNS = (
    "email",
    "user_id",
    "first_name",
    "last_name",
    "phone",
    "title",
    "company",
    "industry",
    "company_size",
    "country",
    "timezone",
    "created_at",
)
EVENT_FIELDS = frozenset(
    {
        "type",
        "event",
        "name",
        "category",
        "userId",
        "anonymousId",
        "groupId",
        "previousId",
        "messageId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
    }
)
EVENT_OBJECTS = frozenset({"properties", "traits", "context", "integrations"})
_NUMBER = re.compile(r"^-?(?:0|[1-9]\d{0,17})(?:\.\d+)?(?:[eE][+-]?\d{1,3})?$")
_INTEGER = re.compile(r"^-?(?:0|[1-9]\d{0,17})$")


class FileFormatError(ValidationError):
    """The file as a whole cannot be imported (no header, a required column missing...)."""

    code = "file_format"


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: its 1-based line in the file, the field, the reason and its text."""

    line: int
    field: str
    reason: str
    raw: str


@dataclass(slots=True)
class Chunk:
    """A slice of the file: valid rows as messages, invalid rows as errors."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    bytes_read: int = 0

    def item_errors(self, errors: Sequence[ItemError]) -> list[RowError]:
        """The ingestion's errors (by index into ``messages``) as errors by line."""
        return [
            RowError(self.lines[e.index], e.field, e.reason, self.raws[e.index]) for e in errors
        ]


@dataclass(slots=True)
class ImportSummary:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0
    leads_created: int = 0
    merges: int = 0
    conflicts: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def run_import(
    chunks: Iterable[Chunk],
    ingest: Callable[[list[dict[str, Any]]], IngestResult],
    on_errors: Callable[[list[RowError]], None],
    on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Ingest every chunk; report rejected rows by line; count what happened."""
    summary = ImportSummary()
    for chunk in chunks:
        errors = list(chunk.errors)
        if chunk.messages:
            result = ingest(chunk.messages)
            errors.extend(chunk.item_errors(result.errors))
            summary.imported += result.accepted
            summary.duplicates += result.duplicates
            summary.leads_created += result.leads_created
            summary.merges += result.merges
            summary.conflicts += result.conflicts
        summary.rows += chunk.rows
        summary.invalid += len(errors)
        if errors:
            on_errors(sorted(errors, key=lambda e: e.line))
        if on_progress is not None:
            on_progress(chunk.bytes_read)
    return summary


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class _Lines:
    """A binary stream as text lines, counting bytes and remembering the current row's text."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = iter(stream)
        self.bytes_read = 0
        self.line = 0
        self._pending: list[str] = []
        self._undecodable = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        data = next(self._stream)
        self.bytes_read += len(data)
        self.line += 1
        if self.line == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            self._undecodable = True
        self._pending.append(text)
        return text

    def take(self) -> tuple[int, str, bool]:
        """The first line number, text and undecodability of the lines read since last time."""
        first = self.line - len(self._pending) + 1
        raw = "".join(self._pending).rstrip("\r\n")
        undecodable = self._undecodable
        self._pending = []
        self._undecodable = False
        return first, raw[:MAX_RAW_CHARS], undecodable


_Convert = Callable[[list[str]], dict[str, Any]]


def _row_id(kind: str, content: object) -> str:
    digest = hashlib.sha256(orjson.dumps([kind, content], option=orjson.OPT_SORT_KEYS))
    return f"imp-{digest.hexdigest()[:32]}"


def _csv_chunks(
    lines: _Lines, reader: Iterator[list[str]], width: int, convert: _Convert, size: int
) -> Iterator[Chunk]:
    chunk = Chunk()
    while True:
        try:
            values: list[str] | None = next(reader)
            problem: _Invalid | None = None
        except StopIteration:
            break
        except csv.Error as exc:
            values, problem = None, _Invalid("row", f"not valid CSV: {exc}")
        line, raw, undecodable = lines.take()
        if values is not None and not any(v.strip() for v in values):
            continue  # a blank line
        chunk.rows += 1
        try:
            if problem is not None or values is None:
                raise problem or _Invalid("row", "not valid CSV")
            if undecodable:
                raise _Invalid("row", "not valid UTF-8 text")
            if len(values) != width:
                raise _Invalid("row", f"has {len(values)} values; the header has {width} columns")
            message = convert(values)
        except _Invalid as exc:
            chunk.errors.append(RowError(line, exc.field, exc.reason, raw))
        else:
            chunk.messages.append(message)
            chunk.lines.append(line)
            chunk.raws.append(raw)
        if chunk.rows >= size:
            chunk.bytes_read = lines.bytes_read
            yield chunk
            chunk = Chunk()
    chunk.bytes_read = lines.bytes_read
    if chunk.rows:
        yield chunk


def _header(lines: _Lines, reader: Iterator[list[str]]) -> list[str]:
    for row in reader:
        line, _raw, undecodable = lines.take()
        if undecodable:
            raise FileFormatError(f"line {line}: the header is not valid UTF-8 text")
        names = [name.strip() for name in row]
        if not any(names):
            continue
        for number, name in enumerate(names, start=1):
            if not name:
                raise FileFormatError(f"line {line}: column {number} of the header has no name")
            if names.index(name) != number - 1:
                raise FileFormatError(f"line {line}: column {name!r} appears twice")
        return names
    raise FileFormatError("the file is empty: expected a header line naming the columns")


def _csv(stream: Iterable[bytes]) -> tuple[_Lines, Iterator[list[str]], list[str]]:
    lines = _Lines(stream)
    reader = csv.reader(lines)
    try:
        header = _header(lines, reader)
    except csv.Error as exc:
        raise FileFormatError(f"line {lines.line}: the header is not valid CSV: {exc}") from None
    return lines, reader, header


# leads -----------------------------------------------------------------------------------
def lead_column(name: str) -> str:
    """A known column whatever its case and spacing ('First Name' -> first_name)."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return key if key in LEAD_COLUMNS else name.strip()


def read_leads_csv(
    stream: Iterable[bytes], *, phone_region: str | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[Chunk]:
    """Leads from a CSV file with a header: one identify per row, keyed by its email.

    Columns: ``email`` (required), ``user_id``, ``created_at`` (the timestamp) and traits;
    any column not listed in :data:`LEAD_COLUMNS` is kept as a trait of that name.
    """
    lines, reader, header = _csv(stream)
    columns = [lead_column(name) for name in header]
    for number, column in enumerate(columns):
        if columns.index(column) != number:
            first = header[columns.index(column)]
            raise FileFormatError(
                f"line {lines.line}: columns {first!r} and {header[number]!r} are both {column}"
            )
    if "email" not in columns:
        raise FileFormatError(
            f"line {lines.line}: the header has no 'email' column (columns: {', '.join(header)})"
        )

    def convert(values: list[str]) -> dict[str, Any]:
        return lead_message(columns, values, phone_region)

    return _csv_chunks(lines, reader, len(columns), convert, chunk_rows)


def lead_message(
    columns: Sequence[str], values: Sequence[str], phone_region: str | None = None
) -> dict[str, Any]:
    """The identify message of one lead row; _Invalid names the bad column."""
    cells = {column: value.strip() for column, value in zip(columns, values, strict=True)}
    traits: dict[str, Any] = {
        k: v for k, v in cells.items() if v and k not in ("user_id", "created_at")
    }
    if not traits.get("email"):
        raise _Invalid("email", "is required")
    email = normalize_email(traits["email"])
    if email is None:
        raise _Invalid("email", f"not an email address: {traits['email']!r}")
    traits["email"] = email
    if traits.get("phone"):
        country = traits.get("country", "")
        region = country if len(country) == 2 else phone_region
        number = normalize_phone(traits["phone"], region)
        if number is None:
            raise _Invalid("phone", f"not a valid phone number: {traits['phone']!r}")
        traits["phone"] = number
    size = traits.get("company_size")
    if size and _INTEGER.match(size):
        traits["company_size"] = int(size)
    message: dict[str, Any] = {"type": "identify", "traits": traits}
    if cells.get("user_id"):
        message["userId"] = cells["user_id"]
    if cells.get("created_at"):
        try:
            parse_timestamp(cells["created_at"])
        except ValueError as exc:
            raise _Invalid("created_at", str(exc)) from None
        message["timestamp"] = cells["created_at"]
    message["messageId"] = _row_id("lead", cells)
    return message


# events ----------------------------------------------------------------------------------
def read_events_jsonl(stream: Iterable[bytes], *, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Events from JSON lines: one Segment message (an object with a ``type``) per line."""
    lines = _Lines(stream)
    chunk = Chunk()
    first = True
    for _text in lines:
        line, raw, undecodable = lines.take()
        if not raw.strip():
            continue
        if first and not raw.lstrip().startswith("{"):
            raise FileFormatError(
                f"line {line} is not a JSON object: expected JSON lines (one message per line)"
            )
        first = False
        chunk.rows += 1
        try:
            if undecodable:
                raise _Invalid("line", "not valid UTF-8 text")
            message = event_message(raw)
        except _Invalid as exc:
            chunk.errors.append(RowError(line, exc.field, exc.reason, raw))
        else:
            chunk.messages.append(message)
            chunk.lines.append(line)
            chunk.raws.append(raw)
        if chunk.rows >= chunk_rows:
            chunk.bytes_read = lines.bytes_read
            yield chunk
            chunk = Chunk()
    chunk.bytes_read = lines.bytes_read
    if chunk.rows:
        yield chunk


def event_message(text: str) -> dict[str, Any]:
    """One JSON line as a message with a messageId; _Invalid when it is not one."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _Invalid("line", f"not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise _Invalid("line", f"must be a JSON object, got {type(message).__name__}")
    if message.get("type") in (None, ""):
        raise _Invalid("type", "is required")
    if message.get("messageId") in (None, ""):
        message["messageId"] = _row_id("event", message)
    return message


def event_column(name: str) -> tuple[str, ...]:
    """The path a CSV column names: ``userId`` -> (userId,), ``properties.plan`` -> ..."""
    path = tuple(name.split("."))
    if len(path) == 1:
        if name in EVENT_FIELDS:
            return path
        raise FileFormatError(
            f"unknown column {name!r}: use one of {', '.join(sorted(EVENT_FIELDS))} "
            f"or a dotted column under {', '.join(sorted(EVENT_OBJECTS))} "
            f"(like properties.{name})"
        )
    if path[0] not in EVENT_OBJECTS or not all(path):
        raise FileFormatError(
            f"column {name!r}: a dotted column must start with one of "
            f"{', '.join(sorted(EVENT_OBJECTS))} and have no empty part"
        )
    return path


def read_events_csv(stream: Iterable[bytes], *, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Events from CSV: columns type, event, userId... and dotted object columns."""
    lines, reader, header = _csv(stream)
    paths = [event_column(name) for name in header]
    for path in paths:
        for other in paths:
            if len(other) > len(path) and other[: len(path)] == path:
                raise FileFormatError(
                    f"column {'.'.join(path)!r} is a value and also holds {'.'.join(other)!r}"
                )
    if ("type",) not in paths:
        raise FileFormatError(f"the header has no 'type' column (columns: {', '.join(header)})")

    def convert(values: list[str]) -> dict[str, Any]:
        return csv_event_message(paths, values)

    return _csv_chunks(lines, reader, len(paths), convert, chunk_rows)


def csv_event_message(paths: Sequence[tuple[str, ...]], values: Sequence[str]) -> dict[str, Any]:
    """One CSV event row as a nested message; empty cells are left out."""
    message: dict[str, Any] = {}
    for path, value in zip(paths, values, strict=True):
        if value == "":
            continue
        target = message
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = number_or_text(value) if path[0] == "properties" else value
    if not message.get("type"):
        raise _Invalid("type", "is required")
    if not message.get("messageId"):
        message["messageId"] = _row_id(
            "event", dict(zip(map(".".join, paths), values, strict=True))
        )
    return message


def number_or_text(value: str) -> Any:
    """'42' -> 42, '9.5' -> 9.5; anything else (including '007') stays text."""
    text = value.strip()
    if not _NUMBER.match(text):
        return value
    if _INTEGER.match(text):
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else value
