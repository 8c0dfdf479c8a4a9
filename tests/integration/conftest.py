"""Fixtures for the tests that open leadflow with a model of their own and a clock they move.

A module asks for ``app`` after defining ``model_text`` (the text of its ``leadflow.yaml``), or
opens one or more stores itself through ``open_store``. ``tests/conftest.py`` gives the
emptied database on each backend (``leadflow``) and its ``settings``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.register_assert_rewrite("tests.integration.scoring_support")

from leadflow import Leadflow, Settings, SourceRecord  # noqa: E402
from tests.integration.scoring_support import T0, Clock, Opener, open_with_model  # noqa: E402


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def open_store(leadflow: Leadflow, settings: Settings, clock: Clock) -> Iterator[Opener]:
    """Opens leadflow on the test's (emptied) database with the given model; closes what it
    opened after the test, before ``leadflow`` empties the database again."""
    opened: list[Leadflow] = []

    def open_with(model: str) -> Leadflow:
        app = open_with_model(settings, clock, model)
        opened.append(app)
        return app

    yield open_with
    for app in opened:
        app.close()


@pytest.fixture
def app(open_store: Opener, model_text: str) -> Leadflow:
    """leadflow with the module's ``model_text`` on the test's emptied database."""
    return open_store(model_text)


@pytest.fixture
def source(app: Leadflow) -> SourceRecord:
    return app.create_source("website")
