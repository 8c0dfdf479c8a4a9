"""Normalising Segment-spec messages: timestamps, clock skew, batch defaults, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from leadflow.domain.errors import ItemError
from leadflow.domain.events import (
    MAX_EVENT_BYTES,
    NormalizedEvent,
    corrected_timestamp,
    normalize,
    normalize_batch,
    parse_timestamp,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def accepted(message: object, **kwargs: object) -> NormalizedEvent:
    result = normalize(message, received_at=NOW, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, NormalizedEvent), result
    return result


def rejected(message: object, **kwargs: object) -> ItemError:
    result = normalize(message, received_at=NOW, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, ItemError), result
    return result


# timestamps ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:20:30.123Z", datetime(2024, 3, 1, 10, 20, 30, 123000, tzinfo=UTC)),
        ("2024-03-01T10:20:30.123456Z", datetime(2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)),
        # nanosecond fractions (Go, Java clients) are cut to microseconds, not rejected
        ("2024-03-01T10:20:30.123456789Z", datetime(2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)),
        ("2024-03-01T10:20:30.1234567+00:00", datetime(2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)),
        ("2024-03-01T12:20:30+02:00", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T05:20:30.5-05:00", datetime(2024, 3, 1, 10, 20, 30, 500000, tzinfo=UTC)),
        ("2024-03-01T10:20:30Z", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T10:20:30+0000", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        # naive means UTC
        ("2024-03-01T10:20:30", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("  2024-03-01T10:20:30Z  ", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_iso_forms_become_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_709_288_430, datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),  # epoch seconds
        (1_709_288_430.25, datetime(2024, 3, 1, 10, 20, 30, 250000, tzinfo=UTC)),
        (1_709_288_430_123, datetime(2024, 3, 1, 10, 20, 30, 123000, tzinfo=UTC)),  # millis
    ],
)
def test_parse_timestamp_epoch_numbers(value: float, expected: datetime) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "", True, [], {}, None])
def test_parse_timestamp_rejects_garbage_with_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(value)


@pytest.mark.parametrize("field", ["timestamp", "sentAt", "originalTimestamp"])
def test_garbage_time_is_an_item_error_naming_the_field(field: str) -> None:
    error = rejected({"type": "track", "event": "x", "userId": "u", field: "last tuesday"})
    assert error.field == field
    assert "last tuesday" in error.reason


@pytest.mark.parametrize(
    "value",
    [
        1e20,  # epoch far past datetime's range (JSON big numbers parse as floats)
        -1e20,
        18446744073709551615,  # the largest integer orjson parses as an int
        "0001-01-01T00:00:00+01:00",  # valid ISO, but before year 1 once in UTC
        "9999-12-31T23:59:59-05:00",  # after year 9999 once in UTC
    ],
)
def test_out_of_range_timestamps_are_item_errors_not_crashes(value: object) -> None:
    error = rejected({"type": "track", "event": "x", "userId": "u", "timestamp": value})
    assert error.field == "timestamp"


def test_absurd_clock_skew_is_an_item_error_not_a_crash() -> None:
    # sentAt - timestamp spans ~9998 years: the corrected time is out of range
    error = rejected(
        {
            "type": "track",
            "event": "x",
            "userId": "u",
            "timestamp": "0001-01-02T00:00:00Z",
            "sentAt": "9999-01-01T00:00:00Z",
        }
    )
    assert error.field in {"timestamp", "sentAt"}


# clock skew -------------------------------------------------------------------------------
def test_corrected_timestamp_keeps_the_interval_between_event_and_send() -> None:
    # the client's clock runs one hour fast; the event happened 30 s before the send
    sent_at = NOW + timedelta(hours=1)
    timestamp = sent_at - timedelta(seconds=30)
    assert corrected_timestamp(timestamp, sent_at, NOW) == NOW - timedelta(seconds=30)


def test_corrected_timestamp_without_sent_at_trusts_the_timestamp() -> None:
    timestamp = NOW - timedelta(days=3)
    assert corrected_timestamp(timestamp, None, NOW) == timestamp


def test_corrected_timestamp_without_timestamp_is_received_at() -> None:
    assert corrected_timestamp(None, NOW - timedelta(hours=2), NOW) == NOW


def test_normalize_applies_skew_correction_and_keeps_the_original() -> None:
    event = accepted(
        {
            "type": "track",
            "event": "Signed Up",
            "userId": "u1",
            "timestamp": "2024-05-01T14:59:50+02:00",  # client clock 1 h fast, in +02:00
            "sentAt": "2024-05-01T13:00:00.000Z",
        }
    )
    assert event.timestamp == NOW - timedelta(seconds=10)
    assert event.original_timestamp == datetime(2024, 5, 1, 12, 59, 50, tzinfo=UTC)
    assert event.sent_at == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    assert event.received_at == NOW


def test_original_timestamp_is_used_when_timestamp_is_missing() -> None:
    event = accepted(
        {"type": "page", "anonymousId": "a", "originalTimestamp": "2024-04-30T00:00:00Z"}
    )
    assert event.timestamp == datetime(2024, 4, 30, tzinfo=UTC)


def test_batch_sent_at_corrects_every_item() -> None:
    sent_at = (NOW + timedelta(minutes=5)).isoformat()
    good, bad = normalize_batch(
        [
            {"type": "track", "event": "a", "userId": "u", "timestamp": sent_at},
            {
                "type": "track",
                "event": "b",
                "userId": "u",
                "timestamp": (NOW + timedelta(minutes=4)).isoformat(),
            },
        ],
        received_at=NOW,
        defaults={"sentAt": sent_at},
    )
    assert bad == []
    assert [e.timestamp for e in good] == [NOW, NOW - timedelta(minutes=1)]


def test_item_sent_at_present_but_null_takes_the_batch_sent_at() -> None:
    # "keys may be present with null values": a null sentAt is an absent sentAt
    sent_at = NOW + timedelta(hours=1)
    event = accepted(
        {
            "type": "track",
            "event": "x",
            "userId": "u",
            "sentAt": None,
            "timestamp": (sent_at - timedelta(seconds=5)).isoformat(),
        },
        defaults={"sentAt": sent_at.isoformat()},
    )
    assert event.timestamp == NOW - timedelta(seconds=5)


# batch defaults ----------------------------------------------------------------------------
def test_batch_context_and_integrations_merge_into_items_and_the_item_wins() -> None:
    defaults = {
        "context": {"library": {"name": "batch-lib"}, "locale": "en-US", "ip": "1.2.3.4"},
        "integrations": {"All": True, "Mixpanel": False},
    }
    good, bad = normalize_batch(
        [
            {
                "type": "track",
                "event": "x",
                "userId": "u",
                "context": {"locale": "de-DE"},
                "integrations": {"Mixpanel": True},
            },
            {"type": "track", "event": "y", "userId": "u"},
        ],
        received_at=NOW,
        defaults=defaults,
    )
    assert bad == []
    first, second = good
    assert first.context == {"library": {"name": "batch-lib"}, "locale": "de-DE", "ip": "1.2.3.4"}
    assert first.raw["integrations"] == {"All": True, "Mixpanel": True}
    assert second.context == defaults["context"]
    assert second.raw["integrations"] == defaults["integrations"]


def test_null_batch_defaults_change_nothing() -> None:
    event = accepted(
        {"type": "track", "event": "x", "userId": "u", "context": {"ip": "1.1.1.1"}},
        defaults={"context": None, "integrations": None, "sentAt": None},
    )
    assert event.context == {"ip": "1.1.1.1"}
    assert event.sent_at is None


# required fields --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "track", "userId": "u"}, "event"),
        ({"type": "track", "userId": "u", "event": None}, "event"),
        ({"type": "track", "userId": "u", "event": ""}, "event"),
        ({"type": "track", "userId": "u", "event": "   "}, "event"),
        ({"type": "group", "userId": "u"}, "groupId"),
        ({"type": "alias", "userId": "u"}, "previousId"),
        ({"type": "alias", "previousId": "p", "anonymousId": "a"}, "previousId"),
        ({"type": "identify", "traits": {"email": "a@b.co"}}, "userId"),
        ({"type": "identify", "userId": None, "anonymousId": None}, "userId"),
        ({"type": "identify", "userId": "   ", "anonymousId": ""}, "userId"),
        ({"type": "identify", "userId": {"id": 1}}, "userId"),
        ({"type": "identify", "userId": True}, "userId"),
        ({"type": "identify", "userId": "x" * 600}, "userId"),
        ({"type": "identify", "userId": "u", "traits": ["email"]}, "traits"),
        ({"type": "track", "event": "x", "userId": "u", "properties": "p"}, "properties"),
        ({"type": "hover", "userId": "u"}, "type"),
        ({"type": 3, "userId": "u"}, "type"),
    ],
)
def test_missing_or_wrong_fields_are_named(message: dict[str, object], field: str) -> None:
    assert rejected(message).field == field


def test_type_is_required_inside_a_batch_but_comes_from_the_route_otherwise() -> None:
    assert rejected({"userId": "u"}).field == "type"
    assert accepted({"userId": "u"}, route_type="identify").type == "identify"


def test_short_type_names_and_case_are_accepted() -> None:
    assert accepted({"type": "i", "userId": "u"}).type == "identify"
    assert accepted({"type": "t", "userId": "u", "event": "e"}).type == "track"
    assert accepted({"type": "Page", "userId": "u"}).type == "page"


def test_valid_messages_of_every_type_keep_their_fields() -> None:
    track = accepted(
        {
            "type": "track",
            "event": " Demo Requested ",
            "userId": 42,
            "properties": {"plan": "pro"},
        }
    )
    assert (track.name, track.user_id, track.properties) == (
        "Demo Requested",
        "42",
        {"plan": "pro"},
    )
    page = accepted({"type": "page", "anonymousId": "a1", "name": "Pricing"})
    assert (page.name, page.anonymous_id, page.user_id) == ("Pricing", "a1", None)
    group = accepted({"type": "group", "userId": "u", "groupId": "acme", "traits": {"n": 1}})
    assert (group.group_id, group.traits) == ("acme", {"n": 1})
    alias = accepted({"type": "alias", "previousId": "anon-9", "userId": "u"})
    assert (alias.previous_id, alias.user_id) == ("anon-9", "u")


def test_identify_traits_fall_back_to_context_traits() -> None:
    event = accepted(
        {"type": "identify", "userId": "u", "context": {"traits": {"email": "c@d.io"}}}
    )
    assert event.traits == {"email": "c@d.io"}


def test_keys_present_with_null_values_are_treated_as_absent() -> None:
    event = accepted(
        {
            "type": "track",
            "event": "x",
            "userId": "u",
            "anonymousId": None,
            "properties": None,
            "traits": None,
            "context": None,
            "timestamp": None,
            "messageId": None,
        }
    )
    assert event.anonymous_id is None
    assert (event.properties, event.traits, event.context) == ({}, {}, {})
    assert event.timestamp == NOW


# size limit -------------------------------------------------------------------------------
def _sized(size: int) -> dict[str, object]:
    base = {"type": "track", "event": "x", "userId": "u", "properties": {"pad": ""}}
    pad = size - len(orjson.dumps(base))
    base["properties"] = {"pad": "p" * pad}
    assert len(orjson.dumps(base)) == size
    return base


def test_a_message_of_exactly_32_kb_is_accepted_and_one_byte_more_is_not() -> None:
    assert accepted(_sized(MAX_EVENT_BYTES)).properties["pad"]
    error = rejected(_sized(MAX_EVENT_BYTES + 1))
    assert error.field == "message"
    assert "32 KB" in error.reason


def test_not_an_object_is_an_item_error() -> None:
    error = rejected(["type", "track"])
    assert (error.field, error.reason) == ("message", "must be an object, got list")


# errors by index --------------------------------------------------------------------------
def test_batch_errors_carry_the_index_and_good_items_are_kept() -> None:
    good, bad = normalize_batch(
        [
            {"type": "track", "event": "a", "userId": "u"},
            {"type": "track", "userId": "u"},
            "nope",
            {"type": "page", "anonymousId": "x"},
            {"type": "group", "userId": "u"},
        ],
        received_at=NOW,
    )
    assert [e.type for e in good] == ["track", "page"]
    assert [(e.index, e.field) for e in bad] == [(1, "event"), (2, "message"), (4, "groupId")]
    assert str(bad[0]) == "item 1: event: is required for track"


# message ids ------------------------------------------------------------------------------
def test_message_id_is_kept_when_given() -> None:
    assert accepted({"type": "identify", "userId": "u", "messageId": " m-1 "}).message_id == "m-1"


def test_message_id_fallback_is_deterministic_and_content_based() -> None:
    message = {"type": "track", "event": "x", "userId": "u", "properties": {"a": 1, "b": 2}}
    reordered = {"properties": {"b": 2, "a": 1}, "userId": "u", "event": "x", "type": "track"}
    first = accepted(message).message_id
    assert first.startswith("lf-")
    assert accepted(dict(message)).message_id == first
    assert accepted(reordered).message_id == first
    later = normalize(message, received_at=NOW + timedelta(days=1))
    assert isinstance(later, NormalizedEvent)
    assert later.message_id == first  # the time of receipt plays no part
    assert accepted({**message, "event": "y"}).message_id != first


def test_numeric_ids_become_strings() -> None:
    event = accepted({"type": "identify", "userId": 1234, "anonymousId": 7.5})
    assert (event.user_id, event.anonymous_id) == ("1234", "7.5")


def test_a_value_json_cannot_carry_is_an_item_error_not_a_crash() -> None:
    from datetime import UTC, datetime

    from leadflow.domain.errors import ItemError
    from leadflow.domain.events import normalize

    result = normalize(
        {"type": "track", "event": "X", "userId": "u", "properties": {"tags": {1, 2}}},
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        index=3,
    )
    assert isinstance(result, ItemError)
    assert (result.index, result.field) == (3, "message")
    assert "JSON" in result.reason
