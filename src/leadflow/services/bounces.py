"""Bounces and complaints: delivery status notifications (RFC 3464) and abuse reports
(ARF, RFC 5965), turned into suppressions, delivery statuses and events.

A hard bounce (Status 5.x.x) or a complaint suppresses the address and marks the delivery
``bounced``; a complaint also revokes the lead's email consent. A soft bounce (4.x.x, or
Action: delayed) is only recorded as an ``Email Bounced`` event with ``kind = soft``: it is
no unsubscribe and suppresses nothing; leadflow keeps no soft-bounce threshold, so a mailbox
that stays full keeps its consent until a server answers with a permanent failure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any, Literal

from leadflow.domain.consent import Channel, ConsentRecord, ConsentStatus
from leadflow.domain.errors import ValidationError
from leadflow.ports import ConsentRepository, DeliveryRecord, DeliveryRepository
from leadflow.services.activity import EMAIL_BOUNCED, EMAIL_COMPLAINED, Activity
from leadflow.services.email import key_of_message_id

Kind = Literal["hard", "soft", "complaint"]
KINDS = ("hard", "soft", "complaint")
_ADDRESS = re.compile(r"[^@\s<>;]+@[^@\s<>;]+")


@dataclass(frozen=True, slots=True)
class BounceReport:
    """One recipient's bounce or complaint."""

    address: str
    kind: Kind
    status: str = ""
    diagnostic: str = ""
    message_id: str | None = None


# parsing --------------------------------------------------------------------------------------
def parse_report(raw: bytes, where: str = "message") -> list[BounceReport]:
    """The bounces or complaint a DSN or ARF message reports; ValidationError otherwise."""
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        raise ValidationError(f"{where}: not a bounce or complaint report (multipart/report)")
    report_type = (message.get_param("report-type") or "").__str__().lower()
    original = _original_message_id(message)
    if report_type == "delivery-status":
        found = _dsn(message, original)
    elif report_type == "feedback-report":
        found = _arf(message, original)
    else:
        raise ValidationError(
            f"{where}: report-type {report_type!r} is not delivery-status or feedback-report"
        )
    if not found:
        raise ValidationError(f"{where}: the report names no failed recipient")
    return found


def _parts(message: Message, content_type: str) -> list[Message]:
    return [p for p in message.walk() if p.get_content_type() == content_type]


def _original_message_id(message: Message) -> str | None:
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif kind == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                headers = BytesHeaderParser().parsebytes(data)
                if headers.get("Message-ID"):
                    return str(headers["Message-ID"]).strip()
    return None


def _field_address(value: str | None) -> str | None:
    if not value:
        return None
    found = _ADDRESS.search(value.split(";", 1)[-1])
    return found.group(0).strip().lower() if found else None


def _dsn(message: Message, original: str | None) -> list[BounceReport]:
    reports: list[BounceReport] = []
    for part in _parts(message, "message/delivery-status"):
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        head = blocks[0] if blocks else None
        envelope_id = original
        if isinstance(head, Message) and not envelope_id:
            envelope_id = head.get("Original-Envelope-Id")
        for block in blocks[1:]:
            if not isinstance(block, Message):
                continue
            report = _dsn_recipient(block, envelope_id)
            if report is not None:
                reports.append(report)
    return reports


def _dsn_recipient(block: Message, message_id: str | None) -> BounceReport | None:
    address = _field_address(block.get("Final-Recipient")) or _field_address(
        block.get("Original-Recipient")
    )
    action = str(block.get("Action", "")).strip().lower()
    status = str(block.get("Status", "")).strip()
    if address is None or action not in ("failed", "delayed"):
        return None  # delivered, relayed, expanded: nothing went wrong
    kind: Kind = "hard" if action == "failed" and status.startswith("5") else "soft"
    diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
    return BounceReport(address, kind, status, diagnostic, message_id)


def _arf(message: Message, original: str | None) -> list[BounceReport]:
    for part in _parts(message, "message/feedback-report"):
        fields = _feedback_fields(part)
        address = _field_address(fields.get("original-rcpt-to")) or _original_to(message)
        if address is None:
            continue
        feedback = fields.get("feedback-type", "abuse").strip().lower()
        return [BounceReport(address, "complaint", "", f"feedback-type: {feedback}", original)]
    return []


