"""The SMS channel: its settings, inbound messages (keywords, replies) and delivery reports.

An inbound text is handled in two steps, each its own transaction (the facade commits):
``apply_inbound`` records what it means (suppression, consent, the reply owed) and creates the
reply's delivery row, keyed on the inbound message so a redelivered message never owes a
second reply; ``deliver`` then sends a queued row under a row lock and records the outcome.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from leadflow.domain.consent import (
    Channel,
    ConsentRecord,
    ConsentStatus,
    Keyword,
    SendWindow,
    classify_keyword,
    zone_of,
)
from leadflow.domain.errors import (
    ConfigError,
    PermanentDeliveryError,
    TransientDeliveryError,
    ValidationError,
)
from leadflow.domain.sms import (
    BUILTIN_REGION_WINDOWS,
    ReportStatus,
    recipient_region,
    window_for,
    zone_name_of,
)
from leadflow.ports import (
    ConsentRepository,
    DeliveryRecord,
    DeliveryRepository,
    NewDelivery,
    SendReceipt,
    SmsMessage,
    SmsSender,
)
from leadflow.services.activity import (
    SMS_DELIVERED,
    SMS_OPTED_IN,
    SMS_OPTED_OUT,
    SMS_REPLIED,
    Activity,
)
from leadflow.services.models import _line_of

RETRY_AFTER = timedelta(minutes=5)


# settings ----------------------------------------------------------------------------------
def _checked_window(text: str) -> str:
    try:
        SendWindow.parse(text)
    except ValidationError as exc:
        raise ValueError(exc.message.split(": ", 1)[-1]) from None
    return text


WindowText = Annotated[str, AfterValidator(_checked_window)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KannelConfig(_Section):
    url: str = Field(default="http://127.0.0.1:13013", description="smsbox's sendsms address.")
    username: str
    password: str = ""
    password_env: str = Field(default="", description="Variable holding the password.")


class HttpProviderConfig(_Section):
    base_url: str = "https://api.twilio.com"
    account_sid: str
    auth_token: str = ""
    auth_token_env: str = Field(default="", description="Variable holding the token.")
    messaging_service_sid: str | None = None
    verify_signature: bool = Field(default=False, description="Check X-Twilio-Signature.")


class CaptureConfig(_Section):
    file: str = Field(default="sms-outbox.jsonl", description="Relative to the home folder.")


class SmsSettings(_Section):
    """The ``sms:`` section of leadflow.yaml (docs/sms.md)."""

    provider: Literal["kannel", "http", "capture"] = "capture"
    sender: str | None = Field(default=None, description="Sender id: a number or short code.")
    program: str = Field(default="leadflow", min_length=1)
    contact: str = ""
    help_text: str = ""
    webhook_token: str = Field(default="", description="Secret in the callback URLs.")
    webhook_token_env: str = ""
    callback_url: str = Field(default="", description="Base URL the gateway calls back.")
    quiet_hours: WindowText = "08:00-21:00"
    regions: dict[str, WindowText] = Field(default_factory=dict)
    builtin_regions: bool = True
    timeout: float = Field(default=10.0, gt=0)
    kannel: KannelConfig | None = None
    http: HttpProviderConfig | None = None
    capture: CaptureConfig = Field(default_factory=CaptureConfig)

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: dict[str, str]) -> dict[str, str]:
        return {name.strip().upper(): text for name, text in value.items()}

    @field_validator("help_text")
    @classmethod
    def _help(cls, value: str) -> str:
        if value and "STOP" not in value.upper():
            raise ValueError("must tell how to opt out (mention STOP)")
        return value

    @model_validator(mode="after")
    def _provider(self) -> SmsSettings:
        if self.provider == "kannel" and self.kannel is None:
            raise ValueError("provider kannel needs a 'kannel:' section (url, username...)")
        if self.provider == "http" and self.http is None:
            raise ValueError("provider http needs an 'http:' section (account_sid...)")
        if self.http is not None and not (self.sender or self.http.messaging_service_sid):
            raise ValueError("the http provider needs a sender or http.messaging_service_sid")
        return self

    # derived ---------------------------------------------------------------------------------
    def window(self) -> SendWindow:
        return SendWindow.parse(self.quiet_hours, "sms.quiet_hours")

    def region_windows(self) -> dict[str, SendWindow]:
        windows = dict(BUILTIN_REGION_WINDOWS) if self.builtin_regions else {}
        windows.update(
            {k: SendWindow.parse(v, f"sms.regions.{k}") for k, v in self.regions.items()}
        )
        return windows

    def help_message(self) -> str:
        if self.help_text:
            return self.help_text
        contact = f" Help: {self.contact}." if self.contact else ""
        return f"{self.program}:{contact} Msg&data rates may apply. Reply STOP to opt out."

    def opt_out_message(self) -> str:
        return (
            f"You are unsubscribed from {self.program}. No more messages. "
            "Reply START to resubscribe."
        )

    def opt_in_message(self) -> str:
        return f"You are resubscribed to {self.program}. Reply HELP for help, STOP to opt out."


def sms_settings(raw: object, config_file: Path | None = None) -> SmsSettings:
    """The validated ``sms:`` setting; a ConfigError names the file, line and key."""
    try:
        return SmsSettings.model_validate(raw or {})
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ["sms", *(str(p) for p in first["loc"])]
        message = str(first["msg"]).removeprefix("Value error, ")
        where = ".".join(loc)
        raise ConfigError(f"{_place(config_file, loc)}{where}: {message}") from None


def _place(config_file: Path | None, loc: Sequence[str]) -> str:
    if config_file is None or not config_file.is_file():
        return ""
    try:
        root = yaml.compose(config_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return f"{config_file}: "
    line = _line_of(root, list(loc)) if root is not None else None
    return f"{config_file}:{line}: " if line else f"{config_file}: "


def send_window(
    config: SmsSettings, traits: Mapping[str, object], phone: str | None, fallback: str = "UTC"
) -> tuple[SendWindow, ZoneInfo]:
    """The recipient's quiet-hours window and time zone (docs/sms.md, quiet hours)."""
    region = recipient_region(traits, phone)
    window = window_for(region, config.region_windows(), config.window())
    return window, zone_of(zone_name_of(traits, phone), fallback)


