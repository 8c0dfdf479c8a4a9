"""Sending what the delivery ledger holds: the last checks, the hand-off and its outcome.

For each queued delivery, just before the transport is called: the address, the suppression
list, the consent ledger, the per-lead frequency cap and the recipient's local hours decide
whether it goes now, waits, or is skipped with the reason recorded. A transport's transient
failure is retried with backoff; a permanent one fails the delivery and the journey goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadflow.domain.consent import (
    DEFAULT_EMAIL_WINDOW,
    DEFAULT_SMS_WINDOW,
    Channel,
    ConsentStatus,
    SendWindow,
    SkipReason,
    check_send,
    zone_of,
)
from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.domain.policy_parse import parse_duration
from leadflow.ports import DeliveryRecord, EmailMessage, LeadView, SendReceipt, SmsMessage


class Composer(Protocol):
    """Renders a delivery for one lead; returns the message and the content to keep on the
    delivery row (what link tracking and the lead's history need)."""

    def email(
        self, delivery: DeliveryRecord, lead: LeadView
    ) -> tuple[EmailMessage, dict[str, Any]]: ...

    def sms(
        self, delivery: DeliveryRecord, lead: LeadView
    ) -> tuple[SmsMessage, dict[str, Any]]: ...


class Transport(Protocol):
    def send(self, message: Any) -> SendReceipt: ...


class NurtureRules(BaseModel):
    """The ``nurture:`` section of leadflow.yaml: the rules every send obeys."""

    model_config = ConfigDict(extra="forbid")

    frequency_cap: int = Field(default=3, ge=0, description="Messages per lead per window.")
    frequency_window: str = Field(default="7d", description="The cap's window, e.g. 7d.")
    email_hours: str = Field(default=str(DEFAULT_EMAIL_WINDOW), description="Local send hours.")
    default_timezone: str = Field(default="UTC", description="When a lead has no timezone.")
    require_email_consent: bool = False
    double_opt_in_template: str = Field(
        default="confirm-subscription", description="The email asking to confirm a sign-up."
    )
    require_sms_consent: bool = True
    max_attempts: int = Field(default=6, ge=1)
    send_lease: str = Field(
        default="2m", description="How long a worker holds a batch before others may take it."
    )
    retry_after: list[str] = Field(default_factory=lambda: ["1m", "5m", "30m", "2h", "6h"])

    @field_validator("frequency_window", "send_lease")
    @classmethod
    def _window(cls, value: str) -> str:
        found = parse_duration(value)
        if isinstance(found, str):
            raise ValueError(found)
        return value

    @field_validator("email_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        SendWindow.parse(value)
        return value

    @field_validator("retry_after")
    @classmethod
    def _retries(cls, value: list[str]) -> list[str]:
        for item in value:
            if isinstance(parse_duration(item), str):
                raise ValueError(f"{item!r} is not a duration such as '5m'")
        return value

    def window(self, channel: Channel) -> SendWindow:
        """The channel's local hours: email from here; SMS from the ``sms:`` settings
        (quiet hours per region), passed to :func:`judge` by the caller."""
        return (
            SendWindow.parse(self.email_hours) if channel is Channel.EMAIL else DEFAULT_SMS_WINDOW
        )

    def cap_window(self) -> timedelta:
        found = parse_duration(self.frequency_window)
        assert isinstance(found, timedelta)
        return found

    def lease(self) -> timedelta:
        found = parse_duration(self.send_lease)
        assert isinstance(found, timedelta)
        return found

    def backoff(self, attempt: int) -> timedelta:
        """The wait before retry number ``attempt`` (1-based)."""
        delays = [parse_duration(d) for d in self.retry_after] or [timedelta(minutes=5)]
        found = delays[min(attempt, len(delays)) - 1]
        assert isinstance(found, timedelta)
        return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a due delivery now."""

    skip: str | None = None
    wait_until: datetime | None = None
    detail: str = ""


def judge(
    delivery: DeliveryRecord,
    lead: LeadView | None,
    consent: ConsentStatus,
    suppressed: bool,
    recent_sends: Sequence[datetime],
    rules: NurtureRules,
    now: datetime,
    local: tuple[SendWindow, ZoneInfo] | None = None,
    transactional: bool = False,
) -> Verdict:
    """The last checks before the transport, in order: lead, address, suppression, consent,
    frequency cap, local hours (``local``: the recipient's window and zone, when the caller
    knows better than the channel's default and the lead's timezone trait). A transactional
    message (the confirmation of a double opt-in) is not marketing: the consent it asks for
    and the frequency cap do not apply to it; the suppression list and the hours do."""
    if lead is None:
        return Verdict(skip="lead_erased", detail="the lead no longer exists")
    channel = Channel(delivery.channel)
    address = lead.email if channel is Channel.EMAIL else lead.phone
    trait = lead.traits.get("timezone") or lead.traits.get("time_zone")
    window, zone = local or (rules.window(channel), zone_of(trait, rules.default_timezone))
    check = check_send(
        channel=channel,
        address=address,
        consent=ConsentStatus.GRANTED if transactional else consent,
        suppressed=suppressed,
        require_consent=(
            rules.require_email_consent if channel is Channel.EMAIL else rules.require_sms_consent
        ),
        window=window,
        zone=zone,
        now=now,
    )
    if check.skip is not None:
        return Verdict(skip=check.skip.value, detail=check.detail)
    if rules.frequency_cap and not transactional and len(recent_sends) >= rules.frequency_cap:
        oldest = sorted(recent_sends)[-rules.frequency_cap]
        until = max(oldest + rules.cap_window(), now + timedelta(minutes=1))
        detail = (
            f"{len(recent_sends)} messages in {rules.frequency_window} (cap {rules.frequency_cap})"
        )
        return Verdict(wait_until=until, detail=f"{SkipReason.FREQUENCY_CAP.value}: {detail}")
    if check.wait_until is not None:
        return Verdict(wait_until=check.wait_until, detail=check.detail)
    return Verdict()


@dataclass(slots=True)
class SendReport:
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def __iadd__(self, other: SendReport) -> SendReport:
        self.sent += other.sent
        self.skipped += other.skipped
        self.deferred += other.deferred
        self.retried += other.retried
        self.failed += other.failed
        for key, count in other.reasons.items():
            self.reasons[key] = self.reasons.get(key, 0) + count
        return self

    def count(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class Handoff:
    """The transport's answer: a receipt, or the error it raised."""

    receipt: SendReceipt | None = None
    transient: str | None = None
    permanent: str | None = None


def hand_off(transport: Transport | None, message: Any) -> Handoff:
    if transport is None:
        return Handoff(permanent="no transport is configured for this channel")
    try:
        return Handoff(receipt=transport.send(message))
    except TransientDeliveryError as exc:
        return Handoff(transient=exc.message)
    except PermanentDeliveryError as exc:
        return Handoff(permanent=exc.message)
