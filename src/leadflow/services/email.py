"""The email channel: its settings, and the composer that turns a delivery into a message.

The composer renders the delivery's template, rewrites every web link to a signed click
link on leadflow (the destination is kept in the delivery's stored content, never read from
a request), adds an open pixel, a hidden honeypot link for link scanners, a visible
unsubscribe link and the RFC 8058 one-click unsubscribe headers.
"""

from __future__ import annotations

import html as htmlmod
import re
from dataclasses import dataclass
from email.utils import formataddr
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from leadflow.domain.errors import ConfigError, ValidationError
from leadflow.ports import DeliveryRecord, EmailMessage, LeadView
from leadflow.services.templates import Templates
from leadflow.services.tokens import Purpose, Tokens, digest

HONEYPOT_INDEX = 0xFFFF  # the click index of the hidden link only machines follow
MAX_LINKS = HONEYPOT_INDEX - 1
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


# settings ----------------------------------------------------------------------------------
class DkimSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selector: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    key_file: Path


class EmailSettings(BaseModel):
    """The ``email:`` section of leadflow.yaml (docs/email.md)."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["smtp", "capture"] = "smtp"
    capture_folder: Path = Path("outbox")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str = ""
    password: str = ""
    password_env: str = ""
    timeout: float = Field(default=30.0, gt=0)
    from_address: str = "leadflow@localhost"
    from_name: str = ""
    reply_to: str = ""
    unsubscribe_mailto: str = ""
    message_id_domain: str = ""
    dkim: DkimSettings | None = None
    machine_seconds: float = Field(default=10.0, ge=0)
    scanner_user_agents: list[str] = Field(default_factory=list)

    @field_validator("from_address", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _address(cls, value: str) -> str:
        if value and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @property
    def smtp_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def id_domain(self) -> str:
        """The right-hand side of the Message-IDs leadflow makes."""
        return self.message_id_domain or self.from_address.rsplit("@", 1)[-1]

    @property
    def sender(self) -> str:
        return (
            formataddr((self.from_name, self.from_address))
            if self.from_name
            else (self.from_address)
        )


def email_settings(raw: dict[str, Any] | None, config_file: Path) -> EmailSettings:
    """The validated ``email:`` section; ConfigError naming the file, line and key."""
    try:
        found = EmailSettings.model_validate(raw or {})
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        keys = ["email", *(str(p) for p in error["loc"])]
        line = yaml_line(config_file, keys)
        where = f"{config_file}:{line}" if line else str(config_file)
        raise ConfigError(f"{where}: key {'.'.join(keys)!r}: {error['msg']}") from None
    if found.dkim is not None and not found.dkim.key_file.is_absolute():
        dkim = found.dkim.model_copy(update={"key_file": config_file.parent / found.dkim.key_file})
        found = found.model_copy(update={"dkim": dkim})
    if not found.capture_folder.is_absolute():
        found = found.model_copy(
            update={"capture_folder": config_file.parent / found.capture_folder}
        )
    return found


def yaml_line(path: Path, keys: list[str]) -> int | None:
    """The 1-based line of the deepest of ``keys`` found in the YAML file, if any."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == key), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