# repositories ------------------------------------------------------------------------------
ConsentStore = ConsentRepository


DeliveryStore = DeliveryRepository


# sending one text --------------------------------------------------------------------------
@dataclass(slots=True)
class Outgoing:
    """A text about to go out: its delivery row (None for a number no lead has) and the
    message; ``skipped`` names why it will not go."""

    message: SmsMessage
    delivery_id: int | None = None
    lead_id: int | None = None
    skipped: str | None = None
    status: str = "queued"
    provider_id: str | None = None
    parts: int = 0
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        fields = ("delivery_id", "lead_id", "status", "skipped", "provider_id", "parts", "detail")
        message = {"to": self.message.to, "text": self.message.text, "key": self.message.key}
        return {**message, **{name: getattr(self, name) for name in fields}}


def prepare(
    consents: ConsentStore,
    deliveries: DeliveryStore,
    message: SmsMessage,
    kind: str,
    now: datetime,
    *,
    lead_id: int | None = None,
    honour_suppression: bool = True,
) -> Outgoing:
    """Create the delivery row of a text (queued), or skip it when the number is suppressed.

    A row that exists already (the same key) is returned as it is: a second call never owes
    a second send. Numbers no lead has get no row (the ledger belongs to leads)."""
    owner = lead_id
    if owner is None:
        owners = consents.leads_with_address(Channel.SMS, message.to)
        owner = owners[0] if owners else None
    out = Outgoing(message, lead_id=owner)
    blocked = honour_suppression and bool(consents.suppressed(Channel.SMS, [message.to]))
    if owner is not None:
        content = {"kind": kind, "text": message.text, "to": message.to, "sender": message.sender}
        new = NewDelivery(
            key=message.key,
            lead_id=owner,
            channel=Channel.SMS.value,
            address=message.to,
            template=kind,
            content=content,
        )
        row, created = deliveries.create(new, now)
        out.delivery_id, out.status = row.id, row.status
        if created and blocked:
            deliveries.mark_skipped(row.id, "suppressed", now)
            out.status = "skipped"
    if blocked:
        out.skipped, out.status = "suppressed", "skipped"
        out.detail = f"{message.to} is on the suppression list"
    return out


