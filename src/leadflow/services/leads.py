"""Reading leads: one lead, pages of leads, merges and conflicts."""

from __future__ import annotations

from leadflow.domain.errors import NotFound, ValidationError
from leadflow.domain.lifecycle import STAGES
from leadflow.ports import LeadFilter, LeadPage, LeadRepository, LeadView

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
) -> LeadPage:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
    if filters.stage is not None and filters.stage not in STAGES:
        raise ValidationError(f"stage: unknown stage {filters.stage!r}; one of {', '.join(STAGES)}")
    return repo.page(filters, limit, after, count)
