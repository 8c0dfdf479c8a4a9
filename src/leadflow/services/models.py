"""The scoring model: read from YAML, validated, compiled to the pure domain model.

Errors name the file, the line and the field (``leadflow.yaml:42: scoring.engagement.rules[3]
.points: ...``). A model is identified by a content hash of its validated form: the same
rules written differently (comments, key order) are the same version.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from leadflow.domain.errors import ConfigError
from leadflow.domain.lifecycle import SalesRules
from leadflow.domain.policy import Policy, PolicyError, parse_policy
from leadflow.domain.scoring import (
    OPS,
    Condition,
    EngagementRule,
    FitRule,
    Matcher,
    ScoringRules,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
SECTIONS = ("scoring", "lifecycle")


def parse_duration(text: str) -> timedelta:
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a duration like '30m', '12h', '7d' or '2w'")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConditionSpec(_Spec):
    field: str = Field(min_length=1)
    op: str
    value: Any = None

    @field_validator("op")
    @classmethod
    def _known_op(cls, op: str) -> str:
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; one of {', '.join(sorted(OPS))}")
        return op

    @model_validator(mode="after")
    def _value_fits_op(self) -> ConditionSpec:
        listy = ("in", "not_in", "contains_any", "glob")
        if self.op in listy and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op == "between":
            value = self.value
            numbers = isinstance(value, list) and all(_is_number(v) for v in value)
            if not (numbers and len(value) == 2 and value[0] <= value[1]):
                raise ValueError("op 'between' needs [low, high]: two numbers, low <= high")
        if self.op in ("gt", "gte", "lt", "lte") and not isinstance(self.value, int | float):
            raise ValueError(f"op {self.op!r} needs a number")
        return self

    def compile(self) -> Condition:
        value = tuple(self.value) if isinstance(self.value, list) else self.value
        return Condition(tuple(self.field.split(".")), self.op, value)


def _listed(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


class MatchSpec(_Spec):
    type: str | list[str] | None = None
    event: str | list[str] | None = None
    path: str | list[str] | None = None
    where: list[ConditionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> MatchSpec:
        if not (self.type or self.event or self.path or self.where):
            raise ValueError("match needs at least one of type, event, path, where")
        return self

    def compile(self) -> Matcher:
        return Matcher(
            types=frozenset(t.lower() for t in _listed(self.type)),
            events=frozenset(e.lower() for e in _listed(self.event)),
            paths=tuple(_listed(self.path)),
            where=tuple(c.compile() for c in self.where),
        )


class EngagementRuleSpec(_Spec):
    id: str = Field(min_length=1, max_length=80)
    description: str = ""
    match: MatchSpec
    points: float
    half_life: str | None = "30d"
    cap: float | None = Field(default=None, gt=0)
    daily_limit: int | None = Field(default=None, ge=1)
    group: str | None = None
    points_from: str | None = Field(
        default=None,
        description="A numeric field of the event (properties.points) whose value is the "
        "points, within +/- points.",
    )

    @field_validator("points_from")
    @classmethod
    def _points_from(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("properties."):
            raise ValueError(f"{value!r}: points come from a field under properties.")
        return value

    @field_validator("half_life")
    @classmethod
    def _half_life(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == "none":
            return None
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError(f"{value!r}: a half-life must be longer than zero (or none)")
        return value

    def compile(self) -> EngagementRule:
        seconds = parse_duration(self.half_life).total_seconds() if self.half_life else None
        source = tuple(self.points_from.split(".")) if self.points_from else None
        return EngagementRule(
            self.id, self.match.compile(), self.points, seconds, self.cap, self.daily_limit,
            self.group, self.description, source,
        )  # fmt: skip


class GroupSpec(_Spec):
    ceiling: float | None = Field(default=None, gt=0)


class EngagementSpec(_Spec):
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    rules: list[EngagementRuleSpec]

    @model_validator(mode="after")
    def _consistent(self) -> EngagementSpec:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
            if rule.group is not None and rule.group not in self.groups:
                raise ValueError(f"rule {rule.id!r}: unknown group {rule.group!r}")
        return self


class FitRuleSpec(_Spec):
    id: str = Field(min_length=1, max_length=80)
    description: str = ""
    when: list[ConditionSpec] = Field(min_length=1)
    points: float

    def compile(self) -> FitRule:
        return FitRule(
            self.id, tuple(c.compile() for c in self.when), self.points, self.description
        )


class FitSpec(_Spec):
    rules: list[FitRuleSpec] = Field(default_factory=list)
    grades: dict[Literal["A", "B", "C"], float]
    free_mail_domains: list[str] = Field(default_factory=list)
    competitor_domains: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _grades_descend(self) -> FitSpec:
        missing = {"A", "B", "C"} - set(self.grades)
        if missing:
            raise ValueError(f"grades: missing thresholds for {', '.join(sorted(missing))}")
        a, b, c = self.grades["A"], self.grades["B"], self.grades["C"]
        if not a > b > c:
            raise ValueError(f"grades: thresholds must fall from A to C, got A={a} B={b} C={c}")
        reachable = sum(r.points for r in self.rules if r.points > 0)
        if self.rules and a > reachable:
            raise ValueError(
                f"grades: A needs a fit score of {a}, but the fit rules add up to {reachable}"
            )
        return self


class ScoringSpec(_Spec):
    engagement: EngagementSpec
    fit: FitSpec


class SalesSpec(_Spec):
    sla: str | None = "24h"
    accept_reasons: list[str] = Field(min_length=1)
    reject_reasons: list[str] = Field(min_length=1)

    @field_validator("sla")
    @classmethod
    def _sla(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == "none":
            return None
        parse_duration(value)
        return value


class LifecycleSpec(_Spec):
    mql_policy: str = Field(min_length=1)
    recycle_when_cold: bool = True
    sales: SalesSpec


class ModelSpec(_Spec):
    scoring: ScoringSpec
    lifecycle: LifecycleSpec


@dataclass(frozen=True)
class ScoringModel:
    """The compiled model: rules, the policy, the sales step, and its version."""

    version: str
    rules: ScoringRules
    policy: Policy
    sales: SalesRules
    spec: dict[str, Any]

    @property
    def watched_events(self) -> tuple[str, ...]:
        return tuple(sorted({w.event for w in self.policy.windows}))


def _version(spec: ModelSpec) -> str:
    canonical = orjson.dumps(spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:12]


def compile_model(spec: ModelSpec, where: str = "model") -> ScoringModel:
    engagement = spec.scoring.engagement
    rules = ScoringRules(
        engagement=tuple(r.compile() for r in engagement.rules),
        groups={name: g.ceiling for name, g in engagement.groups.items()},
        fit=tuple(r.compile() for r in spec.scoring.fit.rules),
        grades=tuple(sorted(spec.scoring.fit.grades.items(), key=lambda kv: -kv[1])),
        free_mail_domains=frozenset(d.lower() for d in spec.scoring.fit.free_mail_domains),
        competitor_domains=frozenset(d.lower() for d in spec.scoring.fit.competitor_domains),
    )
    try:
        policy = parse_policy(spec.lifecycle.mql_policy, groups=list(rules.groups))
    except PolicyError as exc:
        raise ConfigError(f"{where}: lifecycle.mql_policy: {exc.message}") from None
    _check_reachable(policy, rules, where)
    sales = spec.lifecycle.sales
    return ScoringModel(
        version=_version(spec),
        rules=rules,
        policy=policy,
        sales=SalesRules(
            tuple(sales.accept_reasons),
            tuple(sales.reject_reasons),
            parse_duration(sales.sla) if sales.sla else None,
            spec.lifecycle.recycle_when_cold,
        ),
        spec=spec.model_dump(mode="json"),
    )


def max_engagement(rules: ScoringRules) -> float | None:
    """The highest engagement score the rules can produce; None when unbounded."""
    total = 0.0
    grouped: dict[str, float] = {}
    for rule in rules.engagement:
        if rule.points <= 0:
            continue
        if rule.cap is None and (rule.group is None or rules.groups.get(rule.group) is None):
            return None
        best = rule.cap if rule.cap is not None else float("inf")
        if rule.group is None:
            total += best
        else:
            grouped[rule.group] = grouped.get(rule.group, 0.0) + best
    for name, summed in grouped.items():
        ceiling = rules.groups.get(name)
        total += min(summed, ceiling) if ceiling is not None else summed
    return total


def _check_reachable(policy: Policy, rules: ScoringRules, where: str) -> None:
    top = max_engagement(rules)
    for variable, number in policy.floors:
        limit: float | None = None
        if variable == "engagement":
            limit = top
        elif variable.startswith("groups."):
            limit = rules.groups.get(variable.removeprefix("groups."))
        elif variable == "fit.score":
            limit = sum(r.points for r in rules.fit if r.points > 0)
        if limit is not None and number > limit:
            raise ConfigError(
                f"{where}: lifecycle.mql_policy: {variable} can reach at most {limit:g}, "
                f"so the threshold {number:g} can never be met"
            )


# --- reading YAML with line numbers ------------------------------------------------------


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                key = next((k for k, _v in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _where(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _config_error(exc: PydanticValidationError, root: yaml.Node | None, origin: str) -> ConfigError:
    """The most telling problem, placed: an unknown key (usually a typo) before the missing
    key it was meant to be."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc = [p for p in error["loc"] if isinstance(p, int | str)]
    loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-after"))]
    line = _line_of(root, loc)
    place = f"{origin}:{line}" if line else origin
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and loc:
        missing = [
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "missing" and e["loc"][:-1] == tuple(loc[:-1])
        ]
        hint = difflib.get_close_matches(str(loc[-1]), missing, n=1)
        message = f"unknown key {loc[-1]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    return ConfigError(f"{place}: {_where(loc) or 'model'}: {message}")


def load_model_text(text: str, origin: str) -> ScoringModel:
    """Validate and compile the scoring/lifecycle sections of a YAML document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with 'scoring' and 'lifecycle'")
    values = {key: data[key] for key in SECTIONS if key in data}
    try:
        spec = ModelSpec.model_validate(values)
    except PydanticValidationError as exc:
        raise _config_error(exc, root, origin) from None
    line = _line_of(root, ["lifecycle", "mql_policy"])
    return compile_model(spec, f"{origin}:{line}" if line else origin)


def default_model_text() -> str:
    return resources.files("leadflow").joinpath("model.yaml").read_text(encoding="utf-8")


def load_model(config_file: Path | None) -> ScoringModel:
    """The model of a config file when it has a ``scoring`` section, else the default one."""
    if config_file is not None and config_file.is_file():
        text = config_file.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if text.strip() else None
        if isinstance(data, Mapping) and any(key in data for key in SECTIONS):
            return load_model_text(text, str(config_file))
    return load_model_text(default_model_text(), "the default model (leadflow/model.yaml)")
