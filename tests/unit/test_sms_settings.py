"""The ``sms:`` settings: defaults, windows, messages, and errors that name file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadflow.domain.errors import ConfigError
from leadflow.services.sms import send_window, sms_settings


def test_defaults_capture_and_the_federal_window() -> None:
    config = sms_settings(None)
    assert config.provider == "capture"
    assert str(config.window()) == "08:00-21:00"
    window, zone = send_window(config, {}, "+13055551234")
    assert (str(window), zone.key) == ("08:00-20:00", "America/New_York")  # Florida


def test_regions_override_and_builtin_rules_can_be_turned_off() -> None:
    config = sms_settings(
        {
            "quiet_hours": "09:00-20:00",
            "regions": {"us-tx": "09:00-21:00", "GB": "10:00-19:00"},
            "builtin_regions": False,
        }
    )
    assert str(send_window(config, {"state": "Texas"}, None)[0]) == "09:00-21:00"
    assert str(send_window(config, {"state": "FL"}, None)[0]) == "09:00-20:00"
    window, zone = send_window(config, {"timezone": "Europe/London"}, "+442079460000")
    assert (str(window), zone.key) == ("10:00-19:00", "Europe/London")


def test_messages_name_the_program_and_how_to_opt_out() -> None:
    config = sms_settings({"program": "Acme Deals", "contact": "help@acme.test"})
    assert config.opt_out_message() == (
        "You are unsubscribed from Acme Deals. No more messages. Reply START to resubscribe."
    )
    assert "help@acme.test" in config.help_message()
    assert "Reply STOP to opt out" in config.help_message()
    assert "Acme Deals" in config.opt_in_message()


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leadflow.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sms:\n  provider: kannel\n", ":2: sms: provider kannel needs a 'kannel:' section"),
        ("sms:\n  provider: pigeon\n", ":2: sms.provider: Input should be 'kannel'"),
        (
            "sms:\n  program: x\n  quiet_hours: '21:00-08:00'\n",
            ":3: sms.quiet_hours: '21:00-08:00' ends before it starts",
        ),
        ("sms:\n  regions:\n    US-TX: late\n", ":3: sms.regions.US-TX: 'late' is not a window"),
        ("sms:\n  help_text: Call us\n", ":2: sms.help_text: must tell how to opt out"),
        (
            "sms:\n  kannel:\n    username: u\n    pasword: y\n",
            ":4: sms.kannel.pasword: Extra inputs are not permitted",
        ),
    ],
)
def test_errors_name_the_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    import yaml

    path = _config_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        sms_settings(yaml.safe_load(text)["sms"], path)
    assert caught.value.message.startswith(str(path))
    assert expected in caught.value.message


def test_http_provider_needs_a_sender_or_a_service() -> None:
    with pytest.raises(ConfigError, match=r"needs a sender or http\.messaging_service_sid"):
        sms_settings({"provider": "http", "http": {"account_sid": "AC1"}})
