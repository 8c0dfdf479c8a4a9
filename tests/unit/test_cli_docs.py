"""Every CLI command has help and a section in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.main import get_command

from leadflow.cli.main import app

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def _commands(group: typer.Typer) -> list[tuple[str, str]]:
    root = get_command(group)
    found: list[tuple[str, str]] = []

    def walk(command: object, path: str) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, f"{path} {name}".strip())
        else:
            found.append((path, getattr(command, "help", "") or ""))

    walk(root, "")
    return found


def test_every_command_is_documented_with_help() -> None:
    commands = _commands(app)
    assert len(commands) >= 10
    for path, help_text in commands:
        assert help_text.strip(), f"leadflow {path} has no help"
        assert f"`leadflow {path}" in DOCS, f"leadflow {path} has no section in docs/cli.md"
