"""The library's public API is explicit: everything in __all__ exists, nothing leaks."""

from __future__ import annotations

import leadflow


def test_every_public_name_is_importable() -> None:
    missing = [name for name in leadflow.__all__ if not hasattr(leadflow, name)]
    assert missing == []


def test_public_api_is_exactly_the_documented_surface() -> None:
    assert set(leadflow.__all__) == {
        "AuthenticationError",
        "BatchErrors",
        "ConfigError",
        "Conflict",
        "IngestResult",
        "ItemError",
        "LeadFilter",
        "LeadPage",
        "LeadView",
        "Leadflow",
        "LeadflowError",
        "NotFound",
        "PayloadTooLarge",
        "RateLimited",
        "Settings",
        "SourceRecord",
        "ValidationError",
        "open_leadflow",
    }


def test_errors_form_one_tree() -> None:
    for name in (
        "AuthenticationError",
        "BatchErrors",
        "ConfigError",
        "Conflict",
        "NotFound",
        "PayloadTooLarge",
        "RateLimited",
        "ValidationError",
    ):
        assert issubclass(getattr(leadflow, name), leadflow.LeadflowError), name


def test_importing_leadflow_opens_no_database(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    import importlib

    importlib.reload(leadflow)
    assert list(tmp_path.iterdir()) == []
