"""Tracking tokens: opaque, signed, bound to one purpose; anything edited is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from leadflow.domain.errors import ValidationError
from leadflow.services.tokens import InvalidToken, Purpose, Tokens, load_secret

SECRET = "a-test-secret-of-enough-length"


def test_a_token_names_its_delivery_and_link() -> None:
    tokens = Tokens(SECRET)
    token = tokens.make(Purpose.CLICK, 42, 3)
    assert tokens.read(Purpose.CLICK, token).delivery_id == 42
    assert tokens.read(Purpose.CLICK, token).index == 3
    assert token == tokens.make(Purpose.CLICK, 42, 3)  # stable: a resent message keeps links


def test_tokens_are_url_safe_and_opaque() -> None:
    tokens = Tokens(SECRET)
    one, two = tokens.make(Purpose.OPEN, 1), tokens.make(Purpose.OPEN, 2)
    for token in (one, two):
        assert token.replace("-", "").replace("_", "").isalnum()
        assert len(token) == 30
    # neighbouring ids share no visible structure
    assert sum(a == b for a, b in zip(one, two, strict=True)) < 10


@pytest.mark.parametrize("position", [0, 5, 16, 29])
def test_an_edited_token_is_refused(position: int) -> None:
    tokens = Tokens(SECRET)
    token = tokens.make(Purpose.UNSUBSCRIBE, 7)
    swapped = "A" if token[position] != "A" else "B"
    edited = token[:position] + swapped + token[position + 1 :]
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.UNSUBSCRIBE, edited)


def test_a_token_works_for_its_own_purpose_only() -> None:
    tokens = Tokens(SECRET)
    open_token = tokens.make(Purpose.OPEN, 9)
    with pytest.raises(InvalidToken, match="unsubscribe"):
        tokens.read(Purpose.UNSUBSCRIBE, open_token)
    with pytest.raises(InvalidToken):
        tokens.read(Purpose.CLICK, open_token)


def test_another_secret_refuses_the_token() -> None:
    token = Tokens(SECRET).make(Purpose.CLICK, 1)
    with pytest.raises(InvalidToken):
        Tokens(SECRET + "x").read(Purpose.CLICK, token)


@pytest.mark.parametrize("junk", ["", "abc", "!!!!", "é" * 30, "A" * 200])
def test_junk_is_refused_with_a_clear_error(junk: str) -> None:
    with pytest.raises(InvalidToken, match="not a"):
        Tokens(SECRET).read(Purpose.OPEN, junk)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="secret_key"):
        Tokens("short")


def test_the_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = load_secret("", tmp_path)
    file = tmp_path / "leadflow.secret"
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    assert load_secret("", tmp_path) == first  # tokens stay valid across restarts
    assert load_secret("configured-secret-value", tmp_path) == "configured-secret-value"
