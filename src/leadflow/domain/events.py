"""The event model (Segment tracking spec) and its normalisation.

A raw message from a tracking client becomes a :class:`NormalizedEvent`, or an
:class:`~leadflow.domain.errors.ItemError` naming what is wrong with it. Everything here is
pure: the time of receipt comes in as an argument.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from leadflow.domain.errors import ItemError, NotFound, ValidationError
from leadflow.domain.identity import normalize_email

EVENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
SHORT_TYPES = {
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
MAX_EVENT_BYTES = 32 * 1024
SINGLE_ROUTES = {
    **{name: name for name in ("identify", "track", "page", "screen", "group", "alias")},
    **SHORT_TYPES,
}
BATCH_ROUTES = ("batch", "import", "b")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_ID_MAX = 512


@dataclass(slots=True)
class NormalizedEvent:
    """One accepted message, with its identity keys and corrected time."""

    message_id: str
    type: str
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    group_id: str | None
    previous_id: str | None
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    raw: dict[str, Any]


def parse_timestamp(value: object) -> datetime:
    """Parse an ISO-8601 timestamp (milli- or microseconds, any offset) to aware UTC.

    Raises ValueError with the offending value.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp out of range: {value!r}") from None
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value!r}") from None


def corrected_timestamp(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew correction: receivedAt - (sentAt - timestamp).

    The client's clock may be wrong, but the time between the event and the send is right.
    """
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return received_at - (sent_at - timestamp)


def _as_id(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid(key, f"must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > _ID_MAX:
        raise _Invalid(key, f"longer than {_ID_MAX} characters")
    return text or None


def _as_dict(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(key, f"must be an object, got {type(value).__name__}")
    return value


def _as_time(message: dict[str, Any], key: str) -> datetime | None:
    value = message.get(key)
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise _Invalid(key, str(exc)) from None


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _message_id(message: dict[str, Any]) -> str:
    found = _as_id(message, "messageId")
    if found is not None:
        return found
    digest = hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"lf-{digest[:32]}"


def _event_type(message: dict[str, Any], route_type: str | None) -> str:
    value = message.get("type")
    if value is None or value == "":
        if route_type is None:
            raise _Invalid("type", "is required inside a batch")
        return route_type
    if not isinstance(value, str):
        raise _Invalid("type", f"must be a string, got {type(value).__name__}")
    kind = SHORT_TYPES.get(value, value).lower()
    if kind not in EVENT_TYPES:
        raise _Invalid("type", f"unknown type {value!r}")
    return kind


def _name(message: dict[str, Any], kind: str) -> str | None:
    key = "event" if kind == "track" else "name"
    value = message.get(key)
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if kind == "track":
            raise _Invalid("event", "is required for track")
        return None
    if not isinstance(value, str):
        raise _Invalid(key, f"must be a string, got {type(value).__name__}")
    return value


def _merged(message: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Batch-level context and integrations merge into each item (the item wins)."""
    if not defaults:
        return message
    merged = dict(message)
    for key in ("context", "integrations"):
        base = defaults.get(key)
        if isinstance(base, dict) and base:
            own = message.get(key)
            merged[key] = {**base, **own} if isinstance(own, dict) else dict(base)
    if merged.get("sentAt") in (None, "") and defaults.get("sentAt") is not None:
        merged["sentAt"] = defaults["sentAt"]
    return merged


def normalize(
    message: object,
    *,
    received_at: datetime,
    route_type: str | None = None,
    defaults: dict[str, Any] | None = None,
    index: int = 0,
    require_id: bool = True,
) -> NormalizedEvent | ItemError:
    """Validate and normalise one message; return the event or an error naming the field.

    With ``require_id=False`` (file imports) a message with neither userId nor anonymousId
    is accepted when ``traits.email`` is an email address: a lead known only by email.
    """
    if not isinstance(message, dict):
        return ItemError(index, "message", f"must be an object, got {type(message).__name__}")
    message = _merged(message, defaults or {})
    try:
        size = len(orjson.dumps(message))
    except TypeError as exc:
        return ItemError(index, "message", f"not representable as JSON: {exc}")
    if size > MAX_EVENT_BYTES:
        return ItemError(index, "message", f"larger than {MAX_EVENT_BYTES // 1024} KB")
    try:
        return _build(message, received_at, route_type, require_id)
    except _Invalid as exc:
        return ItemError(index, exc.field, exc.reason)


def _has_email(message: dict[str, Any], kind: str) -> bool:
    """Whether the message's traits carry a valid email (the identity of an import)."""
    traits = message.get("traits")
    if not traits and kind == "identify" and isinstance(message.get("context"), dict):
        traits = message["context"].get("traits")
    return isinstance(traits, dict) and normalize_email(traits.get("email")) is not None


def _build(
    message: dict[str, Any], received_at: datetime, route_type: str | None, require_id: bool
) -> NormalizedEvent:
    kind = _event_type(message, route_type)
    user_id = _as_id(message, "userId")
    anonymous_id = _as_id(message, "anonymousId")
    previous_id = _as_id(message, "previousId")
    group_id = _as_id(message, "groupId")
    if user_id is None and anonymous_id is None:
        if require_id:
            raise _Invalid("userId", "userId or anonymousId is required")
        if not _has_email(message, kind):
            raise _Invalid("userId", "userId, anonymousId or a valid traits.email is required")
    if kind == "alias" and (previous_id is None or user_id is None):
        raise _Invalid("previousId", "alias needs previousId and userId")
    if kind == "group" and group_id is None:
        raise _Invalid("groupId", "is required for group")
    original = _as_time(message, "timestamp") or _as_time(message, "originalTimestamp")
    sent_at = _as_time(message, "sentAt")
    try:
        timestamp = corrected_timestamp(original, sent_at, received_at)
    except OverflowError:
        raise _Invalid("sentAt", "too far from timestamp to correct the clock skew") from None
    traits = _as_dict(message, "traits")
    context = _as_dict(message, "context")
    if not traits and kind == "identify":
        traits = _as_dict(context, "traits")
    return NormalizedEvent(
        message_id=_message_id(message),
        type=kind,
        name=_name(message, kind),
        user_id=user_id,
        anonymous_id=anonymous_id,
        group_id=group_id,
        previous_id=previous_id,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
        received_at=received_at,
        properties=_as_dict(message, "properties"),
        traits=traits,
        context=context,
        raw=message,
    )


def normalize_batch(
    messages: list[object],
    *,
    received_at: datetime,
    route_type: str | None = None,
    defaults: dict[str, Any] | None = None,
    require_id: bool = True,
) -> tuple[list[NormalizedEvent], list[ItemError]]:
    """Normalise every message; return the good ones and the errors by index."""
    good: list[NormalizedEvent] = []
    bad: list[ItemError] = []
    for index, message in enumerate(messages):
        result = normalize(
            message,
            received_at=received_at,
            route_type=route_type,
            defaults=defaults,
            index=index,
            require_id=require_id,
        )
        if isinstance(result, ItemError):
            bad.append(result)
        else:
            good.append(result)
    return good, bad


@dataclass(frozen=True, slots=True)
class Request:
    """The messages of one tracking request, with what the route adds to each."""

    messages: list[Any]
    route_type: str | None  # the type a single-message route gives, None for a batch
    defaults: dict[str, Any]  # the batch's context, integrations and sentAt


def split_request(route: str, payload: Any) -> Request:
    """The messages of a parsed request body sent to ``/v1/<route>``."""
    if route not in SINGLE_ROUTES and route not in BATCH_ROUTES:
        raise NotFound(f"no tracking route /v1/{route}")
    if not isinstance(payload, dict):
        raise ValidationError("body must be a JSON object")
    if route in SINGLE_ROUTES:
        return Request([payload], SINGLE_ROUTES[route], {})
    batch = payload.get("batch")
    if not isinstance(batch, list):
        raise ValidationError("batch: must be a list of messages")
    defaults = {k: payload.get(k) for k in ("context", "integrations", "sentAt")}
    return Request(batch, None, defaults)
