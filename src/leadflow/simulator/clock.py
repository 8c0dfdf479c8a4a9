"""Time helpers: integer epoch milliseconds, local days in IANA zones, fast ISO-8601 text.

The simulator keeps every instant as an int of milliseconds since the Unix epoch (UTC); local
calendar arithmetic goes through cached zoneinfo offsets, and formatting caches the date part.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MS_SECOND = 1000
MS_MINUTE = 60 * MS_SECOND
MS_HOUR = 60 * MS_MINUTE
MS_DAY = 24 * MS_HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Aware datetime -> epoch milliseconds (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MS_SECOND + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds -> aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


class IsoFormatter:
    """Formats epoch milliseconds as "2026-08-01T09:30:00.123Z", caching the date part."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def format(self, ms: int) -> str:
        day, rest = divmod(ms, MS_DAY)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
            self._days[day] = prefix
        seconds, milli = divmod(rest, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


class LocalCalendar:
    """Local days counted from the window's first local date, in any IANA zone.

    Day `d` of zone `tz` is the local date `first_date + d`; `midnight(tz, d)` is its start in
    epoch ms (cached), `weekday(d)` its weekday (Monday = 0), the same in every zone.
    """

    def __init__(self, first_date: date) -> None:
        self.first_date = first_date
        self._base = to_ms(datetime.combine(first_date, datetime.min.time(), tzinfo=UTC))
        self._weekday0 = first_date.weekday()
        self._zones: dict[str, ZoneInfo] = {}
        self._midnights: dict[tuple[str, int], int] = {}

    def weekday(self, day: int) -> int:
        return (self._weekday0 + day) % 7

    def midnight(self, tz: str, day: int) -> int:
        key = (tz, day)
        found = self._midnights.get(key)
        if found is None:
            zone = self._zones.get(tz)
            if zone is None:
                zone = self._zones[tz] = ZoneInfo(tz)
            local = datetime.combine(self.first_date + timedelta(days=day), datetime.min.time())
            found = to_ms(local.replace(tzinfo=zone))
            self._midnights[key] = found
        return found

    def local_day(self, tz: str, ms: int) -> int:
        """The local day containing instant `ms`."""
        day = (ms - self._base) // MS_DAY
        while self.midnight(tz, day) > ms:
            day -= 1
        while self.midnight(tz, day + 1) <= ms:
            day += 1
        return day
