"""Kannel's HTTP interface (``/cgi-bin/sendsms`` of smsbox) as an SmsSender.

Kannel answers 202 with a body starting ``0:`` (accepted) or ``3:`` (queued for later); 503
when it cannot take the message now; 4xx when the request is wrong (bad credentials, a
number it refuses). Delivery reports come back on ``dlr-url``, which carries the delivery's
own key, so a report finds its delivery even before the send was recorded.
"""

from __future__ import annotations

import base64
import re

import httpx

from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.domain.sms import Encoding, count_segments
from leadflow.ports import SendReceipt, SmsMessage

# Report every state: 1 delivered, 2 failed, 4 buffered, 8 at the SMSC, 16 rejected by it.
DLR_MASK = 31
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_:~-]+")
_ENCODED = "b64."


def encode_key(key: str) -> str:
    """The delivery key as it travels in a URL: as is when plain, else base64url."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    return _ENCODED + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_key(value: str) -> str:
    if not value.startswith(_ENCODED):
        return value
    data = value[len(_ENCODED) :]
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return value


class KannelSmsSender:
    """Sends through a Kannel smsbox; ``dlr_url`` is the app's report route (with its
    token), to which the key and Kannel's escape codes are appended."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        sender: str | None,
        dlr_url: str | None,
        client: httpx.Client,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.sender = sender
        self.dlr_url = dlr_url
        self.client = client

    def report_url(self, key: str) -> str | None:
        if not self.dlr_url:
            return None
        joiner = "&" if "?" in self.dlr_url else "?"
        return (
            f"{self.dlr_url}{joiner}key={encode_key(key)}&status=%d&answer=%A&time=%T&to=%p&from=%P"
        )

    def params(self, message: SmsMessage) -> dict[str, str]:
        count = count_segments(message.text)
        params = {
            "username": self.username,
            "password": self.password,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            "coding": "0" if count.encoding is Encoding.GSM7 else "2",
            # One part more than counted: the gateway's split must never truncate the text.
            "max-messages": str(max(count.parts, 1) + 1),
        }
        sender = message.sender or self.sender
        if sender:
            params["from"] = sender
        report = self.report_url(message.key)
        if report:
            params["dlr-mask"] = str(DLR_MASK)
            params["dlr-url"] = report
        return params

    def send(self, message: SmsMessage) -> SendReceipt:
        try:
            answer = self.client.get(
                f"{self.base_url}/cgi-bin/sendsms", params=self.params(message)
            )
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"kannel: timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"kannel: cannot reach {self.base_url}: {exc}") from None
        body = answer.text.strip()
        if answer.status_code in (200, 202) and body[:2] in ("0:", "3:"):
            parts = max(count_segments(message.text).parts, 1)
            return SendReceipt(provider_id=message.key, detail=body, parts=parts)
        detail = f"kannel: HTTP {answer.status_code}: {body or answer.reason_phrase}"
        if answer.status_code == 503 or answer.status_code >= 500:
            raise TransientDeliveryError(detail)
        raise PermanentDeliveryError(detail)
