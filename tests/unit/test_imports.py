"""File imports without a database: rows become messages, bad rows become errors by line."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow.domain.errors import ItemError
from leadflow.domain.events import NormalizedEvent, normalize, normalize_batch
from leadflow.services.imports import (
    Chunk,
    FileFormatError,
    RowError,
    lead_column,
    number_or_text,
    read_events_csv,
    read_events_jsonl,
    read_leads_csv,
    run_import,
)
from leadflow.services.ingest import IngestResult

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def stream(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode("utf-8"))


def read_all(chunks: Iterator[Chunk]) -> tuple[list[dict[str, Any]], list[int], list[RowError]]:
    messages: list[dict[str, Any]] = []
    lines: list[int] = []
    errors: list[RowError] = []
    for chunk in chunks:
        messages.extend(chunk.messages)
        lines.extend(chunk.lines)
        errors.extend(chunk.errors)
    return messages, lines, errors


# leads -----------------------------------------------------------------------------------
LEADS = (
    "email,user_id,first_name,last_name,phone,company,company_size,country,created_at,plan\n"
    "Ada@Example.com,u-1,Ada,Lovelace,020 7946 0958,Analytical,12,GB,2024-01-05T10:00:00Z,pro\n"
    "bob@example.com,,Bob,,,,51-200,,,\n"
)


def test_lead_rows_become_identifies_keyed_by_email() -> None:
    messages, lines, errors = read_all(read_leads_csv(stream(LEADS), phone_region="US"))
    assert errors == []
    assert lines == [2, 3]
    ada, bob = messages
    assert ada["type"] == "identify"
    assert ada["userId"] == "u-1"
    assert ada["timestamp"] == "2024-01-05T10:00:00Z"
    assert ada["traits"] == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone": "+442079460958",  # national number read with the row's country
        "company": "Analytical",
        "company_size": 12,
        "country": "GB",
        "plan": "pro",  # a column leadflow does not know is kept as a trait
    }
    assert "userId" not in bob and "timestamp" not in bob
    assert bob["traits"] == {
        "email": "bob@example.com",
        "first_name": "Bob",
        "company_size": "51-200",
    }


def test_invalid_lead_rows_are_reported_by_line_and_valid_ones_kept() -> None:
    text = (
        "email,first_name,phone,created_at\n"
        "good@example.com,Good,,\n"
        "not-an-email,Bad,,\n"
        ",Nobody,,\n"
        "x@example.com,Too,,,many\n"
        "y@example.com,Few\n"
        "z@example.com,Phone,12,\n"
        "w@example.com,When,,yesterday\n"
        "last@example.com,Last,,\n"
    )
    messages, lines, errors = read_all(read_leads_csv(stream(text), phone_region="US"))
    assert [m["traits"]["email"] for m in messages] == ["good@example.com", "last@example.com"]
    assert lines == [2, 9]
    assert [(e.line, e.field) for e in errors] == [
        (3, "email"),
        (4, "email"),
        (5, "row"),
        (6, "row"),
        (7, "phone"),
        (8, "created_at"),
    ]
    by_line = {e.line: e for e in errors}
    assert by_line[3].reason == "not an email address: 'not-an-email'"
    assert by_line[4].reason == "is required"
    assert by_line[5].reason == "has 5 values; the header has 4 columns"
    assert by_line[5].raw == "x@example.com,Too,,,many"
    assert "yesterday" in by_line[8].reason


def test_known_columns_match_whatever_their_case_and_spacing() -> None:
    assert lead_column("First Name") == "first_name"
    assert lead_column(" EMAIL ") == "email"
    assert lead_column("company-size") == "company_size"
    assert lead_column("Favourite Colour") == "Favourite Colour"
    messages, _, _ = read_all(read_leads_csv(stream("Email,First Name\nA@B.io,Al\n")))
    assert messages[0]["traits"] == {"email": "a@b.io", "first_name": "Al"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("first_name,last_name\nAda,L\n", "no 'email' column"),
        ("email,name,name\n", "column 'name' appears twice"),
        ("email,,name\n", "column 2 of the header has no name"),
        ("Email,email\n", "columns 'Email' and 'email' are both email"),
    ],
)
def test_a_file_that_is_not_a_leads_csv_is_refused_as_a_whole(text: str, expected: str) -> None:
    with pytest.raises(FileFormatError) as caught:
        list(read_leads_csv(stream(text)))
    assert expected in caught.value.message


def test_message_ids_are_deterministic_and_follow_the_row_content() -> None:
    first, _, _ = read_all(read_leads_csv(stream(LEADS)))
    again, _, _ = read_all(read_leads_csv(stream(LEADS)))
    assert [m["messageId"] for m in first] == [m["messageId"] for m in again]
    assert first[0]["messageId"] != first[1]["messageId"]
    # the same row at another line is the same message; a changed row is a new one
    header, ada, bob = LEADS.splitlines()
    moved, _, _ = read_all(read_leads_csv(stream(f"{header}\n{bob}\n{ada}\n")))
    assert moved[1]["messageId"] == first[0]["messageId"]
    changed, _, _ = read_all(read_leads_csv(stream(f"{header}\n{ada.replace('pro', 'max')}\n")))
    assert changed[0]["messageId"] != first[0]["messageId"]


def test_line_numbers_count_quoted_newlines_blank_lines_bom_and_crlf() -> None:
    text = '\ufeffemail,note\r\na@example.com,"two\r\nlines"\r\n\r\nbad,x\r\nc@example.com,ok\r\n'
    messages, lines, errors = read_all(read_leads_csv(stream(text)))
    assert lines == [2, 6]
    assert messages[0]["traits"]["note"] == "two\r\nlines"
    assert [(e.line, e.raw) for e in errors] == [(5, "bad,x")]


def test_a_line_that_is_not_utf8_is_an_invalid_row() -> None:
    data = b"email,name\na@example.com,Al\nb@example.com,\xff\xfe\nc@example.com,Cy\n"
    messages, lines, errors = read_all(read_leads_csv(io.BytesIO(data)))
    assert lines == [2, 4]
    assert [m["traits"]["name"] for m in messages] == ["Al", "Cy"]
    assert [(e.line, e.field, e.reason) for e in errors] == [(3, "row", "not valid UTF-8 text")]


class CountingLines:
    """A file of many lead rows that records how far it has been read."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b"email\n"
        for n in range(self.rows):
            self.read += 1
            yield f"lead{n}@example.com\n".encode()


