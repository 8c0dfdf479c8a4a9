"""Dashboard users: password hashing, roles and what each role may do, browser sessions.

Passwords are hashed with scrypt (RFC 7914, from the standard library) under a random salt;
the stored form names its parameters, so they can be raised later without breaking old hashes.
A browser session is a random token in an HttpOnly cookie; the store keeps only its SHA-256,
so a copy of the database cannot sign anyone in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from leadflow.domain.errors import AuthenticationError, Conflict, NotFound, ValidationError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD = 10
SESSION_DAYS = 7
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Role(StrEnum):
    ADMIN = "admin"
    MARKETER = "marketer"
    SALES = "sales"


class Permission(StrEnum):
    VIEW = "view"  # overview, leads, one lead, the sales queue
    DECIDE = "decide"  # accept or reject MQLs
    MARKETING = "marketing"  # journeys, segments, the scoring model, reports
    COSTS = "costs"  # enter campaign and source costs
    SOURCES = "sources"  # sources and their write keys
    USERS = "users"  # add, disable and reset users


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MARKETER: frozenset(
        {Permission.VIEW, Permission.MARKETING, Permission.COSTS, Permission.DECIDE}
    ),
    Role.SALES: frozenset({Permission.VIEW, Permission.DECIDE}),
}


def role_of(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValidationError(f"role: {value!r} is not one of {known}") from None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str
    role: Role
    rep_id: int | None
    active: bool
    created_at: datetime
    last_login_at: datetime | None

    def can(self, permission: Permission) -> bool:
        return self.active and permission in GRANTS[self.role]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role.value,
            "rep_id": self.rep_id,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``token`` goes into the cookie (only at sign-in), ``csrf`` into
    every form."""

    user: User
    csrf: str
    expires_at: datetime
    token: str = ""


class UserRepository(Protocol):
    def add(self, email: str, name: str, password_hash: str, role: str, rep_id: int | None,
            now: datetime) -> int: ...  # fmt: skip
    def by_email(self, email: str) -> tuple[User, str] | None: ...
    def by_id(self, user_id: int) -> User | None: ...
    def all(self) -> list[User]: ...
    def update(self, user_id: int, **values: Any) -> None: ...
    def rep_id(self, name: str) -> int | None: ...
    def open_session(self, key: str, user_id: int, csrf: str, now: datetime,
                     expires_at: datetime) -> None: ...  # fmt: skip
    def session(self, key: str, now: datetime) -> tuple[User, str, datetime] | None: ...
    def close_session(self, key: str) -> None: ...
    def close_sessions(self, user_id: int) -> None: ...


# --- passwords ---------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64, no padding)."""
    check_password(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        given = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected), maxmem=2**26,
        )  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, expected)


# A hash of nothing anyone knows: verifying against it costs what a real check costs, so an
# unknown email answers as slowly as a wrong password.
_DECOY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(b'0' * 16)}${_b64(b'1' * 32)}"


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password: at least {MIN_PASSWORD} characters are needed")
    if len(password) > 1024:
        raise ValidationError("password: at most 1024 characters")


def check_email(email: str) -> str:
    value = email.strip().lower()
    if not EMAIL.match(value) or len(value) > 320:
        raise ValidationError(f"email: {email!r} is not an email address")
    return value


def session_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- use cases ---------------------------------------------------------------------------
def add_user(
    repo: UserRepository, email: str, password: str, role: str, name: str, rep: str | None,
    now: datetime,
) -> User:  # fmt: skip
    address = check_email(email)
    kind = role_of(role)
    if repo.by_email(address) is not None:
        raise Conflict(f"email: a user {address!r} exists already")
    rep_id = None
    if rep:
        rep_id = repo.rep_id(rep)
        if rep_id is None:
            raise NotFound(f"rep: no sales rep named {rep!r}")
    user_id = repo.add(address, name.strip(), hash_password(password), kind, rep_id, now)
    found = repo.by_id(user_id)
    assert found is not None
    return found


def user_by_email(repo: UserRepository, email: str) -> User:
    found = repo.by_email(email.strip().lower())
    if found is None:
        raise NotFound(f"email: no user {email!r}")
    return found[0]


def sign_in(repo: UserRepository, email: str, password: str, now: datetime) -> Session:
    """A new session for the right email and password; one message for every failure."""
    found = repo.by_email(email.strip().lower())
    stored = found[1] if found else _DECOY
    good = verify_password(password, stored)
    if found is None or not good or not found[0].active:
        raise AuthenticationError("wrong email or password")
    user = found[0]
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(days=SESSION_DAYS)
    repo.open_session(session_key(token), user.id, csrf, now, expires)
    repo.update(user.id, last_login_at=now)
    return Session(user, csrf, expires, token)


def session_of(repo: UserRepository, token: str, now: datetime) -> Session | None:
    if not token or len(token) > 200:
        return None
    found = repo.session(session_key(token), now)
    if found is None:
        return None
    user, csrf, expires = found
    return Session(user, csrf, expires) if user.active else None
