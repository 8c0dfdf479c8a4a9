"""How a lead's profile changes: a batch's touch, or a merge of two leads.

Traits merge shallowly (a key sent again replaces the old value, nested objects included);
the first touch is that of the earliest message ever seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Profile:
    traits: dict[str, Any]
    email: str | None
    phone: str | None
    account_id: int | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    first_touch: dict[str, Any]
    first_source_id: int | None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return a if b is None else b if a is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return a if b is None else b if a is None else max(a, b)


def touched(current: Profile, change: Profile) -> Profile:
    """``current`` after a batch brought ``change``: new traits win, identities fill in or
    replace, and the first touch moves when the batch saw an earlier message."""
    earlier = change.first_seen_at is not None and (
        current.first_seen_at is None or change.first_seen_at < current.first_seen_at
    )
    return Profile(
        traits={**current.traits, **change.traits},
        email=change.email or current.email,
        phone=change.phone or current.phone,
        account_id=change.account_id or current.account_id,
        first_seen_at=_earliest(current.first_seen_at, change.first_seen_at),
        last_seen_at=_latest(current.last_seen_at, change.last_seen_at),
        first_touch=change.first_touch if earlier else current.first_touch,
        first_source_id=change.first_source_id if earlier else current.first_source_id,
    )


def merged(survivor: Profile, loser: Profile) -> Profile:
    """The survivor of a merge: as if the survivor's profile arrived on top of the loser's.
    Its own traits and identities win, the loser fills gaps; times and first touch span both."""
    return touched(loser, survivor)
