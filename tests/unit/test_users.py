"""Password hashing and roles (services/users.py)."""

from __future__ import annotations

import pytest

from leadflow.domain.errors import ValidationError
from leadflow.services.users import (
    GRANTS,
    Permission,
    Role,
    hash_password,
    session_key,
    verify_password,
)


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterx", stored)
    assert not verify_password("", stored)
    assert hash_password("correct horse battery") != stored  # a new salt every time


@pytest.mark.parametrize(
    "stored", ["", "plain", "bcrypt$x$y$z$a$b", "scrypt$16384$8$1$!!$??", "scrypt$a$b$c$d$e"]
)
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything at all", stored)


def test_passwords_have_a_minimum_and_a_maximum() -> None:
    with pytest.raises(ValidationError, match="at least 10 characters"):
        hash_password("123456789")
    with pytest.raises(ValidationError, match="at most 1024"):
        hash_password("x" * 1025)


def test_roles_grant_what_docs_say() -> None:
    assert GRANTS[Role.ADMIN] == frozenset(Permission)
    assert Permission.USERS not in GRANTS[Role.MARKETER]
    assert Permission.SOURCES not in GRANTS[Role.MARKETER]
    assert GRANTS[Role.SALES] == {Permission.VIEW, Permission.DECIDE}


def test_the_session_key_is_a_hash_not_the_token() -> None:
    token = "abc" * 10
    assert session_key(token) != token and len(session_key(token)) == 64
