"""Identity keys and the rules that decide which lead an event belongs to.

Keys: ``user_id``, ``anonymous_id``, ``email`` (normalised) and ``phone`` (E.164). User ids
and emails are *strong*: two leads whose strong keys disagree are never merged; the conflict
is reported instead. An anonymous lead (only anonymous ids) merges into the known lead that
claims it, and keeps its earlier events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import phonenumbers

KeyKind = Literal["user_id", "anonymous_id", "email", "phone"]
STRONG_KINDS: frozenset[str] = frozenset({"user_id", "email"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True, order=True)
class IdentityKey:
    kind: str
    value: str

    @property
    def text(self) -> str:
        """The stored form, unique across all kinds."""
        return f"{self.kind}:{self.value}"

    @classmethod
    def from_text(cls, text: str) -> IdentityKey:
        kind, _, value = text.partition(":")
        return cls(kind, value)


def normalize_email(value: object) -> str | None:
    """Lowercase and trim an email; None when it is not an email address."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        return None
    return email


def normalize_phone(value: object, default_region: str | None = None) -> str | None:
    """An E.164 number, or None when the value is not a valid phone number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    region = default_region.upper() if default_region else None
    try:
        parsed = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def previous_keys(previous_id: str | None) -> list[IdentityKey]:
    """An alias's previousId may name a user id or an anonymous id: look up both."""
    if not previous_id:
        return []
    return [IdentityKey("user_id", previous_id), IdentityKey("anonymous_id", previous_id)]


def keys_for(
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    email: object = None,
    phone: object = None,
    region: str | None = None,
) -> list[IdentityKey]:
    """The identity keys a message carries, strongest first."""
    keys: list[IdentityKey] = []
    if user_id:
        keys.append(IdentityKey("user_id", user_id))
    normalized = normalize_email(email)
    if normalized:
        keys.append(IdentityKey("email", normalized))
    if anonymous_id:
        keys.append(IdentityKey("anonymous_id", anonymous_id))
    number = normalize_phone(phone, region)
    if number:
        keys.append(IdentityKey("phone", number))
    return keys


@dataclass(frozen=True, slots=True)
class Merge:
    loser: int
    survivor: int
    cause: str


@dataclass(frozen=True, slots=True)
class IdentityConflict:
    lead_a: int
    lead_b: int
    key: IdentityKey
    reason: str


@dataclass(slots=True)
class Resolution:
    """What to do for one message: the lead it belongs to and the changes to make."""

    lead_id: int | None  # None: create a new lead
    attach: list[IdentityKey] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    conflicts: list[IdentityConflict] = field(default_factory=list)


def strong_conflict(
    a: Iterable[IdentityKey], b: Iterable[IdentityKey]
) -> tuple[IdentityKey, str] | None:
    """Return the key and reason when two sets of keys cannot be the same person."""
    keys_a = set(a)
    keys_b = set(b)
    for kind in ("email", "user_id"):
        own_a = {k for k in keys_a if k.kind == kind}
        own_b = {k for k in keys_b if k.kind == kind}
        if own_a and own_b and own_a.isdisjoint(own_b):
            key = min(own_b)
            return key, f"different {kind.replace('_', ' ')}s: {min(own_a).value} / {key.value}"
    return None


def resolve(
    keys: list[IdentityKey],
    owners: Mapping[IdentityKey, int],
    lead_keys: Mapping[int, frozenset[IdentityKey]],
    cause: str,
    lookup_only: Sequence[IdentityKey] = (),
) -> Resolution:
    """Decide the lead for a message carrying ``keys`` (strongest first).

    ``owners`` maps each known key to its lead; ``lead_keys`` holds every identity key of
    each lead named in ``owners``. The first key with an owner names the survivor; each other
    owning lead is merged into it when their strong keys agree, and reported as a conflict
    when they do not. Phone numbers never decide: a number already owned stays with its lead.
    Keys no lead owns are attached to the survivor; ``lookup_only`` keys (an alias's previous
    id) only find leads and are never attached.
    """
    searched = [*keys, *lookup_only]
    owning = [(key, owners[key]) for key in searched if key in owners and key.kind != "phone"]
    fresh = [key for key in keys if key not in owners]
    if not owning:
        return Resolution(lead_id=None, attach=fresh)
    first, survivor = owning[0]
    survivor_keys = set(lead_keys.get(survivor, frozenset()))
    fresh_strong = [key for key in fresh if key.kind in STRONG_KINDS]
    if first.kind not in STRONG_KINDS and strong_conflict(survivor_keys, fresh_strong):
        # A browser shared by two known people: the new person is a lead of their own.
        return Resolution(lead_id=None, attach=fresh)
    result = Resolution(lead_id=survivor)
    for key, lead in owning[1:]:
        if lead == survivor or any(m.loser == lead for m in result.merges):
            continue
        other = lead_keys.get(lead, frozenset())
        clash = strong_conflict(survivor_keys, other)
        if clash is None:
            result.merges.append(Merge(lead, survivor, f"{cause} via {key.text}"))
            survivor_keys |= other
        elif not any(c.lead_b == lead for c in result.conflicts):
            result.conflicts.append(IdentityConflict(survivor, lead, key, clash[1]))
    for key in fresh:
        if key.kind == "user_id" and any(k.kind == "user_id" for k in survivor_keys):
            result.conflicts.append(
                IdentityConflict(survivor, survivor, key, f"second user id {key.value}")
            )
            continue
        result.attach.append(key)
        survivor_keys.add(key)
    return result