def test_reading_streams_in_chunks_of_about_a_thousand_rows() -> None:
    source = CountingLines(2500)
    chunks = read_leads_csv(source)
    first = next(chunks)
    assert len(first.messages) == 1000
    assert source.read <= 1001  # the rest of the file is not read yet
    rest = list(chunks)
    assert [len(c.messages) for c in rest] == [1000, 500]
    sizes = [first.bytes_read, *(c.bytes_read for c in rest)]
    assert sizes == sorted(sizes)
    total = len(b"email\n") + sum(len(f"lead{n}@example.com\n") for n in range(2500))
    assert sizes[-1] == total
    assert rest[-1].lines[-1] == 2501


# events ----------------------------------------------------------------------------------
JSONL = (
    '{"type":"track","event":"Signed Up","userId":"u1","messageId":"m-1"}\n'
    '{"type":"track","userId":"u2"}\n'
    "{not json\n"
    "\n"
    '["a list"]\n'
    '{"event":"No Type","userId":"u3"}\n'
    '{"type":"page","anonymousId":"a1","name":"Pricing"}\n'
)


def test_json_lines_are_messages_and_broken_lines_errors_by_line() -> None:
    messages, lines, errors = read_all(read_events_jsonl(stream(JSONL)))
    assert lines == [1, 2, 7]
    assert messages[0]["messageId"] == "m-1"  # a messageId of the file is kept
    assert messages[2]["messageId"].startswith("imp-")
    assert [(e.line, e.field) for e in errors] == [(3, "line"), (5, "line"), (6, "type")]
    assert errors[0].reason.startswith("not valid JSON")
    assert errors[0].raw == "{not json"
    assert errors[1].reason == "must be a JSON object, got list"
    # the track without an event passes the reader: the ingestion names it
    assert "event" not in messages[1]


def test_a_file_that_does_not_start_with_a_json_object_is_refused() -> None:
    with pytest.raises(FileFormatError) as caught:
        list(read_events_jsonl(stream("type,event\ntrack,x\n")))
    assert "line 1 is not a JSON object" in caught.value.message


