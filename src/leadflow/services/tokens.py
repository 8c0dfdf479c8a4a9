"""Signed, opaque, purpose-bound tokens for the links in leadflow's messages.

A token names a delivery and, for a click, the index of the link in that delivery's stored
content. It is built like a deterministic authenticated cipher (SIV): a tag is the
HMAC-SHA256 of the purpose and the payload, and the payload is hidden by XOR with a key
stream derived from the tag. A token therefore reads as random, cannot be forged or edited
without the secret, and a token made for one purpose (open, click, unsubscribe) is refused
for another. The same inputs always give the same token, so a resent message carries the
same links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from leadflow.domain.errors import ValidationError

SECRET_FILE = "leadflow.secret"  # noqa: S105 (a file name, not a secret)
_TAG_BYTES = 12
_PAYLOAD = struct.Struct(">QH")  # delivery id, link index


class Purpose(StrEnum):
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    CONFIRM = "confirm"  # double opt-in


class InvalidToken(ValidationError):
    """A token that was not made by this installation for this purpose."""

    code = "invalid_token"


@dataclass(frozen=True, slots=True)
class TokenData:
    delivery_id: int
    index: int = 0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """Makes and reads tokens with one secret (see :func:`load_secret`)."""

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValidationError("secret_key: must be at least 16 characters long")
        self._mac_key = hmac.digest(key, b"leadflow token mac", "sha256")
        self._stream_key = hmac.digest(key, b"leadflow token stream", "sha256")

    def _tag(self, purpose: Purpose, payload: bytes) -> bytes:
        return hmac.digest(self._mac_key, purpose.value.encode() + b"\0" + payload, "sha256")[
            :_TAG_BYTES
        ]

    def _stream(self, tag: bytes) -> bytes:
        return hmac.digest(self._stream_key, tag, "sha256")[: _PAYLOAD.size]

    def make(self, purpose: Purpose, delivery_id: int, index: int = 0) -> str:
        """The URL-safe token naming ``delivery_id`` (and a link ``index``) for ``purpose``."""
        payload = _PAYLOAD.pack(delivery_id, index)
        tag = self._tag(purpose, payload)
        hidden = bytes(a ^ b for a, b in zip(payload, self._stream(tag), strict=True))
        return _b64(tag + hidden)

    def read(self, purpose: Purpose, token: str) -> TokenData:
        """What the token names; InvalidToken when forged, edited or made for another use."""
        try:
            raw = _unb64(token)
        except (ValueError, UnicodeEncodeError):
            raise InvalidToken("token: not a leadflow link") from None
        if len(raw) != _TAG_BYTES + _PAYLOAD.size or _b64(raw) != token:  # one spelling only
            raise InvalidToken("token: not a leadflow link")
        tag, hidden = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
        payload = bytes(a ^ b for a, b in zip(hidden, self._stream(tag), strict=True))
        if not hmac.compare_digest(tag, self._tag(purpose, payload)):
            raise InvalidToken(f"token: not a valid {purpose.value} link")
        delivery_id, index = _PAYLOAD.unpack(payload)
        return TokenData(delivery_id, index)


def load_secret(configured: str, home: Path) -> str:
    """The signing secret: ``secret_key`` when set, else the one kept in ``leadflow.secret``
    in the home folder, made (mode 0600) the first time it is needed."""
    if configured:
        return configured
    path = home / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    fresh = secrets.token_urlsafe(32)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read_secret(path)
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(fresh + "\n")
    return fresh


def _read_secret(path: Path) -> str:
    text = path.read_text(encoding="ascii").strip()
    if len(text) < 16:
        raise ValidationError(f"{path}: the secret is too short (16 characters at least)")
    return text


def digest(text: str) -> str:
    """A short fingerprint of sent content, stored instead of the content itself."""
    return hashlib.sha256(text.encode()).hexdigest()