def deliver(deliveries: DeliveryStore, sender: SmsSender, out: Outgoing, now: datetime) -> Outgoing:
    """Send a prepared text once: its row is locked and must still be queued."""
    if out.skipped is not None:
        return out
    if out.delivery_id is not None:
        row = deliveries.get(out.delivery_id, lock=True)
        if row is None or row.status != "queued":
            out.status = row.status if row is not None else "missing"
            out.detail = "already handled"
            return out
    try:
        receipt: SendReceipt = sender.send(out.message)
    except TransientDeliveryError as exc:
        out.status, out.detail = "queued", exc.message
        if out.delivery_id is not None:
            deliveries.mark_retry(out.delivery_id, exc.message, now + RETRY_AFTER, now)
        return out
    except PermanentDeliveryError as exc:
        out.status, out.detail = "failed", exc.message
        if out.delivery_id is not None:
            deliveries.mark_failed(out.delivery_id, exc.message, now, attempted=True)
        return out
    out.status, out.provider_id, out.parts, out.detail = (
        "sent",
        receipt.provider_id,
        receipt.parts,
        receipt.detail,
    )
    if out.delivery_id is not None:
        deliveries.mark_sent(
            out.delivery_id, receipt.provider_id, receipt.parts, receipt.detail, now
        )
    return out


def stored_message(row: DeliveryRecord) -> SmsMessage | None:
    """The text of a row created by ``prepare`` (replies, one-off sends), to send it again;
    None for rows of other origins."""
    text, to = row.content.get("text"), row.content.get("to") or row.address
    if row.channel != Channel.SMS.value or not isinstance(text, str) or not isinstance(to, str):
        return None
    sender = row.content.get("sender")
    return SmsMessage(row.key, to, text, sender if isinstance(sender, str) else None)


def message_key(*parts: str) -> str:
    """A delivery key from stable parts; long ones are hashed to fit the column."""
    key = ":".join(parts)
    if len(key) <= 160:
        return key
    return f"{parts[0]}:{hashlib.sha256(key.encode()).hexdigest()}"


# inbound texts -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InboundSms:
    """A text a recipient sent us, as the gateway reported it."""

    sender: str
    receiver: str
    text: str
    message_id: str
    at: datetime
    provider: str


@dataclass(slots=True)
class InboundOutcome:
    phone: str
    keyword: Keyword
    action: str  # opted_out, opted_in, help, replied, ignored (+ already_* when repeated)
    lead_ids: list[int] = field(default_factory=list)
    reply: Outgoing | None = None
    activities: list[Activity] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.phone,
            "keyword": self.keyword.value,
            "action": self.action,
            "lead_ids": self.lead_ids,
            "reply": self.reply.to_json() if self.reply is not None else None,
        }


def apply_inbound(
    consents: ConsentStore,
    deliveries: DeliveryStore,
    config: SmsSettings,
    inbound: InboundSms,
    phone: str,
) -> InboundOutcome:
    """Record what an inbound text means; the reply it owes is prepared, not sent."""
    keyword = classify_keyword(inbound.text)
    leads = consents.leads_with_address(Channel.SMS, phone)
    outcome = InboundOutcome(phone, keyword, "ignored", leads)
    if keyword is Keyword.NONE:
        if leads:
            outcome.action = "replied"
            outcome.activities = _replies(deliveries, inbound, phone, leads)
        return outcome
    reply_text: str | None = config.help_message()
    if keyword is Keyword.HELP:
        outcome.action = "help"
    else:
        opt_out = keyword is Keyword.OPT_OUT
        changed = (_opt_out if opt_out else _opt_in)(consents, inbound, phone, leads)
        action = "opted_out" if opt_out else "opted_in"
        outcome.action = action if changed else f"already_{action}"
        reply_text = None
        if changed:
            reply_text = config.opt_out_message() if opt_out else config.opt_in_message()
            name = SMS_OPTED_OUT if opt_out else SMS_OPTED_IN
            outcome.activities = [_activity(lead, name, inbound, phone) for lead in leads]
    outcome.reply = _owed_reply(
        consents, deliveries, config, inbound, phone, reply_text, f"sms_{outcome.action}"
    )
    return outcome


def _owed_reply(
    consents: ConsentStore,
    deliveries: DeliveryStore,
    config: SmsSettings,
    inbound: InboundSms,
    phone: str,
    text: str | None,
    kind: str,
) -> Outgoing | None:
    """The reply's row, keyed on the inbound message. For a repeat (``text`` None) only the
    first reply, if it still waits for its send."""
    key = message_key("sms", "reply", inbound.provider, inbound.message_id)
    if text is None:
        row = deliveries.by_key(key)
        message = stored_message(row) if row is not None and row.status == "queued" else None
        return Outgoing(message, row.id, row.lead_id) if row and message else None
    message = SmsMessage(key=key, to=phone, text=text, sender=config.sender)
    return prepare(consents, deliveries, message, kind, inbound.at, honour_suppression=False)