# Message-IDs --------------------------------------------------------------------------------
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/?^_`{|}~]")


def message_id_for(key: str, domain: str) -> str:
    """``<KEY@domain>``: stable for a delivery key, so a resent message is the same one.
    Characters not allowed in a Message-ID (and '.', '=') are written as ``=XX``."""
    left = "".join(
        ch if _ATEXT.fullmatch(ch) else "".join(f"={b:02X}" for b in ch.encode()) for ch in key
    )
    return f"<{left}@{domain}>"


def key_of_message_id(message_id: str) -> str | None:
    """The delivery key a Message-ID made by :func:`message_id_for` holds, else None."""
    inner = message_id.strip().removeprefix("<").removesuffix(">")
    if "@" not in inner:
        return None
    left = inner.rsplit("@", 1)[0]
    try:
        raw = re.sub(rb"=([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), left.encode())
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


# composing ---------------------------------------------------------------------------------
_HREF = re.compile(r"""(<a(?:rea)?\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.I)
_BARE_URL = re.compile(r"""https?://[^\s<>"'\]]+""")
_TRAILING = ".,;:!?)"
_BODY_END = re.compile(r"</body\s*>", re.I)


@dataclass
class _Links:
    """The original destinations, in order of first appearance; a URL keeps one index."""

    skip_prefix: str
    urls: list[str]

    def index(self, url: str) -> int | None:
        if url.startswith(self.skip_prefix):
            return None
        if url not in self.urls:
            if len(self.urls) >= MAX_LINKS:
                raise ValidationError(f"email: more than {MAX_LINKS} links")
            self.urls.append(url)
        return self.urls.index(url)


class EmailComposer:
    """Turns a queued email delivery and its template context into an EmailMessage."""

    def __init__(
        self, settings: EmailSettings, templates: Templates, tokens: Tokens, public_url: str
    ) -> None:
        self.settings = settings
        self.templates = templates
        self.tokens = tokens
        self.public_url = public_url.rstrip("/")

    def urls(self, delivery_id: int) -> dict[str, str]:
        base, make = self.public_url, self.tokens.make
        return {
            "open": f"{base}/o/{make(Purpose.OPEN, delivery_id)}.gif",
            "unsubscribe": f"{base}/u/{make(Purpose.UNSUBSCRIBE, delivery_id)}",
            "honeypot": f"{base}/c/{make(Purpose.CLICK, delivery_id, HONEYPOT_INDEX)}",
            "confirm": f"{base}/confirm/{make(Purpose.CONFIRM, delivery_id)}",
        }

    def click_url(self, delivery_id: int, index: int) -> str:
        return f"{self.public_url}/c/{self.tokens.make(Purpose.CLICK, delivery_id, index)}"

    def compose(
        self, delivery: DeliveryRecord, context: dict[str, Any]
    ) -> tuple[EmailMessage, dict[str, Any]]:
        """The message to hand to the transport and the content to store on the delivery:
        subject, the original link URLs by index, and fingerprints of the parts sent."""
        if not delivery.address:
            raise ValidationError(f"delivery {delivery.id}: no email address")
        if not delivery.template:
            raise ValidationError(f"delivery {delivery.id}: no template")
        urls = self.urls(delivery.id)
        sender = {"name": self.settings.from_name, "address": self.settings.from_address}
        full = {
            **context,
            "unsubscribe_url": urls["unsubscribe"],
            "confirm_url": urls["confirm"],
            "sender": sender,
        }
        rendered = self.templates.render_email(delivery.template, full)
        links = _Links(f"{self.public_url}/", [])
        html = None
        if rendered.html is not None:
            html = self._html(rendered.html, delivery.id, links, urls)
        text = self._text(rendered.text, delivery.id, links, urls["unsubscribe"])
        message = EmailMessage(
            key=delivery.key,
            to=delivery.address,
            from_addr=self.settings.sender,
            subject=rendered.subject,
            text=text,
            html=html,
            headers=self.headers(urls["unsubscribe"]),
        )
        content = {
            "subject": rendered.subject,
            "links": links.urls,
            "text_sha256": digest(text),
            "html_sha256": digest(html) if html is not None else None,
            "message_id": message_id_for(delivery.key, self.settings.id_domain),
        }
        return message, content

    def email(
        self, delivery: DeliveryRecord, lead: LeadView
    ) -> tuple[EmailMessage, dict[str, Any]]:
        """:meth:`compose` with the lead's variables and the delivery's offer, if any."""
        extra: dict[str, Any] = {}
        offer = delivery.content.get("offer")
        if isinstance(offer, dict):
            extra["offer"] = offer
        context = self.templates.context_for(lead, lead.account, extra)
        return self.compose(delivery, context)

    def headers(self, unsubscribe_url: str) -> dict[str, str]:
        targets = [f"<{unsubscribe_url}>"]
        if self.settings.unsubscribe_mailto:
            targets.append(f"<mailto:{self.settings.unsubscribe_mailto}?subject=unsubscribe>")
        headers = {
            "List-Unsubscribe": ", ".join(targets),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        if self.settings.reply_to:
            headers["Reply-To"] = self.settings.reply_to
        return headers

    def _html(self, body: str, delivery_id: int, links: _Links, urls: dict[str, str]) -> str:
        def rewrite(match: re.Match[str]) -> str:
            original = htmlmod.unescape(match.group(3))
            index = links.index(original)
            if index is None:
                return match.group(0)
            quote = match.group(2)
            return f"{match.group(1)}{quote}{self.click_url(delivery_id, index)}{quote}"

        body = _HREF.sub(rewrite, body)
        extra = ""
        if urls["unsubscribe"] not in body:
            extra += (
                '<p style="font-size:12px;color:#666">'
                f'<a href="{urls["unsubscribe"]}">Unsubscribe</a></p>'
            )
        extra += (
            f'<a href="{urls["honeypot"]}" style="display:none" aria-hidden="true" '
            'tabindex="-1"></a>'
            f'<img src="{urls["open"]}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
        ends = list(_BODY_END.finditer(body))
        if ends:
            at = ends[-1].start()
            return body[:at] + extra + body[at:]
        return body + extra

    def _text(self, body: str, delivery_id: int, links: _Links, unsubscribe_url: str) -> str:
        def rewrite(match: re.Match[str]) -> str:
            url = match.group(0)
            tail = ""
            while url and url[-1] in _TRAILING:
                url, tail = url[:-1], url[-1] + tail
            index = links.index(url)
            if index is None:
                return match.group(0)
            return self.click_url(delivery_id, index) + tail

        body = _BARE_URL.sub(rewrite, body)
        if unsubscribe_url not in body:
            body = body.rstrip("\n") + f"\n\n--\nUnsubscribe: {unsubscribe_url}\n"
        return body
