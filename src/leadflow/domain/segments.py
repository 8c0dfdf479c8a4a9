"""Segments: a typed filter tree over leads, parsed from plain data, and its in-memory
interpreter (one lead at a time, at ingest). The SQL interpreter lives in adapters/db.

The tree has groups (``all``, ``any``, ``not``) and two kinds of leaves: a condition on a
field (a trait, an account trait, a score, the grade, the stage, a consent) and a behaviour
("did event X at least N times within D days"). Semantics, shared by both interpreters
(docs/segments.md): a missing value (absent key, JSON null, no account) satisfies only
``missing`` and the negative operators (``ne``, ``not_in``); a value of another type than the
one compared with never matches (a string "5" is not the number 5); every leaf is true or
false, never unknown, so ``not`` is plain negation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from leadflow.domain.errors import ValidationError
from leadflow.domain.lifecycle import STAGES

Scalar: TypeAlias = str | int | float | bool
Loc: TypeAlias = tuple[str | int, ...]

TRAIT_OPS = (
    "eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "missing",
    "gt", "gte", "lt", "lte",
)  # fmt: skip
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
CHOICE_OPS = ("eq", "ne", "in", "not_in")
ORDER_OPS = ("gt", "gte", "lt", "lte")
SCORES = ("fit", "engagement", "p_convert")
CHANNELS = ("email", "sms")
CONSENT_STATUSES = ("granted", "revoked", "pending", "none")
PREFIXES = ("trait", "account")
FIELDS_HELP = (
    "trait.NAME, account.NAME, fit, engagement, p_convert, grade, stage, consent.email, consent.sms"
)
MAX_DAYS = 3650
_KEY = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$ \-]{0,99}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,99}$")
# Dates and datetimes compare as text, which orders ISO-8601 values written the same way.
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


class SegmentError(ValidationError):
    """A segment definition that cannot be accepted, with the path of the bad node."""

    code = "invalid_segment"

    def __init__(self, loc: Loc, problem: str) -> None:
        self.loc = loc
        self.problem = problem
        super().__init__(f"{where(loc)}: {problem}")


def where(loc: Loc) -> str:
    """``segments.hot.all[1].op`` from ``("segments", "hot", "all", 1, "op")``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "segment"


