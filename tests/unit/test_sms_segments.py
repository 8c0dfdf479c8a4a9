"""Segment counting (GSM-7 / UCS-2), part splitting and the recipient's quiet-hours window."""

from __future__ import annotations

from datetime import time

import pytest

from leadflow.domain.consent import SendWindow
from leadflow.domain.sms import (
    BUILTIN_REGION_WINDOWS,
    Encoding,
    ReportStatus,
    count_segments,
    http_report,
    kannel_report,
    recipient_region,
    split_parts,
    us_state_code,
    window_for,
    zone_name_of,
)


@pytest.mark.parametrize(
    ("text", "encoding", "parts", "remaining"),
    [
        ("Hello", Encoding.GSM7, 1, 155),
        ("a" * 160, Encoding.GSM7, 1, 0),
        ("a" * 161, Encoding.GSM7, 2, 145),
        ("a" * 306, Encoding.GSM7, 2, 0),
        ("a" * 307, Encoding.GSM7, 3, 152),
        ("é£¥ÄÖÑÜ§¿@", Encoding.GSM7, 1, 150),  # all in the basic table
        ("€" * 80, Encoding.GSM7, 1, 0),  # extension characters cost two septets
        ("€" * 81, Encoding.GSM7, 2, 153 - 5 * 2),  # 76 fill part 1 (152 septets)
        ("Hi 😀", Encoding.UCS2, 1, 65),  # the emoji takes two UTF-16 units
        ("😀" * 35, Encoding.UCS2, 1, 0),
        ("😀" * 36, Encoding.UCS2, 2, 67 - 6),  # 33 emoji fill 66 units, then 3 more
        ("a" * 69 + "ж", Encoding.UCS2, 1, 0),
        ("a" * 70 + "ж", Encoding.UCS2, 2, 63),
        ("It\u2019s here", Encoding.UCS2, 1, 61),  # a curly apostrophe is not GSM-7
        ("", Encoding.GSM7, 0, 160),
    ],
)
def test_count_segments(text: str, encoding: Encoding, parts: int, remaining: int) -> None:
    found = count_segments(text)
    assert (found.encoding, found.parts, found.remaining_in_part) == (encoding, parts, remaining)


def test_an_escape_pair_is_never_split_across_parts() -> None:
    text = "a" * 152 + "€" + "a" * 152  # 306 septets, but the € cannot sit at septet 153
    assert count_segments(text).parts == 3
    pieces = split_parts(text)
    assert [len(p) for p in pieces] == [152, 152, 1]
    assert pieces[1].startswith("€")
    assert "".join(pieces) == text


def test_a_surrogate_pair_is_never_split_across_parts() -> None:
    text = "a" * 66 + "😀" + "b" * 10
    pieces = split_parts(text)
    assert pieces == ["a" * 66, "😀" + "b" * 10]
    assert count_segments(text).unicode_chars == ("😀",)


def test_units_and_per_part_are_reported() -> None:
    found = count_segments("{" * 10)
    assert (found.units, found.per_part, found.characters) == (20, 160, 10)


@pytest.mark.parametrize(
    ("value", "code"),
    [("FL", "FL"), ("florida", "FL"), ("US-ct", "CT"), ("New  York", "NY"), ("Bavaria", None)],
)
def test_us_state_codes(value: str, code: str | None) -> None:
    assert us_state_code(value) == code


def test_recipient_region_prefers_traits_then_the_number() -> None:
    assert recipient_region({"state": "Oklahoma"}, "+14155550100") == "US-OK"
    assert recipient_region({}, "+13055551234") == "US-FL"  # Miami area code
    assert recipient_region({}, "+14155550100") == "US-CA"  # "San Francisco, CA"
    assert recipient_region({}, "+442079460000") == "GB"
    assert recipient_region({"country": "DE", "state": "FL"}, None) == "DE"
    assert recipient_region({}, None) is None


def test_zone_from_the_trait_else_the_number() -> None:
    assert zone_name_of({"timezone": "Europe/Paris"}, "+14155550100") == "Europe/Paris"
    assert zone_name_of({}, "+14155550100") == "America/Los_Angeles"
    assert zone_name_of({}, None) is None


def test_window_for_state_then_country_then_default() -> None:
    windows = dict(BUILTIN_REGION_WINDOWS)
    windows["GB"] = SendWindow(time(9), time(20))
    default = SendWindow(time(8), time(21))
    assert str(window_for("US-FL", windows, default)) == "08:00-20:00"
    assert str(window_for("US-CT", windows, default)) == "09:00-20:00"
    assert str(window_for("US-CA", windows, default)) == "08:00-21:00"
    assert str(window_for("GB", windows, default)) == "09:00-20:00"
    assert window_for(None, windows, default) == default


def test_report_statuses() -> None:
    assert [kannel_report(c) for c in (1, 2, 4, 8, 16)] == [
        ReportStatus.DELIVERED,
        ReportStatus.FAILED,
        ReportStatus.PENDING,
        ReportStatus.SENT,
        ReportStatus.FAILED,
    ]
    assert http_report("Undelivered") is ReportStatus.FAILED
    assert http_report("delivered") is ReportStatus.DELIVERED
    assert http_report("queued") is ReportStatus.PENDING
