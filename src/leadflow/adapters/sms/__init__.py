"""SMS transports: Kannel, a Twilio-style HTTP API, and a capture file for demos."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from leadflow.adapters.sms.capture import CaptureSmsSender
from leadflow.adapters.sms.http_provider import HttpSmsSender
from leadflow.adapters.sms.kannel import KannelSmsSender, decode_key, encode_key
from leadflow.domain.errors import ConfigError
from leadflow.ports import SmsSender
from leadflow.services.sms import SmsSettings

__all__ = [
    "CaptureSmsSender",
    "HttpSmsSender",
    "KannelSmsSender",
    "build_sms_sender",
    "callback_url",
    "decode_key",
    "encode_key",
    "secret",
]


def secret(value: str, env: str, name: str) -> str:
    """A secret given in the file or, when ``env`` names one, in an environment variable."""
    if env:
        found = os.environ.get(env, "")
        if not found:
            raise ConfigError(f"{name}_env: the environment variable {env} is not set")
        return found
    return value


def callback_url(config: SmsSettings, public_url: str, route: str) -> str | None:
    """The app's route as the gateway reaches it, with the webhook token; None when no base
    address or token is configured (no reports are asked for then)."""
    base = (config.callback_url or public_url).rstrip("/")
    token = secret(config.webhook_token, config.webhook_token_env, "sms.webhook_token")
    if not base or not token:
        return None
    return str(httpx.URL(f"{base}{route}", params={"token": token}))


def build_sms_sender(
    config: SmsSettings, public_url: str, home: Path, client: httpx.Client
) -> SmsSender:
    """The transport the ``sms:`` settings name."""
    if config.provider == "kannel" and config.kannel is not None:
        k = config.kannel
        return KannelSmsSender(
            k.url,
            k.username,
            secret(k.password, k.password_env, "sms.kannel.password"),
            config.sender,
            callback_url(config, public_url, "/sms/kannel/dlr"),
            client,
        )
    if config.provider == "http" and config.http is not None:
        h = config.http
        return HttpSmsSender(
            h.base_url,
            h.account_sid,
            secret(h.auth_token, h.auth_token_env, "sms.http.auth_token"),
            config.sender,
            callback_url(config, public_url, "/sms/http/status"),
            client,
            h.messaging_service_sid,
        )
    return CaptureSmsSender(home / config.capture.file, config.sender)