# --- the tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``: ``kind`` is trait, account, score, grade, stage or consent; ``key``
    the trait name, score name or channel."""

    kind: str
    key: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None = None

    @property
    def field(self) -> str:
        if self.kind in ("trait", "account", "consent"):
            return f"{self.kind}.{self.key}"
        return self.key


@dataclass(frozen=True, slots=True)
class Did:
    """The lead did ``event`` at least ``min_count`` times within ``within_days`` days (ever
    when None), counting only events whose properties equal ``where``."""

    event: str
    min_count: int = 1
    within_days: int | None = None
    where: tuple[tuple[str, Scalar], ...] = ()


Node: TypeAlias = All | AnyOf | Not | Condition | Did


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    tree: Node
    description: str = ""


def walk(node: Node) -> list[Node]:
    """Every node of the tree, the root first."""
    found: list[Node] = [node]
    if isinstance(node, All | AnyOf):
        for child in node.children:
            found.extend(walk(child))
    elif isinstance(node, Not):
        found.extend(walk(node.child))
    return found


def behaviours(node: Node) -> list[Did]:
    return [n for n in walk(node) if isinstance(n, Did)]


def uses(node: Node, kind: str) -> bool:
    return any(isinstance(n, Condition) and n.kind == kind for n in walk(node))


# --- parsing ----------------------------------------------------------------------------


def check_name(name: object, loc: Loc = ("name",)) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SegmentError(
            loc, f"{name!r} is not a segment name (letters, digits, '_' and '-', up to 100)"
        )
    return name


def parse_tree(data: object, loc: Loc = ()) -> Node:
    """The tree of plain data (from YAML or JSON); SegmentError naming the bad node."""
    if not isinstance(data, Mapping):
        raise SegmentError(loc, f"expected a mapping (all, any, not, field or event), got {data!r}")
    groups = [key for key in ("all", "any", "not") if key in data]
    if groups:
        key = groups[0]
        _only(data, {key}, loc)
        if key == "not":
            return Not(parse_tree(data["not"], (*loc, "not")))
        items = data[key]
        if not isinstance(items, list):
            raise SegmentError((*loc, key), f"expected a list of conditions, got {items!r}")
        children = tuple(parse_tree(item, (*loc, key, i)) for i, item in enumerate(items))
        return All(children) if key == "all" else AnyOf(children)
    if "event" in data:
        return _parse_did(data, loc)
    if "field" in data:
        return _parse_condition(data, loc)
    raise SegmentError(
        loc, f"expected one of the keys all, any, not, field, event; got {sorted(map(str, data))}"
    )


def _only(data: Mapping[Any, Any], allowed: set[str], loc: Loc) -> None:
    extra = sorted(str(key) for key in data if key not in allowed)
    if extra:
        raise SegmentError(
            (*loc, extra[0]), f"unknown key; known here: {', '.join(sorted(allowed))}"
        )


def _parse_did(data: Mapping[Any, Any], loc: Loc) -> Did:
    _only(data, {"event", "min_count", "within_days", "where"}, loc)
    event = data["event"]
    if not isinstance(event, str) or not event.strip():
        raise SegmentError((*loc, "event"), f"expected an event name, got {event!r}")
    count = data.get("min_count", 1)
    if not _is_int(count) or not 1 <= count <= 1_000_000:
        raise SegmentError((*loc, "min_count"), f"expected a whole number >= 1, got {count!r}")
    days = data.get("within_days")
    if days is not None and (not _is_int(days) or not 1 <= days <= MAX_DAYS):
        raise SegmentError(
            (*loc, "within_days"), f"expected a whole number of days, 1 to {MAX_DAYS}, got {days!r}"
        )
    found = data.get("where") or {}
    if not isinstance(found, Mapping):
        raise SegmentError((*loc, "where"), f"expected a mapping property: value, got {found!r}")
    props: list[tuple[str, Scalar]] = []
    for key, value in found.items():
        spot = (*loc, "where", str(key))
        props.append((_trait_key(key, spot), _scalar(value, spot)))
    return Did(event, count, days, tuple(sorted(props)))


def _parse_condition(data: Mapping[Any, Any], loc: Loc) -> Condition:
    _only(data, {"field", "op", "value"}, loc)
    kind, key = _field(data["field"], (*loc, "field"))
    op = data.get("op")
    known = _ops_of(kind)
    if op not in known:
        raise SegmentError((*loc, "op"), f"unknown operator {op!r}; known: {', '.join(known)}")
    spot = (*loc, "value")
    value = _value(kind, key, str(op), data.get("value"), spot, "value" in data)
    return Condition(kind, key, str(op), value)


def _field(name: object, loc: Loc) -> tuple[str, str]:
    if not isinstance(name, str):
        raise SegmentError(loc, f"expected a field name ({FIELDS_HELP}), got {name!r}")
    head, _, rest = name.partition(".")
    if head in PREFIXES and rest:
        return head, _trait_key(rest, loc)
    if head == "consent" and rest in CHANNELS:
        return "consent", rest
    if name in SCORES:
        return "score", name
    if name in ("grade", "stage"):
        return name, name
    raise SegmentError(loc, f"unknown field {name!r}; known: {FIELDS_HELP}")


def _trait_key(key: object, loc: Loc) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise SegmentError(
            loc, f"{key!r} is not a trait name (letters, digits, '_', '-', '$' and spaces)"
        )
    return key


def _ops_of(kind: str) -> tuple[str, ...]:
    if kind in PREFIXES:
        return TRAIT_OPS
    if kind == "score":
        return (*NUMBER_OPS, "exists", "missing")
    if kind == "grade":
        return (*CHOICE_OPS, "exists", "missing")
    return CHOICE_OPS


def _value(kind: str, key: str, op: str, value: object, loc: Loc, given: bool) -> Any:
    if op in ("exists", "missing"):
        if given and value is not None:
            raise SegmentError(loc, f"operator {op!r} takes no value, got {value!r}")
        return None
    if not given or value is None:
        raise SegmentError(loc, f"operator {op!r} needs a value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise SegmentError(loc, f"operator {op!r} needs a non-empty list, got {value!r}")
        return tuple(_one(kind, key, "eq", item, (*loc, i)) for i, item in enumerate(value))
    return _one(kind, key, op, value, loc)


def _one(kind: str, key: str, op: str, value: object, loc: Loc) -> Scalar:
    if kind == "score":
        if not _is_number(value):
            raise SegmentError(loc, f"score {key!r} compares with a number, got {value!r}")
        return value  # type: ignore[return-value]
    if kind in ("grade", "stage", "consent"):
        return _choice(kind, value, loc)
    if op in ("contains", "starts_with"):
        if not isinstance(value, str) or not value:
            raise SegmentError(loc, f"operator {op!r} needs a non-empty string, got {value!r}")
        return value
    if op in ORDER_OPS:
        if _is_number(value) or (isinstance(value, str) and ISO_DATE.match(value)):
            return value  # type: ignore[return-value]
        raise SegmentError(
            loc, f"operator {op!r} needs a number or an ISO date (2024-05-31), got {value!r}"
        )
    return _scalar(value, loc)


def _choice(kind: str, value: object, loc: Loc) -> str:
    if not isinstance(value, str):
        raise SegmentError(loc, f"{kind} compares with a string, got {value!r}")
    if kind == "grade":
        return value.strip().upper()
    known = STAGES if kind == "stage" else CONSENT_STATUSES
    if value.strip().lower() not in known:
        raise SegmentError(loc, f"unknown {kind} {value!r}; known: {', '.join(known)}")
    return value.strip().lower()


def _scalar(value: object, loc: Loc) -> Scalar:
    if isinstance(value, str | bool) or _is_number(value):
        return value  # type: ignore[return-value]
    raise SegmentError(loc, f"expected a string, number or true/false, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def parse_segment(name: object, data: object, description: object = "") -> Segment:
    """A named segment; errors name ``segments.NAME...``."""
    checked = check_name(name, ("segments", str(name)))
    if not isinstance(description, str):
        raise SegmentError(("segments", checked, "description"), "expected text")
    return Segment(checked, parse_tree(data, ("segments", checked)), description)


# --- back to plain data -----------------------------------------------------------------


def to_data(node: Node) -> dict[str, Any]:
    """The plain-data form that :func:`parse_tree` reads back to the same tree."""
    if isinstance(node, All):
        return {"all": [to_data(child) for child in node.children]}
    if isinstance(node, AnyOf):
        return {"any": [to_data(child) for child in node.children]}
    if isinstance(node, Not):
        return {"not": to_data(node.child)}
    if isinstance(node, Did):
        data: dict[str, Any] = {"event": node.event, "min_count": node.min_count}
        if node.within_days is not None:
            data["within_days"] = node.within_days
        if node.where:
            data["where"] = dict(node.where)
        return data
    found: dict[str, Any] = {"field": node.field, "op": node.op}
    if node.value is not None:
        found["value"] = list(node.value) if isinstance(node.value, tuple) else node.value
    return found


# --- the in-memory interpreter ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFact:
    name: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What a segment can ask about one lead. ``account`` is None without an account;
    ``consent`` maps a channel to its current status (absent: none); ``events`` need only
    hold the events the segments name, within their windows."""

    lead_id: int
    traits: Mapping[str, Any]
    account: Mapping[str, Any] | None
    fit: float
    engagement: float
    p_convert: float | None
    grade: str | None
    stage: str
    consent: Mapping[str, str] = field(default_factory=dict)
    events: Sequence[EventFact] = ()


