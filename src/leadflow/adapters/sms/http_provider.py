"""A Twilio-style HTTP SMS API as an SmsSender.

``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with the form fields ``To``, ``From``
(or ``MessagingServiceSid``), ``Body`` and ``StatusCallback``, HTTP basic auth with the account
id and token; the JSON answer carries the provider's ``sid`` for the message. 429 and 5xx are
worth another try; any other 4xx is permanent, with the provider's code and message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import httpx

from leadflow.adapters.sms.kannel import encode_key
from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.domain.sms import count_segments
from leadflow.ports import SendReceipt, SmsMessage


class HttpSmsSender:
    """Sends through the provider; ``status_url`` is the app's status route (with its token),
    to which the delivery key is appended."""

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str | None,
        status_url: str | None,
        client: httpx.Client,
        messaging_service_sid: str | None = None,
    ) -> None:
        if not sender and not messaging_service_sid:
            raise ValueError("a sender number or a messaging service id is needed")
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = (account_sid, auth_token)
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.status_url = status_url
        self.client = client

    def form(self, message: SmsMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.text}
        sender = message.sender or self.sender
        if self.messaging_service_sid and not message.sender:
            form["MessagingServiceSid"] = self.messaging_service_sid
        elif sender:
            form["From"] = sender
        if self.status_url:
            joiner = "&" if "?" in self.status_url else "?"
            form["StatusCallback"] = f"{self.status_url}{joiner}key={encode_key(message.key)}"
        return form

    def send(self, message: SmsMessage) -> SendReceipt:
        try:
            answer = self.client.post(self.url, data=self.form(message), auth=self.auth)
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"sms provider: timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"sms provider: cannot reach {self.url}: {exc}") from None
        body = _json(answer)
        if answer.is_success and isinstance(body.get("sid"), str):
            parts = _int(body.get("num_segments")) or max(count_segments(message.text).parts, 1)
            return SendReceipt(
                provider_id=body["sid"], detail=str(body.get("status", "")), parts=parts
            )
        detail = _problem(answer, body)
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TransientDeliveryError(detail)
        raise PermanentDeliveryError(detail)


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _problem(answer: httpx.Response, body: Mapping[str, Any]) -> str:
    code = body.get("code")
    message = body.get("message") or answer.text.strip()[:200] or answer.reason_phrase
    prefix = f"sms provider: HTTP {answer.status_code}"
    return f"{prefix}: error {code}: {message}" if code else f"{prefix}: {message}"


def signature(token: str, url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature of a webhook: base64 HMAC-SHA1 of the URL followed by the
    sorted form fields (names and values concatenated)."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_signature(token: str, url: str, params: Mapping[str, str], given: str) -> bool:
    return hmac.compare_digest(signature(token, url, params), given)
