"""The sales handoff: its configuration, the payload a CRM maps, and the CSV export's rows.

The payload (docs/handoff.md) is a snapshot taken when the stage change is dispatched:
the lead, its account, its scores with a short explanation (the top engagement rules with
their points, the fit criteria met, the policy clause that fired), the stage history, the
last touches and the assigned rep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import yaml
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from leadflow.domain.errors import ValidationError
from leadflow.domain.lifecycle import STAGES
from leadflow.ports import LeadView
from leadflow.services.assignment import RepSpec, SalesTeamSpec
from leadflow.services.models import _config_error, _line_of
from leadflow.services.webhooks import (
    HANDOFF_EVENT,
    TargetCheck,
    WebhookSettings,
    WebhooksSpec,
    compile_webhooks,
)

TOP_RULES = 5
# Segment's context.campaign keys -> utm_* names
UTM_KEYS = {
    "source": "source",
    "medium": "medium",
    "name": "campaign",
    "term": "term",
    "content": "content",
}


class HandoffSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhooks: WebhooksSpec | None = None
    sales: SalesTeamSpec | None = None


@dataclass(frozen=True)
class HandoffConfig:
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    reps: tuple[RepSpec, ...] = ()


def _root_of(config_file: Path | None) -> tuple[yaml.Node | None, str]:
    if config_file is None or not config_file.is_file():
        return None, "settings"
    try:
        return yaml.compose(config_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader), str(
            config_file
        )
    except (OSError, yaml.YAMLError):
        return None, str(config_file)


def load_handoff_config(
    webhooks: Mapping[str, Any] | None,
    sales: Mapping[str, Any] | None,
    config_file: Path | None,
    check_target: TargetCheck | None = None,
) -> HandoffConfig:
    """Validate the ``webhooks`` and ``sales`` settings; ConfigError names file, line, key."""
    values = {k: v for k, v in (("webhooks", webhooks), ("sales", sales)) if v is not None}
    try:
        spec = HandoffSpec.model_validate(values)
    except PydanticValidationError as exc:
        root, origin = _root_of(config_file)
        raise _config_error(exc, root, origin) from None
    hooks = WebhookSettings()
    if spec.webhooks is not None:
        root, origin = _root_of(config_file)

        def where(path: list[str | int]) -> str:
            line = _line_of(root, path)
            return f"{origin}:{line}" if line else origin

        hooks = compile_webhooks(spec.webhooks, where, check_target)
    return HandoffConfig(hooks, tuple(spec.sales.reps) if spec.sales else ())


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValidationError(f"stage: unknown stage {stage!r}; one of {', '.join(STAGES)}")
    return stage


# --- the payload ---------------------------------------------------------------------------
def _name(traits: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _company(lead: LeadView) -> str | None:
    value = lead.traits.get("company")
    if isinstance(value, Mapping):
        value = value.get("name")
    if not value and lead.account:
        value = lead.account.get("name")
    return str(value) if value else None


def lead_part(lead: LeadView) -> dict[str, Any]:
    traits = lead.traits
    name = _name(traits, "name")
    first = _name(traits, "first_name", "firstName")
    last = _name(traits, "last_name", "lastName")
    if name and not (first or last):
        first, _, last_text = name.partition(" ")
        last = last_text or None
    return {
        "id": lead.id,
        "email": lead.email,
        "phone": lead.phone,
        "first_name": first,
        "last_name": last,
        "title": _name(traits, "title", "job_title", "jobTitle"),
        "company": _company(lead),
        "traits": traits,
        "identities": lead.identities,
        "stage": lead.stage,
        "created_at": lead.created_at.isoformat(),
        "first_touch": lead.first_touch,
    }


def account_part(lead: LeadView) -> dict[str, Any] | None:
    if not lead.account:
        return None
    account = lead.account
    return {
        "id": account.get("id"),
        "group_id": account.get("group_id"),
        "name": account.get("name"),
        "traits": account.get("traits") or {},
    }


def explanation_summary(explained: Mapping[str, Any] | None) -> dict[str, Any]:
    """The short why: the top engagement rules by points now, fit criteria, the policy."""
    if not explained:
        return {"top_rules": [], "fit_criteria": [], "policy": None, "fired": []}
    rules = sorted(explained["engagement"]["rules"], key=lambda r: -abs(r["score"]))
    policy = explained["policy"]
    return {
        "top_rules": [
            {
                "rule": r["rule"],
                "description": r["description"],
                "points": round(r["score"], 2),
                "events": r["events_counted"],
            }
            for r in [r for r in rules if round(r["score"], 2)][:TOP_RULES]
        ],
        "fit_criteria": [
            {"rule": c["rule"], "description": c["description"], "points": c["points"]}
            for c in explained["fit"]["criteria"]
        ],
        "policy": policy["expression"],
        "fired": list(policy["fired"]),
    }


def scores_part(lead: LeadView, explained: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "fit": lead.fit_score,
        "fit_grade": lead.fit_grade,
        "engagement": round(lead.engagement_score, 4),
        "p_convert": lead.p_convert,
        "model_version": lead.model_version,
        "explanation": explanation_summary(explained),
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def touch_of(
    kind: str, name: str | None, at: datetime, properties: Mapping[str, Any], raw: Any
) -> dict[str, Any]:
    """One event as a touch: what, when, where (url) and from which campaign (utm)."""
    context = _mapping(_mapping(raw).get("context"))
    page = _mapping(context.get("page"))
    url = page.get("url") or properties.get("url")
    path = page.get("path") or properties.get("path")
    campaign = _mapping(context.get("campaign"))
    utm = {UTM_KEYS[k]: v for k, v in campaign.items() if k in UTM_KEYS and v}
    return {
        "type": kind,
        "name": name or (path if kind == "page" else None),
        "at": at.isoformat(),
        "url": url,
        "path": path,
        "utm": utm,
    }


@dataclass(frozen=True)
class HandoffFacts:
    """What a payload is built from, read in one transaction."""

    lead: LeadView
    explained: Mapping[str, Any] | None
    history: Sequence[Mapping[str, Any]]
    touches: Sequence[Mapping[str, Any]]
    rep: Mapping[str, Any] | None


class HandoffRepository(Protocol):
    def facts(self, lead_id: int, touches: int) -> HandoffFacts | None: ...


def handoff_payload(
    facts: HandoffFacts, at: datetime, change: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{type, timestamp, data}`` as Standard Webhooks payloads are shaped."""
    data: dict[str, Any] = {
        "lead": lead_part(facts.lead),
        "account": account_part(facts.lead),
        "scores": scores_part(facts.lead, facts.explained),
        "stage_change": dict(change) if change else None,
        "stage_history": [dict(item) for item in facts.history],
        "last_touches": [dict(item) for item in facts.touches],
        "assigned_rep": dict(facts.rep) if facts.rep else None,
    }
    return {"type": HANDOFF_EVENT, "timestamp": at.isoformat(), "data": data}


