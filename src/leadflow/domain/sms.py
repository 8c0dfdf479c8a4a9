"""Text messages: GSM 03.38 encoding, segment counting and the recipient's send window.

A text that uses only the GSM 7-bit alphabet travels in septets: 160 in a single part, 153 in
each part of a concatenated message (the user data header takes the rest). Characters of the
extension table are sent as an escape and the character, two septets, and a part never splits
that pair. One character outside the alphabet turns the whole text into UCS-2: 70 UTF-16 code
units in a single part, 67 per concatenated part (an emoji takes two units, never split).

The send window of a recipient (quiet hours) depends on where they are: a window per country
or US state, found from the lead's traits or, failing those, from the phone number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from enum import StrEnum

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

from leadflow.domain.consent import DEFAULT_SMS_WINDOW, SendWindow

# The GSM 03.38 default alphabet (basic table, without the escape code itself).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs two septets (escape + character).
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsCount:
    """How a text travels: its encoding, parts, units (septets or UTF-16 code units), the
    units a part holds, what is left in the last part, and the characters that forced UCS-2."""

    encoding: Encoding
    parts: int
    units: int
    per_part: int
    remaining_in_part: int
    characters: int = 0
    unicode_chars: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "encoding": self.encoding.value,
            "parts": self.parts,
            "units": self.units,
            "per_part": self.per_part,
            "remaining_in_part": self.remaining_in_part,
            "characters": self.characters,
            "unicode_chars": list(self.unicode_chars),
        }


def is_gsm7(text: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def _costs(text: str, gsm: bool) -> list[int]:
    """Units per character: septets (1 or 2) in GSM-7, UTF-16 code units in UCS-2."""
    if gsm:
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(costs: list[int], capacity: int) -> list[int]:
    """Fill parts greedily without splitting a character; the units in each part."""
    parts = [0]
    for cost in costs:
        if parts[-1] + cost > capacity:
            parts.append(0)
        parts[-1] += cost
    return parts


def count_segments(text: str) -> SmsCount:
    """The encoding and number of parts of ``text`` as a handset and a gateway count them."""
    gsm = is_gsm7(text)
    costs = _costs(text, gsm)
    units = sum(costs)
    single, multi = (GSM_SINGLE, GSM_MULTI) if gsm else (UCS2_SINGLE, UCS2_MULTI)
    foreign = (
        ()
        if gsm
        else tuple(
            dict.fromkeys(ch for ch in text if ch not in GSM_BASIC and ch not in GSM_EXTENSION)
        )
    )
    encoding = Encoding.GSM7 if gsm else Encoding.UCS2
    if units <= single:
        parts = 1 if units else 0
        return SmsCount(encoding, parts, units, single, single - units, len(text), foreign)
    packed = _pack(costs, multi)
    return SmsCount(encoding, len(packed), units, multi, multi - packed[-1], len(text), foreign)


def split_parts(text: str) -> list[str]:
    """The text cut where the parts end (for display; the gateway does the real split)."""
    count = count_segments(text)
    if count.parts <= 1:
        return [text]
    capacity = count.per_part
    pieces: list[str] = [""]
    used = 0
    for ch, cost in zip(text, _costs(text, count.encoding is Encoding.GSM7), strict=True):
        if used + cost > capacity:
            pieces.append("")
            used = 0
        pieces[-1] += ch
        used += cost
    return pieces


# ------------------------------------------------------------------------------------------
# Where a recipient is, for quiet hours.
US_STATES = {
    "ALABAMA": "AL",
    "ALASKA": "AK",
    "ARIZONA": "AZ",
    "ARKANSAS": "AR",
    "CALIFORNIA": "CA",
    "COLORADO": "CO",
    "CONNECTICUT": "CT",
    "DELAWARE": "DE",
    "DISTRICT OF COLUMBIA": "DC",
    "FLORIDA": "FL",
    "GEORGIA": "GA",
    "HAWAII": "HI",
    "IDAHO": "ID",
    "ILLINOIS": "IL",
    "INDIANA": "IN",
    "IOWA": "IA",
    "KANSAS": "KS",
    "KENTUCKY": "KY",
    "LOUISIANA": "LA",
    "MAINE": "ME",
    "MARYLAND": "MD",
    "MASSACHUSETTS": "MA",
    "MICHIGAN": "MI",
    "MINNESOTA": "MN",
    "MISSISSIPPI": "MS",
    "MISSOURI": "MO",
    "MONTANA": "MT",
    "NEBRASKA": "NE",
    "NEVADA": "NV",
    "NEW HAMPSHIRE": "NH",
    "NEW JERSEY": "NJ",
    "NEW MEXICO": "NM",
    "NEW YORK": "NY",
    "NORTH CAROLINA": "NC",
    "NORTH DAKOTA": "ND",
    "OHIO": "OH",
    "OKLAHOMA": "OK",
    "OREGON": "OR",
    "PENNSYLVANIA": "PA",
    "RHODE ISLAND": "RI",
    "SOUTH CAROLINA": "SC",
    "SOUTH DAKOTA": "SD",
    "TENNESSEE": "TN",
    "TEXAS": "TX",
    "UTAH": "UT",
    "VERMONT": "VT",
    "VIRGINIA": "VA",
    "WASHINGTON": "WA",
    "WEST VIRGINIA": "WV",
    "WISCONSIN": "WI",
    "WYOMING": "WY",
    "PUERTO RICO": "PR",
}
_US_CODES = frozenset(US_STATES.values())

# States whose telemarketing laws allow a narrower window than the federal 8:00-21:00
# (Florida, Oklahoma, Maryland, Washington: until 20:00; Connecticut: 9:00-20:00). Used
# unless ``sms.builtin_regions`` is false; ``sms.regions`` overrides or adds entries.
BUILTIN_REGION_WINDOWS = {
    "US-FL": SendWindow(time(8), time(20)),
    "US-OK": SendWindow(time(8), time(20)),
    "US-MD": SendWindow(time(8), time(20)),
    "US-WA": SendWindow(time(8), time(20)),
    "US-CT": SendWindow(time(9), time(20)),
}


def us_state_code(value: object) -> str | None:
    """'FL', 'Florida', 'US-FL' or 'florida' -> 'FL'; None for anything else."""
    if not isinstance(value, str):
        return None
    word = " ".join(value.replace("-", " ").split()).upper()
    word = word.removeprefix("US ").strip()
    if word in _US_CODES:
        return word
    return US_STATES.get(word)


def _parsed(phone: str | None) -> phonenumbers.PhoneNumber | None:
    if not phone:
        return None
    try:
        return phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None


def _state_of_number(number: phonenumbers.PhoneNumber) -> str | None:
    """The US state of a number's area code, as the phonenumbers geocoder names it."""
    where = str(geocoder.description_for_number(number, "en"))
    if ", " in where:
        return us_state_code(where.rsplit(", ", 1)[1])
    return us_state_code(where)


