"""Sales handoff webhooks: their settings, Standard Webhooks signatures, and what to do after
each attempt (delivered, try again later on a schedule with jitter, or give up: dead).

Signatures follow Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">`` with the base64-decoded part of a ``whsec_``
secret as the key. Everything here is free of I/O; the HTTP adapter sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from random import Random
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.domain.errors import ConfigError, NotFound, ValidationError
from leadflow.domain.lifecycle import STAGES

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
HANDOFF_EVENT = "lead.handoff"
TEST_EVENT = "webhook.test"
STATUSES = ("pending", "delivered", "dead")
# Standard Webhooks / Svix: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = ("0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h")
MAX_RETRY_AFTER = 86400.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def seconds_of(value: str | float) -> float:
    """``5`` / ``"5s"`` / ``"5m"`` / ``"2h"`` / ``"1d"`` / ``"500ms"`` as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    found = _DURATION.match(str(value))
    if not found:
        raise ValueError(f"{value!r} is not a duration like '5s', '5m', '2h' or '1d'")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def decode_secret(value: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ValueError naming the problem."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX!r} (leadflow webhooks secret)")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a secret holds 24 to 64 bytes, this one {len(key)}")
    return key


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def event_id_for(*parts: object) -> str:
    """A stable ``msg_...`` id: the same parts always give the same id (replays dedupe)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode().lower()


def new_event_id() -> str:
    return "msg_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


def body_of(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)


def sign(secret: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: bytes, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
        "content-type": "application/json",
    }


# --- settings ------------------------------------------------------------------------------
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointSpec(_Spec):
    name: str
    url: str = Field(min_length=1)
    secret: str | None = None
    secret_env: str | None = None
    stages: list[str] = Field(default_factory=lambda: ["sql"], min_length=1)
    enabled: bool = True
    timeout: str | float = "10s"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: letters, digits, '_', '-' and '.' only")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            decode_secret(value)
        return value

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[str]) -> list[str]:
        for stage in value:
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | float) -> str | float:
        if seconds_of(value) <= 0:
            raise ValueError("the timeout must be more than 0")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> EndpointSpec:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of 'secret' and 'secret_env'")
        return self


class WebhooksSpec(_Spec):
    allow_private_targets: bool = False
    retry_schedule: list[str | float] = Field(
        default_factory=lambda: list[str | float](DEFAULT_SCHEDULE), min_length=1
    )
    max_attempts: int = Field(default=len(DEFAULT_SCHEDULE), ge=1, le=100)
    jitter: float = Field(default=0.1, ge=0, le=1)
    last_touches: int = Field(default=10, ge=0, le=100)
    endpoints: list[EndpointSpec] = Field(default_factory=list)

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: list[str | float]) -> list[str | float]:
        for item in value:
            seconds_of(item)
        return value

    @model_validator(mode="after")
    def _unique(self) -> WebhooksSpec:
        names = [e.name for e in self.endpoints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"endpoint name {twice[0]!r} is used twice")
        return self


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    secret: bytes
    stages: frozenset[str]
    enabled: bool
    timeout: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "stages": sorted(self.stages),
            "enabled": self.enabled,
            "timeout": self.timeout,
        }


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    endpoints: tuple[Endpoint, ...] = ()
    allow_private_targets: bool = False
    schedule: tuple[float, ...] = tuple(seconds_of(s) for s in DEFAULT_SCHEDULE)
    max_attempts: int = len(DEFAULT_SCHEDULE)
    jitter: float = 0.1
    last_touches: int = 10

    def endpoint(self, name: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        known = ", ".join(e.name for e in self.endpoints) or "none configured"
        raise NotFound(f"no webhook endpoint {name!r}; endpoints: {known}")

    def for_stage(self, stage: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.enabled and stage in e.stages]


TargetCheck = Callable[[str, bool], object]
"""Raises ValueError when a URL may not be called (SSRF rules); the bool allows private."""


Place = Callable[[list[str | int]], str]
"""Where a key is, for messages: ``leadflow.yaml:12`` from a path like webhooks.endpoints.0."""


def compile_webhooks(
    spec: WebhooksSpec, where: Place, check_target: TargetCheck | None = None
) -> WebhookSettings:
    """The settings of a validated spec: secrets read, targets checked."""
    endpoints = []
    for index, item in enumerate(spec.endpoints):
        path: list[str | int] = ["webhooks", "endpoints", index]
        place = f"{where(path)}: webhooks.endpoints[{index}]"
        secret = item.secret
        if item.secret_env is not None:
            secret = os.environ.get(item.secret_env)
            if not secret:
                raise ConfigError(f"{place}.secret_env: {item.secret_env} is not set")
        try:
            key = decode_secret(secret or "")
        except ValueError as exc:
            raise ConfigError(f"{place}.secret_env: {item.secret_env}: {exc}") from None
        if check_target is not None:
            try:
                check_target(item.url, spec.allow_private_targets)
            except ValueError as exc:
                url_place = f"{where([*path, 'url'])}: webhooks.endpoints[{index}].url"
                raise ConfigError(f"{url_place}: {exc}") from None
        endpoints.append(
            Endpoint(
                item.name,
                item.url,
                key,
                frozenset(item.stages),
                item.enabled,
                seconds_of(item.timeout),
            )
        )
    return WebhookSettings(
        endpoints=tuple(endpoints),
        allow_private_targets=spec.allow_private_targets,
        schedule=tuple(seconds_of(s) for s in spec.retry_schedule),
        max_attempts=spec.max_attempts,
        jitter=spec.jitter,
        last_touches=spec.last_touches,
    )


# --- after an attempt ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST got: the HTTP status (None when no answer came) and what went wrong."""

    status: int | None
    error: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header
    refused: bool = False  # not sent: the target is not allowed (SSRF rules), or a redirect


