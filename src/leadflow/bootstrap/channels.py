"""The channels: email (tracking, unsubscribe, bounces, double opt-in) and SMS."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

import httpx
from sqlalchemy import Connection

from leadflow.adapters.db.consent import SqlConsentRepository
from leadflow.adapters.db.deliveries import SqlDeliveryRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.email.capture import CaptureEmailSender
from leadflow.adapters.email.mime import DkimSigner
from leadflow.adapters.email.smtp import SmtpEmailSender
from leadflow.adapters.sms import build_sms_sender
from leadflow.bootstrap.nurture import Nurture
from leadflow.config import Settings
from leadflow.domain.consent import (
    parse_channel,
)
from leadflow.domain.errors import (
    ValidationError,
)
from leadflow.domain.identity import normalize_phone
from leadflow.domain.sms import ReportStatus
from leadflow.ports import (
    Clock,
    DeliveryRecord,
    EmailMessage,
    SendReceipt,
    SmsMessage,
    SmsSender,
)
from leadflow.services import bounces as bounce_service
from leadflow.services import consent as consent_service
from leadflow.services import email_tracking
from leadflow.services import sms as sms_service
from leadflow.services.email import EmailComposer, EmailSettings, email_settings
from leadflow.services.tokens import Tokens, load_secret


class Channels(Nurture):
    """The channels: email (tracking, unsubscribe, bounces, double opt-in) and SMS."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self._email_settings = email_settings(settings.email, settings.config_file)
        self._tokens: Tokens | None = None
        if settings.sms is not None:
            self.sms_config  # noqa: B018  -- a bad sms: section fails at open, not at first send

    # sms -------------------------------------------------------------------------------
    @cached_property
    def sms_config(self) -> sms_service.SmsSettings:
        """The validated ``sms:`` settings (ConfigError naming file, line and key)."""
        return sms_service.sms_settings(self.settings.sms, self.settings.config_file)

    def sms_sender(self, client: httpx.Client) -> SmsSender:
        """The transport the ``sms:`` settings name, over the caller's HTTP client."""
        config = self.sms_config
        return build_sms_sender(config, self.settings.public_url, self.settings.home, client)

    def send_sms(
        self, to: str, text: str, *, key: str | None = None, lead_id: int | None = None
    ) -> sms_service.Outgoing:
        """Send one text now (transactional, not part of a journey); a suppressed number is
        skipped. Recorded in the delivery ledger when a lead has the number."""
        phone = self._sms_phone(to, "to")
        if not text.strip():
            raise ValidationError("text: the message is empty")
        key = key or sms_service.message_key("sms", "send", uuid.uuid4().hex)
        message = SmsMessage(key, phone, text, self.sms_config.sender)
        with self.transaction() as conn:
            out = sms_service.prepare(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), message, "sms_send",
                self.clock.now(), lead_id=lead_id,
            )  # fmt: skip
        return self._sms_deliver(out)

    def sms_inbound(
        self,
        sender: str,
        text: str,
        *,
        receiver: str = "",
        message_id: str | None = None,
        at: datetime | None = None,
        provider: str = "manual",
    ) -> sms_service.InboundOutcome:
        """Handle a text a recipient sent: STOP/START/HELP keywords or a reply (docs/sms.md)."""
        phone = self._sms_phone(sender, "from")
        inbound = sms_service.InboundSms(
            sender, receiver, text, message_id or uuid.uuid4().hex, at or self.clock.now(),
            provider,
        )  # fmt: skip
        with self.transaction() as conn:
            outcome = sms_service.apply_inbound(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), self.sms_config,
                inbound, phone,
            )  # fmt: skip
        if outcome.reply is not None:
            outcome.reply = self._sms_deliver(outcome.reply)
        self.record_activity(outcome.activities)
        return outcome

    def sms_report(
        self,
        status: ReportStatus,
        detail: str = "",
        *,
        key: str | None = None,
        provider_id: str | None = None,
    ) -> DeliveryRecord | None:
        """Record a delivery report (by our key or the provider's id); None if unknown."""
        with self.transaction() as conn:
            repo = SqlDeliveryRepository(conn)
            found = sms_service.find_delivery(repo, key, provider_id)
            row = repo.get(found.id, lock=True) if found is not None else None
            if row is None:
                return None
            activities = sms_service.apply_report(repo, row, status, detail, self.clock.now())
            row = repo.get(row.id)
        self.record_activity(activities)
        return row

    def _sms_phone(self, value: str, name: str) -> str:
        phone = normalize_phone(value, self.settings.default_phone_region)
        if phone is None:
            raise ValidationError(f"{name}: {value!r} is not a valid phone number")
        return phone

    def _sms_deliver(self, out: sms_service.Outgoing) -> sms_service.Outgoing:
        if out.skipped is not None or out.status != "queued":
            return out
        with httpx.Client(timeout=self.sms_config.timeout) as client:
            sender = self.sms_sender(client)
            with self.transaction() as conn:
                repo = SqlDeliveryRepository(conn)
                return sms_service.deliver(repo, sender, out, self.clock.now())

    # email -----------------------------------------------------------------------------
    @property
    def email_settings(self) -> EmailSettings:
        """The validated ``email:`` section of the config (docs/email.md)."""
        return self._email_settings

    @property
    def tokens(self) -> Tokens:
        """Signs the links of messages; the secret survives restarts (leadflow.secret)."""
        if self._tokens is None:
            self._tokens = Tokens(load_secret(self.settings.secret_key, self.settings.home))
        return self._tokens

    @property
    def public_base(self) -> str:
        return (self.settings.public_url or "http://127.0.0.1:8000").rstrip("/")

    def email_composer(self) -> EmailComposer:
        """Renders email deliveries with tracked links (the worker's email composer)."""
        return EmailComposer(self.email_settings, self.templates, self.tokens, self.public_base)

    def email_sender(self) -> SmtpEmailSender | CaptureEmailSender:
        """The configured email transport: SMTP, or a folder of .eml files (capture)."""
        config = self.email_settings
        signer = DkimSigner.from_settings(config.dkim) if config.dkim else None
        if config.transport == "capture":
            return CaptureEmailSender(config.capture_folder, config.id_domain, signer=signer)
        password = os.environ.get(config.password_env, "") if config.password_env else ""
        return SmtpEmailSender(config, password or config.password, signer=signer)

    def _live_lead(self, conn: Connection) -> Callable[[int], int]:
        repo = SqlLeadRepository(conn)
        return lambda lead_id: repo.survivor_of(lead_id) or lead_id

    def track_open(self, token: str, hit: email_tracking.Hit) -> None:
        """Record a pixel hit (a machine's is flagged); InvalidToken or NotFound if bad."""
        with self.transaction() as conn:
            found = email_tracking.record_open(
                SqlDeliveryRepository(conn), self.tokens, token, hit, self.email_settings
            )
        self.record_activity(found)

    def track_click(self, token: str, hit: email_tracking.Hit) -> str | None:
        """Record a click; the link's stored destination (None for the hidden honeypot)."""
        with self.transaction() as conn:
            url, found = email_tracking.record_click(
                SqlDeliveryRepository(conn), self.tokens, token, hit, self.email_settings
            )
        self.record_activity(found)
        return url

    def request_email_opt_in(
        self, lead_id: int, source: str, proof: dict[str, Any] | None = None
    ) -> DeliveryRecord:
        """Double opt-in: record a pending email consent and queue the confirmation email
        (the template ``nurture.double_opt_in_template``, checked first)."""
        template = self.nurture_rules.double_opt_in_template
        self.templates.check(template, "email")
        with self.transaction() as conn:
            live = self._live(conn, lead_id)
            address = SqlLeadRepository(conn).get(live)
            return consent_service.request_opt_in(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), live,
                address.email if address else None, template, source, proof or {},
                self.clock.now(),
            )  # fmt: skip

    def opt_in_target(self, token: str) -> DeliveryRecord:
        with self.engine.connect() as conn:
            return consent_service.opt_in_target(SqlDeliveryRepository(conn), self.tokens, token)

    def confirm_email_opt_in(self, token: str, ip: str | None) -> consent_service.Confirmed:
        """The click on a confirmation link: email consent granted, with the click as proof."""
        with self.transaction() as conn:
            return consent_service.confirm_opt_in(
                SqlConsentRepository(conn), SqlDeliveryRepository(conn), self.tokens, token, ip,
                self.clock.now(), self._live_lead(conn),
            )  # fmt: skip

    def unsubscribe_target(self, token: str) -> DeliveryRecord:
        with self.engine.connect() as conn:
            return email_tracking.unsubscribe_target(
                SqlDeliveryRepository(conn), self.tokens, token
            )

    def unsubscribe(self, token: str, method: str) -> email_tracking.Unsubscribed:
        """Suppress the address of an unsubscribe link at once and revoke email consent."""
        with self.transaction() as conn:
            done = email_tracking.unsubscribe(
                SqlDeliveryRepository(conn), SqlConsentRepository(conn), self.tokens, token,
                method, self.clock.now(), self._live_lead(conn),
            )  # fmt: skip
        self.record_activity(done.activities)
        return done

    def process_bounces(
        self, reports: Sequence[bounce_service.BounceReport]
    ) -> list[bounce_service.BounceOutcome]:
        """Hard bounces and complaints suppress; every report becomes an event."""
        with self.transaction() as conn:
            outcomes, found = bounce_service.apply_reports(
                SqlDeliveryRepository(conn), SqlConsentRepository(conn), reports,
                self.clock.now(), self._live_lead(conn),
            )  # fmt: skip
        self.record_activity(found)
        return outcomes

    def process_bounce(
        self, raw: bytes, where: str = "message"
    ) -> list[bounce_service.BounceOutcome]:
        """A DSN (RFC 3464) or ARF complaint (RFC 5965) message, applied."""
        return self.process_bounces(bounce_service.parse_report(raw, where))

    def preview_email(self, template: str, lead_id: int) -> tuple[EmailMessage, dict[str, Any]]:
        """The message a template makes for a lead, as the worker would send it."""
        lead = self.lead(lead_id)
        now = self.clock.now()
        draft = DeliveryRecord(
            id=0, key=f"preview:{template}:{lead.id}", lead_id=lead.id, channel="email",
            address=lead.email or "lead@example.invalid", journey=None, run_id=None, step=None,
            template=template, variant=None, status="queued", reason="", provider_id=None,
            attempts=0, parts=1, next_attempt_at=None, content={}, created_at=now, updated_at=now,
        )  # fmt: skip
        return self.email_composer().email(draft, lead)

    def is_suppressed(self, channel: str, address: str) -> bool:
        with self.engine.connect() as conn:
            repo = SqlConsentRepository(conn)
            return bool(repo.suppressed(parse_channel(channel), [address]))

    def send_test_email(self, to: str) -> SendReceipt:
        """Send a short message through the configured transport; its answer."""
        at = self.clock.now()
        message = EmailMessage(
            key=f"test:{at:%Y%m%dT%H%M%S%f}",
            to=to,
            from_addr=self.email_settings.sender,
            subject="leadflow test message",
            text=f"This is a test message from leadflow, sent at {at:%Y-%m-%d %H:%M:%S} UTC.\n",
        )
        sender = self.email_sender()
        try:
            return sender.send(message)
        finally:
            sender.close()
