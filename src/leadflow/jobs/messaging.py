"""The worker's composer and transports, built from the ``email:`` and ``sms:`` settings."""

from __future__ import annotations

from typing import Any

import httpx

from leadflow.bootstrap import Leadflow
from leadflow.domain.sms import count_segments
from leadflow.jobs.nurture import Messaging
from leadflow.ports import DeliveryRecord, EmailMessage, LeadView, SmsMessage
from leadflow.services.email import EmailComposer
from leadflow.services.templates import Templates


class LeadflowComposer:
    """Email through the email composer (tracked links, one-click unsubscribe); SMS through
    the SMS templates, with the lead's variables and the delivery's offer."""

    def __init__(self, email: EmailComposer, templates: Templates, sender: str | None) -> None:
        self.email_composer = email
        self.templates = templates
        self.sender = sender

    def email(
        self, delivery: DeliveryRecord, lead: LeadView
    ) -> tuple[EmailMessage, dict[str, Any]]:
        return self.email_composer.email(delivery, lead)

    def sms(self, delivery: DeliveryRecord, lead: LeadView) -> tuple[SmsMessage, dict[str, Any]]:
        extra: dict[str, Any] = {}
        offer = delivery.content.get("offer")
        if isinstance(offer, dict):
            extra["offer"] = offer
        context = self.templates.context_for(lead, lead.account, extra)
        text = self.templates.render_sms(delivery.template or "", context)
        count = count_segments(text)
        to = delivery.address or lead.phone or ""
        message = SmsMessage(delivery.key, to, text, self.sender)
        return message, {"text": text, "encoding": str(count.encoding), "parts": count.parts}


def messaging_for(leadflow: Leadflow, client: httpx.Client) -> Messaging:
    """The configured channels; a channel with no section in leadflow.yaml has no transport
    (its messages fail with that reason instead of waiting for a server that is not there)."""
    settings = leadflow.settings
    sender = leadflow.sms_config.sender if settings.sms is not None else None
    composer = LeadflowComposer(leadflow.email_composer(), leadflow.templates, sender)
    email = leadflow.email_sender() if settings.email is not None else None
    sms = leadflow.sms_sender(client) if settings.sms is not None else None
    return Messaging(composer, email, sms)
