"""Journeys and nurture rules from leadflow.yaml, journey summaries and reports, coupons.

Errors in the config name the file, the line and the path of the bad node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError as PydanticValidationError

from leadflow.domain.campaigns import Journey, JourneyError, parse_journey, two_proportion_p
from leadflow.domain.errors import ConfigError, Conflict, NotFound, ValidationError
from leadflow.services.deliveries import NurtureRules
from leadflow.services.models import _line_of
from leadflow.services.reports import rate

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _root(config_file: Path | None) -> yaml.Node | None:
    if config_file is None or not config_file.is_file():
        return None
    try:
        return yaml.compose(config_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _parts(path: str) -> list[str | int]:
    return [int(m.group(2)) if m.group(2) else m.group(1) for m in _PATH_PART.finditer(path)]


def _placed(message: str, config_file: Path | None) -> str:
    path = message.split(":", 1)[0]
    root = _root(config_file)
    line = _line_of(root, _parts(path)) if root is not None else None
    where = f"{config_file}:{line}" if line else str(config_file or "leadflow.yaml")
    return f"{where}: {message}"


def journeys_from(declared: object, config_file: Path | None = None) -> list[Journey]:
    """The journeys of the ``journeys:`` setting; ConfigError naming file, line and path."""
    if declared is None:
        return []
    if not isinstance(declared, Mapping):
        raise ConfigError(_placed("journeys: must be a mapping of names to journeys", config_file))
    try:
        return [parse_journey(str(name), spec) for name, spec in declared.items()]
    except JourneyError as exc:
        raise ConfigError(_placed(exc.message, config_file)) from None


def rules_from(declared: object, config_file: Path | None = None) -> NurtureRules:
    if declared is None:
        return NurtureRules()
    try:
        return NurtureRules.model_validate(declared)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        path = "nurture." + ".".join(str(p) for p in error["loc"])
        raise ConfigError(_placed(f"{path}: {error['msg']}", config_file)) from None
    except ValidationError as exc:
        raise ConfigError(_placed(f"nurture: {exc.message}", config_file)) from None


# ------------------------------------------------------------------------------------------
def summary(
    name: str,
    spec: Mapping[str, Any],
    enabled: bool,
    origin: str,
    version: str,
    runs: Mapping[str, int],
) -> dict[str, Any]:
    steps = spec.get("steps") or []
    return {
        "name": name,
        "enabled": enabled,
        "origin": origin,
        "version": version,
        "trigger": spec.get("trigger"),
        "steps": len(steps) if isinstance(steps, list) else 0,
        "goals": spec.get("goals") or [],
        "runs": dict(runs),
        "spec": dict(spec),
    }


def report(
    name: str,
    runs: Mapping[str, int],
    exits: Mapping[str, int],
    steps: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    rows = []
    for row in steps:
        sent = int(row["sent"]) + int(row["bounced"])
        rows.append(
            {
                **{k: row[k] for k in row},
                "open_rate": rate(int(row["opened"]), sent),
                "click_rate": rate(int(row["clicked"]), sent),
                "reply_rate": rate(int(row["replied"]), sent),
                "unsubscribe_rate": rate(int(row["unsubscribed"]), sent),
                "conversion_rate": rate(int(row["converted"]), sent),
            }
        )
    return {
        "journey": name,
        "runs": dict(runs),
        "exits": dict(exits),
        "steps": rows,
        "ab_tests": _ab_tests(rows),
    }


def _ab_tests(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    tests = []
    by_step: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("variant"):
            by_step.setdefault(str(row["step"]), []).append(row)
    for step, variants in sorted(by_step.items()):
        if len(variants) < 2:
            continue
        for metric in ("opened", "clicked", "replied", "converted"):
            ranked = sorted(
                variants, key=lambda r: int(r[metric]) / max(1, int(r["sent"])), reverse=True
            )
            best, runner = ranked[0], ranked[1]
            p_value = two_proportion_p(
                int(best[metric]), int(best["sent"]), int(runner[metric]), int(runner["sent"])
            )
            tests.append(
                {
                    "step": step,
                    "metric": metric,
                    "leader": best["variant"],
                    "runner_up": runner["variant"],
                    "p_value": p_value,
                    "significant": p_value is not None and p_value < 0.05,
                }
            )
    return tests


# ------------------------------------------------------------------------------------------
class CouponStore(Protocol):
    def coupon_by_code(self, code: str, lock: bool = False) -> dict[str, Any] | None: ...
    def redeem(self, coupon_id: int, at: datetime) -> bool: ...


def redeem(repo: CouponStore, code: str, now: datetime) -> dict[str, Any]:
    coupon = repo.coupon_by_code(code, lock=True)
    if coupon is None:
        raise NotFound(f"code: no offer code {code!r}")
    if coupon["redeemed_at"] is not None:
        raise Conflict(f"code: {code} was already redeemed at {coupon['redeemed_at']}")
    expires = coupon["expires_at"]
    if expires is not None and datetime.fromisoformat(expires) <= now:
        raise Conflict(f"code: {code} expired at {expires}")
    if not repo.redeem(int(coupon["id"]), now):
        raise Conflict(f"code: {code} was already redeemed")
    return {**coupon, "redeemed_at": now.isoformat()}