def recipient_region(traits: Mapping[str, object], phone: str | None) -> str | None:
    """'US-FL', 'US' or 'GB'...: the ``state``/``region`` trait (US states), the ``country``
    trait, else what the phone number says (its country, the US state of its area code)."""
    number = _parsed(phone)
    country = phonenumbers.region_code_for_number(number) if number is not None else None
    given_country = traits.get("country")
    if isinstance(given_country, str) and len(given_country.strip()) == 2:
        country = given_country.strip().upper()
    for trait in ("state", "region"):
        code = us_state_code(traits.get(trait))
        if code is not None and country in (None, "US"):
            return f"US-{code}"
    if country == "US" and number is not None:
        code = _state_of_number(number)
        return f"US-{code}" if code else "US"
    return str(country) if country else None


def zone_name_of(traits: Mapping[str, object], phone: str | None) -> str | None:
    """The recipient's IANA zone: the ``timezone`` trait, else the number's only zone."""
    given = traits.get("timezone")
    if isinstance(given, str) and given.strip():
        return given.strip()
    number = _parsed(phone)
    if number is None:
        return None
    zones = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    return str(zones[0]) if len(set(zones)) == 1 else None


def window_for(
    region: str | None,
    regions: Mapping[str, SendWindow],
    default: SendWindow = DEFAULT_SMS_WINDOW,
) -> SendWindow:
    """The window of the region ('US-FL'), else of its country ('US'), else ``default``."""
    if region:
        if region in regions:
            return regions[region]
        country = region.split("-", 1)[0]
        if country in regions:
            return regions[country]
    return default


# ------------------------------------------------------------------------------------------
class ReportStatus(StrEnum):
    """What a delivery report says about a text."""

    SENT = "sent"  # accepted by the SMS centre
    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"  # buffered, still trying: nothing to record


# Kannel's %d: 1 delivered, 2 failed, 4 buffered, 8 at the SMSC, 16 rejected by the SMSC.
_KANNEL = {
    1: ReportStatus.DELIVERED,
    2: ReportStatus.FAILED,
    4: ReportStatus.PENDING,
    8: ReportStatus.SENT,
    16: ReportStatus.FAILED,
}
# Twilio-style MessageStatus values.
_HTTP = {
    "accepted": ReportStatus.PENDING,
    "queued": ReportStatus.PENDING,
    "scheduled": ReportStatus.PENDING,
    "sending": ReportStatus.PENDING,
    "sent": ReportStatus.SENT,
    "delivered": ReportStatus.DELIVERED,
    "undelivered": ReportStatus.FAILED,
    "failed": ReportStatus.FAILED,
    "canceled": ReportStatus.FAILED,
    "read": ReportStatus.DELIVERED,
}


def kannel_report(code: int) -> ReportStatus:
    return _KANNEL.get(code, ReportStatus.PENDING)


def http_report(status: str) -> ReportStatus:
    return _HTTP.get(status.strip().lower(), ReportStatus.PENDING)
