"""Consent, suppression, quiet hours and SMS keywords: whether a message may go out, and when.

Every decision here is pure: the caller passes the lead's consent, the suppression verdict,
the recipient's time zone and the current time. The last check before a transport is the
same function the journey planner uses, so a consent withdrawn a second before a send still
stops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow.domain.errors import ValidationError


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    PENDING = "pending"  # double opt-in asked, not confirmed yet
    REVOKED = "revoked"
    NONE = "none"  # nothing recorded


def parse_channel(value: str) -> Channel:
    try:
        return Channel(value.strip().lower())
    except ValueError:
        known = ", ".join(c.value for c in Channel)
        raise ValidationError(f"channel: unknown channel {value!r}; known: {known}") from None


def parse_status(value: str) -> ConsentStatus:
    try:
        status = ConsentStatus(value.strip().lower())
    except ValueError:
        status = ConsentStatus.NONE
    if status is ConsentStatus.NONE:
        known = ", ".join(s.value for s in ConsentStatus if s is not ConsentStatus.NONE)
        raise ValidationError(f"status: unknown consent status {value!r}; known: {known}")
    return status


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One row of the consent ledger: who said what, when, how, with what proof."""

    lead_id: int
    channel: Channel
    status: ConsentStatus
    source: str
    at: datetime
    proof: dict[str, object]


# ------------------------------------------------------------------------------------------
# SMS keywords (CTIA / carrier practice): the whole trimmed message, any case.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    NONE = "none"  # an ordinary reply


def classify_keyword(text: str) -> Keyword:
    """What an inbound SMS asks for; only the whole trimmed message counts as a keyword."""
    word = " ".join(text.split()).upper().rstrip(".!")
    if word in OPT_OUT_KEYWORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return Keyword.OPT_IN
    if word in HELP_KEYWORDS:
        return Keyword.HELP
    return Keyword.NONE


# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local hours in which a channel may reach a recipient: [start, end)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str, where: str = "quiet_hours") -> SendWindow:
        """'08:00-21:00' -> the window; ValidationError naming ``where`` otherwise."""
        try:
            first, last = (part.strip() for part in text.split("-", 1))
            window = cls(time.fromisoformat(first), time.fromisoformat(last))
        except ValueError:
            raise ValidationError(f"{where}: {text!r} is not a window like '08:00-21:00'") from None
        if window.start >= window.end:
            raise ValidationError(f"{where}: {text!r} ends before it starts")
        return window

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: datetime) -> bool:
        return self.start <= local.time() < self.end

    def next_open(self, now: datetime, zone: ZoneInfo) -> datetime:
        """The first moment at or after ``now`` (aware) inside the window, in ``now``'s zone."""
        local = now.astimezone(zone)
        if self.contains(local):
            return now
        day = local.date() if local.time() < self.start else local.date() + timedelta(days=1)
        opening = datetime.combine(day, self.start, tzinfo=zone)
        return opening.astimezone(now.tzinfo)


# US federal rule for marketing texts and calls: 8:00 to 21:00 at the recipient's location.
DEFAULT_SMS_WINDOW = SendWindow(time(8), time(21))
DEFAULT_EMAIL_WINDOW = SendWindow(time(0), time(23, 59, 59))


def zone_of(name: object, fallback: str = "UTC") -> ZoneInfo:
    """The recipient's time zone from a trait; the fallback when absent or unknown."""
    if isinstance(name, str) and name.strip():
        try:
            return ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(fallback)


# ------------------------------------------------------------------------------------------
class SkipReason(StrEnum):
    NO_CONSENT = "no_consent"
    CONSENT_REVOKED = "consent_revoked"
    CONSENT_PENDING = "consent_pending"
    NO_ADDRESS = "no_address"
    SUPPRESSED = "suppressed"
    FREQUENCY_CAP = "frequency_cap"


@dataclass(frozen=True, slots=True)
class SendCheck:
    """The verdict of the last check before a send: go now, wait until ``at``, or skip."""

    skip: SkipReason | None = None
    wait_until: datetime | None = None
    detail: str = ""

    @property
    def go(self) -> bool:
        return self.skip is None and self.wait_until is None


def check_send(
    *,
    channel: Channel,
    address: str | None,
    consent: ConsentStatus,
    suppressed: bool,
    require_consent: bool,
    window: SendWindow,
    zone: ZoneInfo,
    now: datetime,
) -> SendCheck:
    """Whether a message may be handed to the transport now.

    Order matters for the recorded reason: an address, then the suppression list, then the
    consent ledger, then the recipient's local hours.
    """
    if not address:
        return SendCheck(SkipReason.NO_ADDRESS, detail=f"the lead has no {channel.value} address")
    if suppressed:
        return SendCheck(SkipReason.SUPPRESSED, detail=f"{address} is on the suppression list")
    if consent is ConsentStatus.REVOKED:
        return SendCheck(SkipReason.CONSENT_REVOKED, detail=f"{channel.value} consent revoked")
    if consent is ConsentStatus.PENDING:
        return SendCheck(SkipReason.CONSENT_PENDING, detail="double opt-in not confirmed")
    if require_consent and consent is not ConsentStatus.GRANTED:
        return SendCheck(SkipReason.NO_CONSENT, detail=f"no {channel.value} consent recorded")
    opening = window.next_open(now, zone)
    if opening != now:
        return SendCheck(wait_until=opening, detail=f"outside {window} in {zone.key}")
    return SendCheck()
