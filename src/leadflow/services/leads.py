"""Reading leads: one lead, pages of leads, merges and conflicts."""

from __future__ import annotations

from leadflow.domain.errors import NotFound, ValidationError
from leadflow.domain.lifecycle import STAGES
from leadflow.domain.policy_parse import GRADES
from leadflow.ports import LEAD_SORTS, LeadFilter, LeadPage, LeadRepository, LeadView

MAX_PAGE = 1000


def get_lead(repo: LeadRepository, lead_id: int) -> LeadView:
    """The lead with that id; a merged id answers with the lead it was merged into."""
    live = repo.survivor_of(lead_id)
    view = repo.get(live) if live is not None else None
    if view is None:
        raise NotFound(f"no lead with id {lead_id}")
    return view


def list_leads(
    repo: LeadRepository,
    filters: LeadFilter,
    limit: int = 50,
    after: int | None = None,
    count: bool = False,
    sort: str = "newest",
    cursor: str | None = None,
) -> LeadPage:
    """A page of leads in ``sort`` order; the next page starts at ``cursor`` (the page's
    ``next_cursor``), or for the newest-first order at ``after`` (its ``next_after``)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
    if filters.stage is not None and filters.stage not in STAGES:
        raise ValidationError(f"stage: unknown stage {filters.stage!r}; one of {', '.join(STAGES)}")
    if filters.grade is not None and filters.grade not in GRADES:
        raise ValidationError(f"grade: unknown grade {filters.grade!r}; one of {', '.join(GRADES)}")
    if sort not in LEAD_SORTS:
        raise ValidationError(f"sort: {sort!r} is not one of {', '.join(LEAD_SORTS)}")
    key = parse_cursor(cursor, sort) if cursor else None
    if sort == "newest" and key is not None:
        after = key[1]
        key = None
    return repo.page(filters, limit, after, count, sort, key)


def parse_cursor(cursor: str, sort: str) -> tuple[float, int]:
    """``value:id`` (the last lead of the previous page); ``id`` alone for newest first."""
    value, _, lead = cursor.rpartition(":")
    try:
        if sort == "newest":
            return 0.0, int(lead)
        return float(value), int(lead)
    except ValueError:
        raise ValidationError(f"cursor: {cursor!r} is not a cursor of this listing") from None


def cursor_of(view: LeadView, sort: str) -> str:
    if sort == "newest":
        return str(view.id)
    value = {
        "engagement": view.engagement_score,
        "fit": view.fit_score,
        "p_convert": -1.0 if view.p_convert is None else view.p_convert,
    }[sort]
    return f"{float(value)!r}:{view.id}"