# --- CSV export ----------------------------------------------------------------------------
CSV_COLUMNS = (
    "lead_id", "email", "phone", "first_name", "last_name", "title", "company", "stage",
    "created_at", "account_name", "account_group_id", "fit_score", "fit_grade",
    "engagement_score", "p_convert", "model_version", "why", "policy_fired", "reached_stage_at",
    "last_touch_at", "last_touch", "first_touch_url", "utm_source", "utm_medium",
    "utm_campaign", "rep_name", "rep_email", "traits_json",
)  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    # a cell a spreadsheet would run as a formula is kept as text
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _numeric(text) else text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_row(payload: Mapping[str, Any], stage: str) -> dict[str, str]:
    """One flattened line of a CRM import file, from a handoff payload."""
    data = payload["data"]
    lead, account, scores = data["lead"], data["account"] or {}, data["scores"]
    why = scores["explanation"]
    reached = [h["at"] for h in data["stage_history"] if h["to"] == stage]
    touches = data["last_touches"]
    first = lead["first_touch"] or {}
    campaign = _mapping(first.get("campaign"))
    rep = data["assigned_rep"] or {}
    values: dict[str, Any] = {
        "lead_id": lead["id"], "email": lead["email"], "phone": lead["phone"],
        "first_name": lead["first_name"], "last_name": lead["last_name"],
        "title": lead["title"], "company": lead["company"], "stage": lead["stage"],
        "created_at": lead["created_at"], "account_name": account.get("name"),
        "account_group_id": account.get("group_id"), "fit_score": scores["fit"],
        "fit_grade": scores["fit_grade"], "engagement_score": scores["engagement"],
        "p_convert": scores["p_convert"], "model_version": scores["model_version"],
        "why": "; ".join(f"{r['rule']} {r['points']:g}" for r in why["top_rules"]),
        "policy_fired": "; ".join(why["fired"]),
        "reached_stage_at": reached[-1] if reached else None,
        "last_touch_at": touches[0]["at"] if touches else None,
        "last_touch": (touches[0]["name"] or touches[0]["type"]) if touches else None,
        "first_touch_url": first.get("url"), "utm_source": campaign.get("source"),
        "utm_medium": campaign.get("medium"), "utm_campaign": campaign.get("name"),
        "rep_name": rep.get("name"), "rep_email": rep.get("email"),
        "traits_json": orjson.dumps(lead["traits"], option=orjson.OPT_SORT_KEYS).decode(),
    }  # fmt: skip
    return {column: _cell(values[column]) for column in CSV_COLUMNS}


def csv_rows(payloads: Iterable[Mapping[str, Any]], stage: str) -> Iterable[dict[str, str]]:
    for payload in payloads:
        yield csv_row(payload, stage)
