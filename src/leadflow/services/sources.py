"""Creating and finding sources."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime

from leadflow.domain.errors import Conflict, ValidationError
from leadflow.ports import SourceRecord, SourceRepository

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}$")


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


def create_source(
    repo: SourceRepository,
    name: str,
    at: datetime,
    make_key: Callable[[], str] = new_write_key,
) -> SourceRecord:
    name = name.strip()
    if not _NAME.match(name):
        raise ValidationError(
            f"source name {name!r}: use 1-100 letters, digits, spaces, '_', '-' or '.'"
        )
    if repo.by_name(name) is not None:
        raise Conflict(f"a source named {name!r} already exists")
    return repo.add(name, make_key(), at)


def ensure_source(repo: SourceRepository, name: str, at: datetime) -> SourceRecord:
    """The source of that name, created when it does not exist yet."""
    return repo.by_name(name) or create_source(repo, name, at)
