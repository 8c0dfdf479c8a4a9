"""The last check before a send, local send windows and SMS keywords, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from leadflow.domain.consent import (
    Channel,
    ConsentStatus,
    Keyword,
    SendWindow,
    SkipReason,
    check_send,
    classify_keyword,
    zone_of,
)
from leadflow.domain.errors import ValidationError

MORNING_IN_NEW_YORK = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 EST
NEW_YORK = ZoneInfo("America/New_York")


def _check(**changes: object) -> object:
    args: dict[str, object] = {
        "channel": Channel.SMS, "address": "+14155550101", "consent": ConsentStatus.GRANTED,
        "suppressed": False, "require_consent": True,
        "window": SendWindow(time(8), time(21)), "zone": NEW_YORK, "now": MORNING_IN_NEW_YORK,
    }  # fmt: skip
    args.update(changes)
    return check_send(**args)  # type: ignore[arg-type]


def test_the_reasons_come_in_a_fixed_order() -> None:
    assert _check(address=None, suppressed=True).skip is SkipReason.NO_ADDRESS  # type: ignore[attr-defined]
    assert _check(suppressed=True, consent=ConsentStatus.REVOKED).skip is SkipReason.SUPPRESSED  # type: ignore[attr-defined]
    assert _check(consent=ConsentStatus.REVOKED).skip is SkipReason.CONSENT_REVOKED  # type: ignore[attr-defined]
    assert _check(consent=ConsentStatus.PENDING).skip is SkipReason.CONSENT_PENDING  # type: ignore[attr-defined]
    assert _check(consent=ConsentStatus.NONE).skip is SkipReason.NO_CONSENT  # type: ignore[attr-defined]
    assert _check(consent=ConsentStatus.NONE, require_consent=False).go  # type: ignore[attr-defined]


def test_outside_local_hours_a_message_waits_for_the_window() -> None:
    early = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)  # 06:00 in New York
    verdict = _check(now=early)
    assert verdict.skip is None  # type: ignore[attr-defined]
    assert verdict.wait_until == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    late = datetime(2026, 3, 3, 2, 30, tzinfo=UTC)  # 21:30 the day before in New York
    assert _check(now=late).wait_until == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)  # type: ignore[attr-defined]


def test_the_window_follows_daylight_saving_time() -> None:
    window = SendWindow(time(8), time(21))
    # 2026-03-08: New York moves to EDT (UTC-4); 08:00 local is 12:00 UTC, not 13:00
    night = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert window.next_open(night, NEW_YORK) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_windows_and_zones_are_parsed_with_clear_errors() -> None:
    assert str(SendWindow.parse("09:00-20:00")) == "09:00-20:00"
    with pytest.raises(ValidationError, match=r"sms\.quiet_hours: '9-20' is not a window"):
        SendWindow.parse("9-20", "sms.quiet_hours")
    with pytest.raises(ValidationError, match="ends before it starts"):
        SendWindow.parse("21:00-08:00")
    assert zone_of("Europe/Paris").key == "Europe/Paris"
    assert zone_of("Mars/Olympus").key == "UTC" and zone_of(None, "Asia/Tokyo").key == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", Keyword.OPT_OUT), (" stop ", Keyword.OPT_OUT), ("Unsubscribe.", Keyword.OPT_OUT),
        ("stopall", Keyword.OPT_OUT), ("QUIT", Keyword.OPT_OUT), ("optout", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN), ("unstop", Keyword.OPT_IN), ("Yes", Keyword.OPT_IN),
        ("help", Keyword.HELP), ("please stop texting me", Keyword.NONE),
        ("Stop by tomorrow?", Keyword.NONE), ("", Keyword.NONE),
    ],
)  # fmt: skip
def test_only_the_whole_message_is_a_keyword(text: str, keyword: Keyword) -> None:
    assert classify_keyword(text) is keyword
