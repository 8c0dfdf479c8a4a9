"""The routes SMS gateways call: inbound texts and delivery reports, Kannel and HTTP API.

Every route requires ``token=<sms.webhook_token>`` in the query string. Kannel's inbound
route answers 200 with an empty body, so Kannel sends no automatic reply; the HTTP
provider's inbound route answers an empty TwiML ``<Response/>`` for the same reason.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from leadflow.adapters.sms import decode_key, secret
from leadflow.adapters.sms.http_provider import valid_signature
from leadflow.api.state import leadflow_of
from leadflow.bootstrap import Leadflow
from leadflow.domain.errors import AuthenticationError, LeadflowError
from leadflow.domain.sms import http_report, kannel_report

log = logging.getLogger("leadflow.sms")
router = APIRouter(prefix="/sms", tags=["sms"])
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_FORM = 64 * 1024


def _check_token(leadflow: Leadflow, given: str) -> None:
    config = leadflow.sms_config
    expected = secret(config.webhook_token, config.webhook_token_env, "sms.webhook_token")
    if not expected:
        raise AuthenticationError("sms.webhook_token is not set: the SMS routes are closed")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationError("missing or wrong SMS webhook token")


def _moment(value: str | None) -> datetime | None:
    """Kannel's %T (seconds since the epoch) as a time; None when absent or not a number."""
    try:
        return datetime.fromtimestamp(int(value or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _inbound(
    leadflow: Leadflow,
    sender: str,
    text: str,
    receiver: str,
    message_id: str | None,
    at: datetime | None,
    provider: str,
) -> None:
    try:
        outcome = leadflow.sms_inbound(
            sender, text, receiver=receiver, message_id=message_id, at=at, provider=provider
        )
    except LeadflowError as exc:  # a gateway cannot fix a bad number by trying again
        log.warning("inbound text from %r ignored: %s", sender, exc.message)
        return
    log.info("inbound text from %s: %s", outcome.phone, outcome.action)


Token = Annotated[str, Query(description="The shared secret sms.webhook_token.")]


@router.get("/kannel/inbound", summary="Kannel get-url: an inbound text (empty answer)")
def kannel_inbound(
    request: Request,
    token: Token = "",
    sender: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    text: str = "",
    time: str | None = None,
    id: str | None = None,
) -> Response:
    leadflow = leadflow_of(request)
    _check_token(leadflow, token)
    _inbound(leadflow, sender, text, to, id or None, _moment(time), "kannel")
    return Response(status_code=200)


@router.get("/kannel/dlr", summary="Kannel dlr-url: a delivery report")
def kannel_dlr(
    request: Request,
    token: Token = "",
    key: str = "",
    status: int = 0,
    answer: str = "",
) -> Response:
    leadflow = leadflow_of(request)
    _check_token(leadflow, token)
    found = leadflow.sms_report(kannel_report(status), answer.strip(), key=decode_key(key))
    if found is None:
        log.warning("delivery report %s for an unknown text %r", status, key)
    return Response(status_code=200)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _check_signature(leadflow: Leadflow, request: Request, form: dict[str, str]) -> None:
    http = leadflow.sms_config.http
    if http is None or not http.verify_signature:
        return
    token = secret(http.auth_token, http.auth_token_env, "sms.http.auth_token")
    given = request.headers.get("x-twilio-signature", "")
    if not valid_signature(token, str(request.url), form, given):
        raise AuthenticationError("the X-Twilio-Signature of the request does not match")


@router.post("/http/inbound", summary="HTTP provider: an inbound text (empty TwiML answer)")
async def http_inbound(request: Request, token: Token = "") -> Response:
    leadflow = leadflow_of(request)
    _check_token(leadflow, token)
    form = await _form(request)
    _check_signature(leadflow, request, form)
    await run_in_threadpool(
        _inbound,
        leadflow,
        form.get("From", ""),
        form.get("Body", ""),
        form.get("To", ""),
        form.get("MessageSid") or None,
        None,
        "http",
    )
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/http/status", summary="HTTP provider: a status callback")
async def http_status(request: Request, token: Token = "", key: str = "") -> Response:
    leadflow = leadflow_of(request)
    _check_token(leadflow, token)
    form = await _form(request)
    _check_signature(leadflow, request, form)
    status = form.get("MessageStatus", "")
    code = form.get("ErrorCode", "")
    detail = f"{status}: error {code}" if code else status
    found = await run_in_threadpool(
        lambda: leadflow.sms_report(
            http_report(status),
            detail,
            key=decode_key(key) or None,
            provider_id=form.get("MessageSid") or None,
        )
    )
    if found is None:
        log.warning("status %r for an unknown text %r", status, form.get("MessageSid"))
    return Response(status_code=204)
