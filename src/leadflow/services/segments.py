"""Segments as use cases: definitions saved and refreshed in bulk (SQL), membership kept up
to date lead by lead as leads change (in memory), config-declared segments synced.

Entering or leaving a segment writes an outbox row (``segment.entered`` / ``segment.left``,
payload ``{segment, lead_id}``) in the transaction of the change; journeys start from those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from leadflow.domain.errors import ConfigError, NotFound, ValidationError
from leadflow.domain.segments import (
    LeadFacts,
    Loc,
    Node,
    Segment,
    SegmentError,
    check_name,
    matches,
    parse_tree,
    to_data,
)
from leadflow.services.models import _line_of

ENTERED = "segment.entered"
LEFT = "segment.left"
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class StoredSegment:
    name: str
    description: str
    tree: dict[str, Any]
    origin: str
    created_at: datetime
    updated_at: datetime

    def segment(self) -> Segment:
        return Segment(self.name, parse_tree(self.tree, ("segments", self.name)), self.description)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "definition": definition_data(self.segment()),
            "origin": self.origin,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(slots=True)
class RefreshReport:
    segment: str
    members: int = 0
    entered: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "members": self.members,
            "entered": len(self.entered),
            "left": len(self.left),
        }


class SegmentRepository(Protocol):
    def all(self) -> list[StoredSegment]: ...
    def get(self, name: str) -> StoredSegment | None: ...
    def save(
        self, name: str, description: str, tree: dict[str, Any], origin: str, at: datetime
    ) -> None: ...
    def delete(self, name: str) -> bool: ...
    def count(self, tree: Node, now: datetime) -> int: ...
    def sample(self, tree: Node, now: datetime, limit: int) -> list[int]: ...
    def refresh(self, name: str, tree: Node, now: datetime) -> tuple[list[int], list[int]]: ...
    def member_count(self, name: str) -> int: ...
    def members(self, name: str, limit: int, after: int | None) -> list[tuple[int, datetime]]: ...
    def memberships(self, lead_ids: Sequence[int]) -> dict[int, set[str]]: ...
    def apply(
        self, entered: Sequence[tuple[str, int]], left: Sequence[tuple[str, int]], now: datetime
    ) -> None: ...
    def facts(
        self, lead_ids: Sequence[int], trees: Sequence[Node], now: datetime
    ) -> dict[int, LeadFacts]: ...


# --- definitions ------------------------------------------------------------------------


def parse_definition(name: object, data: object, loc: Loc | None = None) -> Segment:
    """A segment from its plain-data definition: the tree, plus an optional description."""
    checked = check_name(name, loc or ("segments", str(name)))
    where = loc or ("segments", checked)
    if not isinstance(data, Mapping):
        raise SegmentError(
            where, f"expected a mapping (all, any, not, field or event), got {data!r}"
        )
    tree = {k: v for k, v in data.items() if k != "description"}
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise SegmentError((*where, "description"), f"expected text, got {description!r}")
    return Segment(checked, parse_tree(tree, where), description)


def definition_data(segment: Segment) -> dict[str, Any]:
    data = to_data(segment.tree)
    return {"description": segment.description, **data} if segment.description else data


def get(repo: SegmentRepository, name: str) -> StoredSegment:
    found = repo.get(name)
    if found is None:
        raise NotFound(f"no segment named {name!r}")
    return found


def put(
    repo: SegmentRepository, segment: Segment, now: datetime, origin: str = "user"
) -> RefreshReport:
    """Create or replace a segment and compute its members in bulk."""
    repo.save(segment.name, segment.description, to_data(segment.tree), origin, now)
    return refresh(repo, segment.name, now)


def delete(repo: SegmentRepository, name: str) -> None:
    if not repo.delete(name):
        raise NotFound(f"no segment named {name!r}")


def refresh(repo: SegmentRepository, name: str, now: datetime) -> RefreshReport:
    """Evaluate the segment in SQL and write the difference (members and outbox rows)."""
    segment = get(repo, name).segment()
    entered, left = repo.refresh(name, segment.tree, now)
    return RefreshReport(name, repo.member_count(name), entered, left)


def preview(repo: SegmentRepository, tree: Node, now: datetime, limit: int) -> dict[str, Any]:
    """How many leads an unsaved tree selects now, and the first of them."""
    return {"count": repo.count(tree, now), "sample": repo.sample(tree, now, limit)}


def members(
    repo: SegmentRepository, name: str, limit: int, after: int | None
) -> list[tuple[int, datetime]]:
    get(repo, name)
    return repo.members(name, max(1, min(limit, MAX_PAGE)), after)


def sync(repo: SegmentRepository, declared: Sequence[Segment], now: datetime) -> list[str]:
    """Make the config's segments the stored ones: save and refresh those that changed,
    drop config segments no longer declared. Returns the names written or dropped."""
    stored = {s.name: s for s in repo.all()}
    changed: list[str] = []
    for segment in declared:
        old = stored.get(segment.name)
        same = (
            old is not None
            and old.origin == "config"
            and (old.tree == to_data(segment.tree) and old.description == segment.description)
        )
        if not same:
            put(repo, segment, now, origin="config")
            changed.append(segment.name)
    names = {s.name for s in declared}
    for old in stored.values():
        if old.origin == "config" and old.name not in names:
            repo.delete(old.name)
            changed.append(old.name)
    return changed


# --- live membership --------------------------------------------------------------------


class SegmentTracker:
    """Re-evaluates changed leads against every segment, in memory, inside the caller's
    transaction; with no segment defined it costs one small query."""

    def __init__(self, repo: SegmentRepository) -> None:
        self.repo = repo

    def leads_changed(self, lead_ids: Sequence[int], now: datetime) -> None:
        if not lead_ids:
            return
        segments = [stored.segment() for stored in self.repo.all()]
        if not segments:
            return
        ids = sorted(set(lead_ids))
        facts = self.repo.facts(ids, [s.tree for s in segments], now)
        current = self.repo.memberships(ids)
        entered: list[tuple[str, int]] = []
        left: list[tuple[str, int]] = []
        for lead_id in ids:
            found = facts.get(lead_id)  # None: merged away or gone, so in no segment
            have = current.get(lead_id, set())
            for segment in segments:
                inside = found is not None and matches(segment.tree, found, now)
                if inside and segment.name not in have:
                    entered.append((segment.name, lead_id))
                elif not inside and segment.name in have:
                    left.append((segment.name, lead_id))
        self.repo.apply(entered, left, now)


# --- the config file --------------------------------------------------------------------


def from_config(declared: object, config_file: Path | None = None) -> list[Segment]:
    """The segments of the ``segments:`` setting; a ConfigError names file, line and path."""
    if declared is None:
        return []
    try:
        if not isinstance(declared, Mapping):
            raise SegmentError(("segments",), "expected a mapping of segment names to definitions")
        return [parse_definition(name, data) for name, data in declared.items()]
    except SegmentError as exc:
        raise ConfigError(_placed(exc, config_file)) from None


def _placed(exc: SegmentError, config_file: Path | None) -> str:
    if config_file is None or not config_file.is_file():
        return f"segments: {exc.message}"
    try:
        root = yaml.compose(config_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        root = None
    line = _line_of(root, list(exc.loc)) if root is not None else None
    return f"{config_file}:{line}: {exc.message}" if line else f"{config_file}: {exc.message}"


def definition_from_file(name: str, path: Path) -> dict[str, Any]:
    """The definition a YAML (or JSON) file holds, validated; errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot read the file: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValidationError(f"{place}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        parse_definition(name, data)
    except SegmentError as exc:
        line = _line_of(root, list(exc.loc[2:])) if root is not None else None
        raise ValidationError(f"{path}:{line or 1}: {exc.message}") from None
    assert isinstance(data, dict)
    return data