def matches(node: Node, facts: LeadFacts, now: datetime) -> bool:
    """Whether the lead is in the segment the tree defines, at ``now``."""
    if isinstance(node, All):
        return all(matches(child, facts, now) for child in node.children)
    if isinstance(node, AnyOf):
        return any(matches(child, facts, now) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, facts, now)
    if isinstance(node, Did):
        return did(node, facts.events, now)
    return _condition(node, _actual(node, facts))


def did(node: Did, events: Sequence[EventFact], now: datetime) -> bool:
    since = now - timedelta(days=node.within_days) if node.within_days is not None else None
    count = 0
    for event in events:
        if event.name != node.event or event.timestamp > now:
            continue
        if since is not None and event.timestamp < since:
            continue
        if all(equal(event.properties.get(k), v) for k, v in node.where):
            count += 1
            if count >= node.min_count:
                return True
    return False


def _actual(node: Condition, facts: LeadFacts) -> Any:
    if node.kind == "trait":
        return facts.traits.get(node.key)
    if node.kind == "account":
        return facts.account.get(node.key) if facts.account is not None else None
    if node.kind == "score":
        return {"fit": facts.fit, "engagement": facts.engagement, "p_convert": facts.p_convert}[
            node.key
        ]
    if node.kind == "grade":
        return facts.grade
    if node.kind == "stage":
        return facts.stage
    return facts.consent.get(node.key) or "none"


def _condition(node: Condition, actual: Any) -> bool:
    op, value = node.op, node.value
    if op == "exists":
        return actual is not None
    if op == "missing":
        return actual is None
    if op == "ne":
        return not equal(actual, value)
    if op == "in":
        return any(equal(actual, item) for item in value)  # type: ignore[union-attr]
    if op == "not_in":
        return not any(equal(actual, item) for item in value)  # type: ignore[union-attr]
    if op == "eq":
        return equal(actual, value)
    if not isinstance(actual, str) and op in ("contains", "starts_with"):
        return False
    if op == "contains":
        return str(value) in actual
    if op == "starts_with":
        return bool(actual.startswith(str(value)))
    return _ordered(op, actual, value)


def equal(actual: Any, value: Any) -> bool:
    """Typed equality: strings with strings, numbers with numbers, booleans with booleans."""
    if isinstance(value, bool) or isinstance(actual, bool):
        return isinstance(value, bool) and isinstance(actual, bool) and actual == value
    if _is_number(value):
        return _is_number(actual) and float(actual) == float(value)
    return isinstance(actual, str) and actual == value


def _ordered(op: str, actual: Any, value: Any) -> bool:
    if _is_number(value):
        if not _is_number(actual):
            return False
        left, right = float(actual), float(value)
    else:
        if not (isinstance(actual, str) and ISO_DATE.match(actual)):
            return False
        left, right = actual, value  # type: ignore[assignment]
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    if op == "lt":
        return left < right
    return left <= right