EVENTS_CSV = (
    "type,event,userId,timestamp,properties.plan,properties.seats,properties.code,"
    "properties.ratio,traits.email,traits.zip,context.campaign.name,context.campaign.source\n"
    "track,Trial Started,u9,2024-03-01T00:00:00Z,pro,12,007,0.5,zed@example.com,02139,"
    "spring,google\n"
    "identify,,,,,,,,only@example.com,,,\n"
    ",Orphan,u1,,,,,,,,,\n"
)


def test_dotted_csv_columns_build_nested_objects_with_numbers_in_properties() -> None:
    messages, lines, errors = read_all(read_events_csv(stream(EVENTS_CSV)))
    assert lines == [2, 3]
    trial, identify = messages
    assert trial["properties"] == {"plan": "pro", "seats": 12, "code": "007", "ratio": 0.5}
    assert trial["traits"] == {"email": "zed@example.com", "zip": "02139"}  # traits stay text
    assert trial["context"] == {"campaign": {"name": "spring", "source": "google"}}
    assert trial["userId"] == "u9" and trial["timestamp"] == "2024-03-01T00:00:00Z"
    assert identify == {
        "type": "identify",
        "traits": {"email": "only@example.com"},
        "messageId": identify["messageId"],
    }
    assert [(e.line, e.field, e.reason) for e in errors] == [(4, "type", "is required")]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("type,plan\n", "unknown column 'plan'"),
        ("type,props.plan\n", "a dotted column must start with one of"),
        ("type,properties.\n", "no empty part"),
        ("type,properties.a,properties.a.b\n", "is a value and also holds"),
        ("event,userId\n", "no 'type' column"),
    ],
)
def test_event_csv_headers_are_checked_before_any_row(header: str, expected: str) -> None:
    with pytest.raises(FileFormatError) as caught:
        list(read_events_csv(stream(header + "track,x,y\n")))
    assert expected in caught.value.message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-3", -3),
        ("9.5", 9.5),
        ("1e3", 1000.0),
        ("0", 0),
        ("007", "007"),
        ("12abc", "12abc"),
        ("1e999", "1e999"),
        ("", ""),
        ("1234567890123456789012345", "1234567890123456789012345"),
    ],
)
def test_numeric_looking_values_become_numbers(text: str, value: object) -> None:
    assert number_or_text(text) == value
    assert type(number_or_text(text)) is type(value)


# the ingestion seen by an import ---------------------------------------------------------
def test_normalize_accepts_an_email_only_message_when_ids_are_not_required() -> None:
    message = {"type": "identify", "traits": {"email": "ada@example.com"}}
    refused = normalize(message, received_at=NOW)
    assert isinstance(refused, ItemError) and refused.field == "userId"
    accepted = normalize(message, received_at=NOW, require_id=False)
    assert isinstance(accepted, NormalizedEvent)
    assert accepted.user_id is None and accepted.anonymous_id is None
    no_email = normalize(
        {"type": "identify", "traits": {"email": "nope"}}, received_at=NOW, require_id=False
    )
    assert isinstance(no_email, ItemError)
    assert no_email.reason == "userId, anonymousId or a valid traits.email is required"


def fake_ingest(calls: list[int]) -> Any:
    """What the facade's import_batch does to a chunk, without the store."""

    def ingest(messages: list[dict[str, Any]]) -> IngestResult:
        calls.append(len(messages))
        good, bad = normalize_batch(list(messages), received_at=NOW, require_id=False)
        return IngestResult(accepted=len(good), errors=bad, leads_created=len(good))

    return ingest


def test_run_import_reports_ingestion_errors_by_line_and_counts_everything() -> None:
    calls: list[int] = []
    reported: list[RowError] = []
    progress: list[int] = []
    summary = run_import(
        read_events_jsonl(stream(JSONL), chunk_rows=2),
        fake_ingest(calls),
        reported.extend,
        progress.append,
    )
    assert calls == [2, 1]  # one call per chunk that has valid rows
    assert summary.rows == 6
    assert summary.imported == 2
    assert summary.invalid == 4
    assert summary.leads_created == 2
    assert [(e.line, e.field) for e in reported] == [
        (2, "event"),
        (3, "line"),
        (5, "line"),
        (6, "type"),
    ]
    assert reported[0].reason == "is required for track"
    assert reported[0].raw == '{"type":"track","userId":"u2"}'
    assert progress[-1] == len(JSONL.encode())
    assert progress == sorted(progress)
