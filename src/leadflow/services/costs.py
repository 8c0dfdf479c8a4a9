"""Costs entered by the user: what was spent on a source, a campaign or a journey over a period.

Every rule that needs no database lives here: what a valid cost is (each problem names the
field and the value), how a month stands for a period, how a cost is counted pro rata in a
report's window, that a report adds up one currency, and how a CSV file of costs is read
(every bad row reported with its line, field and value). docs/reports.md, "Costs".
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from leadflow.domain.errors import ValidationError

DIMENSIONS = ("source", "campaign", "journey")
DEFAULT_CURRENCY = "USD"
MAX_NAME = 200
MAX_NOTE = 2000
MAX_AMOUNT = Decimal("99999999999999")  # 14 digits before the point (NUMERIC(18, 4))
PLACES = 4  # digits after the point an amount may have
CSV_COLUMNS = ("dimension", "name", "period_start", "period_end", "amount", "currency", "note")
REQUIRED_COLUMNS = ("dimension", "name", "period_start", "amount")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CostError(ValidationError):
    """One bad field of a cost: which field, the value given and why it is refused."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.value = "" if value is None else str(value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NewCost:
    """A checked cost, not stored yet."""

    dimension: str
    name: str
    period_start: date
    period_end: date
    amount: Decimal
    currency: str = DEFAULT_CURRENCY
    note: str = ""

    def same_as(self, other: NewCost | Cost) -> bool:
        """The same spend: dimension, name, period, amount and currency (the note aside)."""
        return (
            self.dimension == other.dimension
            and self.name == other.name
            and self.period_start == other.period_start
            and self.period_end == other.period_end
            and self.amount == other.amount
            and self.currency == other.currency
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """A stored cost."""

    id: int
    dimension: str
    name: str
    period_start: date
    period_end: date
    amount: Decimal
    currency: str
    note: str
    created_at: datetime

    def in_window(self, since: datetime | None, until: datetime | None) -> Decimal:
        """The part of the amount that falls in the window, pro rata by time.

        The period runs from ``period_start`` 00:00 UTC to ``period_end`` 00:00 UTC; the
        share is the overlap with [since, until) over the length of the period (by days for
        windows that start and end at midnight, to the second otherwise).
        """
        start = datetime(*self.period_start.timetuple()[:3], tzinfo=UTC)
        end = datetime(*self.period_end.timetuple()[:3], tzinfo=UTC)
        low = start if since is None else max(start, since)
        high = end if until is None else min(end, until)
        if high <= low:
            return Decimal(0)
        if (low, high) == (start, end):
            return self.amount
        overlap = Decimal(int((high - low).total_seconds()))
        return self.amount * overlap / Decimal(int((end - start).total_seconds()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dimension": self.dimension,
            "name": self.name,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "amount": float(self.amount),
            "currency": self.currency,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }


# --- checks ------------------------------------------------------------------------------
def check_dimension(value: object, field: str = "dimension") -> str:
    cleaned = str(value or "").strip().lower()
    if cleaned not in DIMENSIONS:
        raise CostError(field, value, f"{value!r} is not one of {', '.join(DIMENSIONS)}")
    return cleaned


def _month_start(text: str) -> date | None:
    found = _MONTH.match(text)
    if found is None:
        return None
    year, month = int(found.group(1)), int(found.group(2))
    if not 1 <= month <= 12:
        return None
    return date(year, month, 1)


def next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def parse_day(value: object, field: str) -> tuple[date, bool]:
    """A date (``2025-03-01``) or a month (``2025-03``, its first day); True for a month."""
    if isinstance(value, datetime):
        raise CostError(field, value, f"{value.isoformat()!r} is a time; give a date")
    if isinstance(value, date):
        return value, False
    text = str(value or "").strip()
    month = _month_start(text)
    if month is not None:
        return month, True
    try:
        return date.fromisoformat(text), False
    except ValueError:
        reason = "is required" if not text else f"{text!r} is not a date like 2025-03-01"
        raise CostError(field, value, reason + " or a month like 2025-03") from None


def check_period(start: object, end: object) -> tuple[date, date]:
    """Start inclusive, end exclusive. A month as the start with no end is that month; a
    month as a bound stands for its first day."""
    first, is_month = parse_day(start, "period_start")
    if end is None or (isinstance(end, str) and not end.strip()):
        if not is_month:
            raise CostError("period_end", end, "is required unless period_start is a month")
        return first, next_month(first)
    last, _ = parse_day(end, "period_end")
    if last <= first:
        raise CostError(
            "period_end", end, f"{last.isoformat()} is not after period_start ({first})"
        )
    return first, last


def check_amount(value: object) -> Decimal:
    if isinstance(value, bool):
        raise CostError("amount", value, f"{value!r} is not a number")
    try:
        amount = Decimal(str(value).strip().replace("_", "")) if value is not None else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        shown = "" if value is None else str(value).strip()
        reason = "is required" if not shown else f"{shown!r} is not a number"
        raise CostError("amount", value, reason)
    if amount <= 0:
        raise CostError("amount", value, f"{amount} is not positive: a cost is more than 0")
    if amount > MAX_AMOUNT:
        raise CostError("amount", value, f"{amount} is larger than {MAX_AMOUNT}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PLACES:
        raise CostError("amount", value, f"{amount} has more than {PLACES} decimal places")
    return amount


def check_currency(value: object) -> str:
    text = str(value if value is not None else "").strip().upper() or DEFAULT_CURRENCY
    if not _CURRENCY.match(text):
        raise CostError("currency", value, f"{value!r} is not a 3-letter code such as USD")
    return text


def check_cost(
    dimension: object,
    name: object,
    period_start: object,
    period_end: object,
    amount: object,
    currency: object = DEFAULT_CURRENCY,
    note: object = "",
) -> NewCost:
    """A cost checked field by field; the first problem raises :class:`CostError`."""
    checked_dimension = check_dimension(dimension)
    checked_name = str(name if name is not None else "").strip()
    if not checked_name:
        raise CostError("name", name, "is required")
    if len(checked_name) > MAX_NAME:
        raise CostError("name", name, f"is longer than {MAX_NAME} characters")
    start, end = check_period(period_start, period_end)
    money = check_amount(amount)
    code = check_currency(currency)
    text = str(note if note is not None else "").strip()
    if len(text) > MAX_NOTE:
        raise CostError("note", note, f"is longer than {MAX_NOTE} characters")
    return NewCost(checked_dimension, checked_name, start, end, money, code, text)


def one_currency(costs: Iterable[Cost], revenue_currency: str | None = None) -> str | None:
    """The one currency of a report's costs (and revenue); several are refused."""
    found = {cost.currency for cost in costs}
    if revenue_currency is not None:
        found.add(revenue_currency)
    if len(found) > 1:
        raise ValidationError(
            f"currency: this report would add up amounts in {', '.join(sorted(found))}; "
            "a report holds one currency: enter the costs in the currency of the revenue "
            "(or narrow the window)"
        )
    return next(iter(found), None)


# --- CSV ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CostRowError:
    """A rejected row of a costs file: its 1-based line, the field, the value and why."""

    line: int
    field: str
    value: str
    reason: str
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
            "raw": self.raw,
        }


@dataclass(slots=True)
class CostRows:
    """The rows of a costs file: the valid ones checked, the others as errors."""

    costs: list[tuple[int, NewCost]] = field(default_factory=list)
    errors: list[CostRowError] = field(default_factory=list)
    rows: int = 0


@dataclass(slots=True)
class CostImport:
    """What importing a costs file did."""

    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    errors: list[CostRowError] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return len(self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "errors": [e.to_json() for e in self.errors],
        }


def _header(names: Sequence[str]) -> list[str]:
    columns = [re.sub(r"[\s\-]+", "_", name.strip().lower()) for name in names]
    for number, column in enumerate(columns, start=1):
        if column not in CSV_COLUMNS:
            raise ValidationError(
                f"line 1: unknown column {names[number - 1]!r} (columns: {', '.join(CSV_COLUMNS)})"
            )
        if columns.index(column) != number - 1:
            raise ValidationError(f"line 1: column {column!r} appears twice")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValidationError(f"line 1: the header has no {', '.join(repr(m) for m in missing)}")
    return columns


def read_costs_csv(text: str) -> CostRows:
    """Costs from CSV text with a header (docs/reports.md, "Costs")."""
    found = CostRows()
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValidationError(f"line 1: the header is not valid CSV: {exc}") from None
    if header is None or not any(cell.strip() for cell in header):
        raise ValidationError("the file is empty: expected a header line naming the columns")
    columns = _header(header)
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader, None)
        except csv.Error as exc:
            found.rows += 1
            found.errors.append(CostRowError(line, "row", "", f"not valid CSV: {exc}", ""))
            line = reader.line_num + 1
            continue
        if values is None:
            break
        raw = "".join(lines[line - 1 : reader.line_num]).rstrip("\r\n")
        if any(v.strip() for v in values):
            found.rows += 1
            _row(found, columns, values, line, raw)
        line = reader.line_num + 1
    return found


def _row(found: CostRows, columns: list[str], values: list[str], line: int, raw: str) -> None:
    if len(values) != len(columns):
        reason = f"has {len(values)} values; the header has {len(columns)} columns"
        found.errors.append(CostRowError(line, "row", "", reason, raw))
        return
    cells = dict(zip(columns, values, strict=True))
    try:
        cost = check_cost(
            cells["dimension"],
            cells["name"],
            cells["period_start"],
            cells.get("period_end"),
            cells["amount"],
            cells.get("currency") or DEFAULT_CURRENCY,
            cells.get("note", ""),
        )
    except CostError as exc:
        found.errors.append(CostRowError(line, exc.field, exc.value, exc.reason, raw))
        return
    found.costs.append((line, cost))


def error_csv(errors: Sequence[CostRowError]) -> str:
    """The rejected rows as CSV text: line, field, value, reason, raw."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "field", "value", "reason", "raw"])
    for error in errors:
        writer.writerow([error.line, error.field, error.value, error.reason, error.raw])
    return out.getvalue()
