"""Assigning MQLs to sales reps: territory first, then round robin, within each rep's capacity.

A lead's regions come from its traits (``country``, ``region``/``state``; the account's
traits when the lead has none): ``{"US", "US-CA"}``. Reps whose territories contain one of
them are eligible (rule ``territory``); when none is, every active rep is (``round_robin``).
Among the eligible reps under capacity, the one whose last assignment is the oldest (never
assigned first, then in config order) gets the lead: the turn is read from the stored
assignments, so it stays fair across restarts and between workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.domain.errors import NotFound, ValidationError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPEN_STAGES = ("mql", "sal")  # a rep's capacity counts the assigned leads in these stages
COUNTRY_TRAITS = ("country", "country_code", "countryCode")
REGION_TRAITS = ("region", "state", "region_code", "state_code")


class RepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: str | None = None
    territories: list[str] = Field(default_factory=list)
    capacity: int | None = Field(default=None, ge=0)
    active: bool = True

    @field_validator("territories")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        return [code.strip().upper() for code in value if code.strip()]


class SalesTeamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reps: list[RepSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SalesTeamSpec:
        names = [r.name for r in self.reps]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rep name {twice[0]!r} is used twice")
        return self


@dataclass(frozen=True, slots=True)
class Rep:
    id: int
    name: str
    email: str | None
    territories: tuple[str, ...]
    capacity: int | None
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "territories": list(self.territories),
            "capacity": self.capacity,
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class RepLoad:
    rep: Rep
    open_leads: int
    last_assigned_at: datetime | None

    @property
    def has_room(self) -> bool:
        return self.rep.capacity is None or self.open_leads < self.rep.capacity


@dataclass(frozen=True, slots=True)
class Assignment:
    lead_id: int
    rep: Rep
    rule: str
    assigned_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "rep": self.rep.to_json(),
            "rule": self.rule,
            "assigned_at": self.assigned_at.isoformat(),
        }


class AssignmentRepository(Protocol):
    def sync_reps(self, reps: Sequence[RepSpec]) -> None: ...
    def loads(self, lock: bool) -> list[RepLoad]: ...
    def assignment_of(self, lead_id: int) -> Assignment | None: ...
    def save(self, lead_id: int, rep_id: int, rule: str, at: datetime) -> None: ...
    def regions_of(self, lead_id: int) -> set[str] | None: ...


def _text(traits: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().upper()
    address = traits.get("address")
    if isinstance(address, Mapping) and address is not traits:
        return _text(address, keys)
    return None


def regions(traits: Mapping[str, Any], account_traits: Mapping[str, Any] | None) -> set[str]:
    """``{"US", "US-CA"}`` from country and region traits (``"US-CA"`` also as region)."""
    for source in (traits, account_traits or {}):
        country = _text(source, COUNTRY_TRAITS)
        region = _text(source, REGION_TRAITS)
        if region and "-" in region:
            country = country or region.split("-", 1)[0]
            return {country, region}
        if country:
            return {country, f"{country}-{region}"} if region else {country}
    return set()


def choose(lead_regions: set[str], loads: Sequence[RepLoad]) -> tuple[Rep, str] | None:
    """The rep next in turn, and the rule that chose them; None when nobody has room."""
    active = [load for load in loads if load.rep.active and load.has_room]
    local = [load for load in active if lead_regions & set(load.rep.territories)]
    eligible, rule = (local, "territory") if local else (active, "round_robin")
    if not eligible:
        return None
    # never assigned first, then the longest wait; ties in config order (min keeps the first)
    best = min(
        eligible,
        key=lambda load: (load.last_assigned_at is not None, load.last_assigned_at or _EPOCH),
    )
    return best.rep, rule


def assign_mql(repo: AssignmentRepository, lead_id: int, at: datetime) -> Assignment | None:
    """Give a new MQL a rep, unless an active rep already has it; None when nobody has room."""
    current = repo.assignment_of(lead_id)
    if current is not None and current.rep.active:
        return current
    lead_regions = repo.regions_of(lead_id)
    if lead_regions is None:
        return None
    found = choose(lead_regions, repo.loads(lock=True))
    if found is None:
        return None
    rep, rule = found
    repo.save(lead_id, rep.id, rule, at)
    return Assignment(lead_id, rep, rule, at)


def assign_to(repo: AssignmentRepository, lead_id: int, rep_name: str, at: datetime) -> Assignment:
    """A person's choice of rep for a lead (rule ``manual``), over any earlier assignment."""
    loads = repo.loads(lock=False)
    rep = next((load.rep for load in loads if load.rep.name == rep_name), None)
    if rep is None:
        known = ", ".join(load.rep.name for load in loads) or "none configured"
        raise NotFound(f"no sales rep {rep_name!r}; reps: {known}")
    if not rep.active:
        raise ValidationError(f"rep: {rep_name!r} is not active")
    repo.save(lead_id, rep.id, "manual", at)
    return Assignment(lead_id, rep, "manual", at)