Verdict = Literal["delivered", "retry", "dead"]


def judge(answer: Answer) -> Verdict:
    """2xx delivered; 5xx, 429, timeouts and connection errors retry; anything else dead."""
    if answer.status is None:
        return "dead" if answer.refused else "retry"
    if 200 <= answer.status < 300:
        return "delivered"
    if answer.status == 429 or answer.status >= 500:
        return "retry"
    return "dead"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def retry_delay(settings: WebhookSettings, attempts: int, rng: Random) -> float:
    """Seconds before try ``attempts + 1``, after ``attempts`` failed ones; with jitter."""
    schedule = settings.schedule
    base = schedule[min(attempts, len(schedule) - 1)]
    spread = base * settings.jitter
    return max(0.0, base + rng.uniform(-spread, spread)) if spread else base


@dataclass(frozen=True, slots=True)
class Outcome:
    """The delivery's state after an attempt."""

    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str
    delivered_at: datetime | None


def after_attempt(
    settings: WebhookSettings, attempts_before: int, answer: Answer, now: datetime, rng: Random
) -> Outcome:
    """Delivered on 2xx; retried on schedule (no sooner than Retry-After); dead on another
    4xx, a refused target or when the attempts are spent."""
    attempts = attempts_before + 1
    verdict = judge(answer)
    error = answer.error[:1000]
    if verdict == "delivered":
        return Outcome("delivered", attempts, None, answer.status, "", now)
    if verdict == "retry" and attempts < settings.max_attempts:
        delay = retry_delay(settings, attempts, rng)
        if answer.retry_after is not None:
            delay = max(delay, answer.retry_after)
        later = now + timedelta(seconds=delay)
        return Outcome("pending", attempts, later, answer.status, error, None)
    if verdict == "retry":
        error = f"gave up after {attempts} attempts: {error}"
    return Outcome("dead", attempts, None, answer.status, error, None)


# --- the ledger ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewWebhook:
    endpoint: str
    event_id: str
    event_type: str
    lead_id: int | None
    payload: dict[str, Any]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, slots=True)
class WebhookView:
    """One row of the webhook ledger."""

    id: int
    endpoint: str
    event_id: str
    event_type: str
    lead_id: int | None
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None

    def to_json(self, payload: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "endpoint": self.endpoint,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "lead_id": self.lead_id,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "delivered_at": _iso(self.delivered_at),
        }
        if payload:
            body["payload"] = self.payload
        return body


class WebhookSender(Protocol):
    """Sends one signed event to one endpoint and says what came back."""

    def send(self, endpoint: Endpoint, event_id: str, body: bytes) -> Answer: ...


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    return status
