"""Standard Webhooks signatures, secrets, the retry schedule and the webhook settings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import pytest
from standardwebhooks import Webhook

from leadflow.domain.errors import ConfigError
from leadflow.services.handoff import load_handoff_config
from leadflow.services.webhooks import (
    Answer,
    WebhookSettings,
    after_attempt,
    decode_secret,
    event_id_for,
    new_secret,
    parse_retry_after,
    sign,
    signed_headers,
)

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_signature_is_the_one_standard_webhooks_computes() -> None:
    body = b'{"type":"lead.handoff","data":{"lead":{"id":1}}}'
    ours = sign(decode_secret(SECRET), "msg_abc", 1_740_000_000, body)
    theirs = Webhook(SECRET).sign(
        "msg_abc", datetime.fromtimestamp(1_740_000_000, UTC), body.decode()
    )
    assert ours == theirs
    assert ours.startswith("v1,")


def test_the_reference_library_verifies_our_headers() -> None:
    body = b'{"type":"webhook.test"}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signed_headers(decode_secret(SECRET), "msg_1", timestamp, body)
    assert Webhook(SECRET).verify(body, headers) == {"type": "webhook.test"}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(new_secret()).verify(body, headers)


def test_new_secrets_are_valid_and_different() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(decode_secret(first)) == 32


@pytest.mark.parametrize(
    ("value", "problem"),
    [("abc", "starts with 'whsec_'"), ("whsec_***", "not base64"), ("whsec_YWJj", "24 to 64")],
)
def test_bad_secrets_are_named(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_secret(value)


def test_event_ids_are_stable_for_the_same_parts() -> None:
    assert event_id_for("x", 1) == event_id_for("x", 1) != event_id_for("x", 2)
    assert event_id_for("x", 1).startswith("msg_")


NO_JITTER = WebhookSettings(jitter=0.0)


@pytest.mark.parametrize(
    ("attempts_before", "delay"),
    [(0, 5), (1, 300), (2, 1800), (3, 7200), (4, 18000), (5, 36000), (6, 36000)],
)
def test_failures_follow_the_schedule(attempts_before: int, delay: int) -> None:
    outcome = after_attempt(NO_JITTER, attempts_before, Answer(503, "HTTP 503"), NOW, Random(1))
    assert outcome.status == "pending"
    assert outcome.next_attempt_at == NOW + timedelta(seconds=delay)


def test_the_last_attempt_gives_up() -> None:
    outcome = after_attempt(NO_JITTER, 7, Answer(500, "HTTP 500"), NOW, Random(1))
    assert outcome.status == "dead"
    assert outcome.attempts == 8
    assert "gave up after 8 attempts" in outcome.last_error


def test_jitter_stays_within_its_share() -> None:
    settings = WebhookSettings(jitter=0.1)
    delays = {
        after_attempt(settings, 2, Answer(None, "timeout"), NOW, Random(seed)).next_attempt_at
        for seed in range(20)
    }
    assert len(delays) > 1
    for when in delays:
        assert when is not None
        assert 1620 <= (when - NOW).total_seconds() <= 1980


def test_429_waits_at_least_retry_after() -> None:
    outcome = after_attempt(NO_JITTER, 0, Answer(429, "slow down", 600.0), NOW, Random(1))
    assert outcome.next_attempt_at == NOW + timedelta(seconds=600)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 301])
def test_other_4xx_and_redirects_are_dead_at_once(status: int) -> None:
    outcome = after_attempt(NO_JITTER, 0, Answer(status, f"HTTP {status}"), NOW, Random(1))
    assert (outcome.status, outcome.attempts) == ("dead", 1)


def test_2xx_is_delivered_and_refusal_is_dead() -> None:
    assert after_attempt(NO_JITTER, 2, Answer(204), NOW, Random(1)).status == "delivered"
    refused = Answer(None, "refused: 10.0.0.1 is a private address", refused=True)
    assert after_attempt(NO_JITTER, 0, refused, NOW, Random(1)).status == "dead"


def test_retry_after_as_seconds_or_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Mon, 03 Mar 2025 12:10:00 GMT", NOW) == 600
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leadflow.yaml"
    path.write_text(text)
    return path


def test_config_errors_name_the_file_line_and_key(tmp_path: Path) -> None:
    import yaml

    path = _config(
        tmp_path,
        "webhooks:\n"
        "  endpoints:\n"
        "    - name: crm\n"
        "      url: https://crm.example.com/in\n"
        f"      secret: {SECRET}\n"
        "      stages: [sql, closed]\n",
    )
    data = yaml.safe_load(path.read_text())
    with pytest.raises(ConfigError, match=r"leadflow.yaml:6: webhooks.endpoints\[0\].stages"):
        load_handoff_config(data["webhooks"], None, path)


def test_a_typo_is_named_with_its_line(tmp_path: Path) -> None:
    path = _config(
        tmp_path, f"webhooks:\n  endpoints:\n    - name: a\n      urll: x\n      secret: {SECRET}\n"
    )
    with pytest.raises(ConfigError, match=r"leadflow.yaml:4: .*unknown key 'urll'"):
        load_handoff_config(
            {"endpoints": [{"name": "a", "urll": "x", "secret": SECRET}]}, None, path
        )


def test_secret_env_is_read_and_a_missing_one_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = {"endpoints": [{"name": "crm", "url": "https://x.example", "secret_env": "CRM_HOOK"}]}
    with pytest.raises(ConfigError, match="secret_env: CRM_HOOK is not set"):
        load_handoff_config(hooks, None, None)
    monkeypatch.setenv("CRM_HOOK", SECRET)
    found = load_handoff_config(hooks, None, None).webhooks.endpoint("crm")
    assert found.secret == decode_secret(SECRET)
    assert found.stages == frozenset({"sql"})


def test_a_private_target_is_refused_at_load_with_the_key() -> None:
    from leadflow.adapters.webhooks.ssrf import check_target

    hooks = {"endpoints": [{"name": "crm", "url": "http://10.1.2.3/in", "secret": SECRET}]}
    with pytest.raises(ConfigError, match=r"webhooks.endpoints\[0\].url: .*private address"):
        load_handoff_config(hooks, None, None, check_target)
    allowed = load_handoff_config(
        {**hooks, "allow_private_targets": True}, None, None, check_target
    )
    assert allowed.webhooks.endpoints[0].url == "http://10.1.2.3/in"