def _feedback_fields(part: Message) -> dict[str, str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return {k.lower(): str(v) for k, v in payload[0].items()}
    text = payload if isinstance(payload, str) else ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    return fields


def _original_to(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return _field_address(str(inner.get("To", "")))
        if part.get_content_type() == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return _field_address(str(BytesHeaderParser().parsebytes(data).get("To", "")))
    return None


def report_from_json(data: Any) -> BounceReport:
    """``{address, kind: hard|soft|complaint, diagnostic}`` -> a report; errors name the field."""
    if not isinstance(data, dict):
        raise ValidationError("body: expected a JSON object {address, kind, diagnostic}")
    address = data.get("address")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address.strip()):
        raise ValidationError(f"address: {address!r} is not an email address")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValidationError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    diagnostic = data.get("diagnostic", "")
    if not isinstance(diagnostic, str):
        raise ValidationError("diagnostic: expected text")
    message_id = data.get("message_id")
    return BounceReport(
        address.strip().lower(),
        kind,
        "",
        diagnostic,
        message_id if isinstance(message_id, str) else None,
    )


# applying -------------------------------------------------------------------------------------
BounceDeliveries = DeliveryRepository


BounceConsents = ConsentRepository


@dataclass(frozen=True, slots=True)
class BounceOutcome:
    report: BounceReport
    delivery_id: int | None
    lead_id: int | None
    suppressed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.report.address,
            "kind": self.report.kind,
            "status": self.report.status,
            "diagnostic": self.report.diagnostic,
            "delivery_id": self.delivery_id,
            "lead_id": self.lead_id,
            "suppressed": self.suppressed,
        }


def find_delivery(
    deliveries: BounceDeliveries, consents: BounceConsents, report: BounceReport
) -> DeliveryRecord | None:
    """The delivery a report is about: by Message-ID, else the address's latest email."""
    if report.message_id:
        found = deliveries.by_provider_id(Channel.EMAIL.value, report.message_id)
        key = key_of_message_id(report.message_id)
        if found is None and key:
            found = deliveries.by_key(key)
        if found is not None and found.channel == Channel.EMAIL.value:
            return found
    for lead_id in consents.leads_with_address(Channel.EMAIL, report.address):
        for delivery in deliveries.of_lead(lead_id, 20):
            same = (delivery.address or "").lower() == report.address
            if delivery.channel == Channel.EMAIL.value and same:
                return delivery
    return None


def apply_reports(
    deliveries: BounceDeliveries,
    consents: BounceConsents,
    reports: Sequence[BounceReport],
    at: datetime,
    live_lead: Callable[[int], int],
) -> tuple[list[BounceOutcome], list[Activity]]:
    """Suppress, mark and record each report; the events to file after the commit."""
    outcomes: list[BounceOutcome] = []
    activities: list[Activity] = []
    for report in reports:
        delivery = find_delivery(deliveries, consents, report)
        owners = consents.leads_with_address(Channel.EMAIL, report.address)
        lead_id = live_lead(delivery.lead_id) if delivery else (owners[0] if owners else None)
        suppressed = False
        if report.kind != "soft":
            suppressed = _suppress(deliveries, consents, report, delivery, lead_id, at)
        delivery_id = delivery.id if delivery else None
        outcomes.append(BounceOutcome(report, delivery_id, lead_id, suppressed))
        if lead_id is not None:
            activities.append(_activity(report, delivery, lead_id, at))
    return outcomes, activities


def _suppress(
    deliveries: BounceDeliveries,
    consents: BounceConsents,
    report: BounceReport,
    delivery: DeliveryRecord | None,
    lead_id: int | None,
    at: datetime,
) -> bool:
    """A hard bounce or complaint: suppress, mark the delivery; a complaint revokes consent.
    True when the address was not suppressed before."""
    address = delivery.address if delivery and delivery.address else report.address
    reason = "hard_bounce" if report.kind == "hard" else "complaint"
    detail = report.diagnostic or report.status
    # asked first: the repository's own answer is unreliable on PostgreSQL
    known = bool(consents.suppressed(Channel.EMAIL, [address]))
    added = not known and consents.suppress(Channel.EMAIL, address, reason, at, lead_id, detail)
    if delivery is not None:
        deliveries.set_status(delivery.id, "bounced", f"{reason}: {detail}".strip(), at)
    if report.kind == "complaint" and lead_id is not None and added:
        proof: dict[str, object] = {
            "delivery_id": delivery.id if delivery else None,
            "method": "complaint",
        }
        revoked = ConsentStatus.REVOKED
        consents.record([ConsentRecord(lead_id, Channel.EMAIL, revoked, "complaint", at, proof)])
    return added


def _activity(
    report: BounceReport, delivery: DeliveryRecord | None, lead_id: int, at: datetime
) -> Activity:
    fingerprint = hashlib.sha256(
        f"{report.address}|{report.kind}|{report.status}|{report.message_id}|{report.diagnostic}".encode()
    ).hexdigest()[:16]
    if delivery is not None:
        tail = {"hard": "bounce", "complaint": "complaint"}.get(report.kind, f"soft:{fingerprint}")
        message_id = f"delivery:{delivery.id}:{tail}"
    else:
        message_id = f"bounce:{fingerprint}"
    props: dict[str, Any] = {"kind": report.kind, "address": report.address}
    props.update({"status": report.status} if report.status else {})
    props.update({"diagnostic": report.diagnostic} if report.diagnostic else {})
    props.update({"delivery_id": delivery.id} if delivery is not None else {})
    name = EMAIL_COMPLAINED if report.kind == "complaint" else EMAIL_BOUNCED
    return Activity(lead_id=lead_id, name=name, message_id=message_id, at=at, properties=props)