def _proof(inbound: InboundSms, phone: str, keyword: str) -> dict[str, object]:
    return {
        "keyword": keyword,
        "text": inbound.text,
        "from": phone,
        "inbound_id": inbound.message_id,
        "provider": inbound.provider,
        "at": inbound.at.isoformat(),
    }


def _opt_out(consents: ConsentStore, inbound: InboundSms, phone: str, leads: list[int]) -> bool:
    """Suppress the number and revoke consent; True when anything changed."""
    word = " ".join(inbound.text.split()).upper()
    detail = f"keyword {word} in inbound text {inbound.message_id} at {inbound.at.isoformat()}"
    owner = leads[0] if leads else None
    # Asked first: the answer of suppress() is not reliable on every backend.
    changed = not consents.suppressed(Channel.SMS, [phone])
    consents.suppress(Channel.SMS, phone, "sms_stop", inbound.at, owner, detail)
    return _consent(consents, inbound, phone, leads, ConsentStatus.REVOKED, word) or changed


def _opt_in(consents: ConsentStore, inbound: InboundSms, phone: str, leads: list[int]) -> bool:
    word = " ".join(inbound.text.split()).upper()
    changed = consents.unsuppress(Channel.SMS, phone)
    return _consent(consents, inbound, phone, leads, ConsentStatus.GRANTED, word) or changed


def _consent(
    consents: ConsentStore,
    inbound: InboundSms,
    phone: str,
    leads: list[int],
    status: ConsentStatus,
    word: str,
) -> bool:
    current = consents.current(leads, Channel.SMS)
    rows = [
        ConsentRecord(
            lead,
            Channel.SMS,
            status,
            f"sms:{word.lower()}",
            inbound.at,
            _proof(inbound, phone, word),
        )
        for lead in leads
        if current.get(lead, ConsentStatus.NONE) is not status
    ]
    consents.record(rows)
    return bool(rows)


def _activity(lead: int, name: str, inbound: InboundSms, phone: str, **extra: Any) -> Activity:
    message_id = message_key("sms", "in", inbound.provider, inbound.message_id, str(lead))
    properties = {"text": inbound.text, "from": phone, "to": inbound.receiver, **extra}
    return Activity(lead, name, message_id, inbound.at, properties)


def _replies(
    deliveries: DeliveryStore, inbound: InboundSms, phone: str, leads: list[int]
) -> list[Activity]:
    """SMS Replied for each lead; the latest text sent to the number is marked replied."""
    activities = []
    for lead in leads:
        last = next(
            (
                d
                for d in deliveries.of_lead(lead, 50)
                if d.channel == Channel.SMS.value
                and d.address == phone
                and d.status in ("sent", "delivered")
            ),
            None,
        )
        extra: dict[str, Any] = {}
        if last is not None:
            deliveries.mark_first(last.id, "replied_at", inbound.at)
            extra = {"delivery_id": last.id, "journey": last.journey, "step": last.step}
        activities.append(_activity(lead, SMS_REPLIED, inbound, phone, **extra))
    return activities


# delivery reports --------------------------------------------------------------------------
def apply_report(
    deliveries: DeliveryStore,
    row: DeliveryRecord,
    status: ReportStatus,
    detail: str,
    at: datetime,
) -> list[Activity]:
    """Record what the network said about a text; never moves a delivered text back."""
    if status is ReportStatus.DELIVERED and row.status != "delivered":
        deliveries.set_status(row.id, "delivered", detail, at)
        props = {"delivery_id": row.id, "journey": row.journey, "step": row.step}
        return [Activity(row.lead_id, SMS_DELIVERED, f"delivery:{row.id}:delivered", at, props)]
    if status is ReportStatus.FAILED and row.status in ("queued", "sent"):
        deliveries.set_status(row.id, "failed", detail or "the network refused the text", at)
    elif status is ReportStatus.SENT and row.status == "queued":
        deliveries.set_status(row.id, "sent", detail, at)
    return []


def find_delivery(
    deliveries: DeliveryStore, key: str | None, provider_id: str | None
) -> DeliveryRecord | None:
    """The text a report is about: by our key first, else by the provider's id."""
    found = deliveries.by_key(key) if key else None
    if found is None and provider_id:
        found = deliveries.by_provider_id(Channel.SMS.value, provider_id)
    return found if found is not None and found.channel == Channel.SMS.value else None
