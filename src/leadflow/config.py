"""Settings, built once by the composition root from arguments, the environment and a file.

Precedence, highest first: arguments, ``LEADFLOW_*`` environment variables, the config file
``leadflow.yaml`` in the home folder (the working folder by default), the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from leadflow.domain.errors import ConfigError

DEFAULT_DB_FILE = "leadflow.db"
CONFIG_FILE = "leadflow.yaml"
# Settings that describe where the file is cannot come from the file itself.
NOT_IN_FILE = frozenset({"home"})


class Settings(BaseSettings):
    """Every knob of leadflow. Environment variables are prefixed ``LEADFLOW_``."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file leadflow.db in the working folder.",
    )
    home: Path = Field(default_factory=Path.cwd, description="Folder of the config and database.")
    max_batch_bytes: int = Field(
        default=5 * 1024 * 1024,
        description="Largest accepted batch body, before and after gzip inflation.",
    )
    public_url: str = Field(default="", description="Address the tracking clients reach.")
    default_phone_region: str = Field(default="US", description="Region of national numbers.")
    db_pool_size: int = Field(default=10)
    max_inflight_requests: int = Field(
        default=64, description="Ingestion requests in progress before answering 429."
    )
    ingest_mode: Literal["direct", "staged"] = Field(
        default="direct",
        description="direct: a tracking request is answered after its events are stored and "
        "scored; staged: after its body is stored in the inbox, which a drainer processes "
        "(docs/tracking.md).",
    )
    inbox_drainer: bool = Field(
        default=True,
        description="In staged mode, each server process drains the inbox in a background "
        "thread; false leaves it to `leadflow inbox drain` and `leadflow worker`.",
    )
    api_token: str = Field(
        default="", description="When set, /api/* requires 'Authorization: Bearer <token>'."
    )
    scoring: dict[str, Any] | None = Field(
        default=None, description="The scoring model (validated on its own: docs/scoring.md)."
    )
    lifecycle: dict[str, Any] | None = Field(
        default=None, description="Stages, the MQL policy and the sales step (docs/scoring.md)."
    )
    segments: dict[str, Any] | None = Field(
        default=None, description="Named segments: filter trees over leads (docs/segments.md)."
    )
    email: dict[str, Any] | None = Field(
        default=None, description="SMTP server, sender, DKIM and tracking (docs/email.md)."
    )
    secret_key: str = Field(
        default="", description="Signs message links; empty: kept in leadflow.secret (0600)."
    )

    journeys: dict[str, Any] | None = Field(
        default=None, description="Nurture journeys by name (docs/journeys.md)."
    )
    nurture: dict[str, Any] | None = Field(
        default=None,
        description="Rules of every send: frequency cap, local hours, consent (docs/journeys.md).",
    )
    sms: dict[str, Any] | None = Field(
        default=None, description="The SMS channel: transport, keywords, quiet hours (docs/sms.md)."
    )
    webhooks: dict[str, Any] | None = Field(
        default=None, description="Sales handoff webhooks: endpoints, retries (docs/handoff.md)."
    )
    sales: dict[str, Any] | None = Field(
        default=None, description="Sales reps and their territories (docs/handoff.md)."
    )

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / DEFAULT_DB_FILE).resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            ConfigFileSource(settings_cls),
            file_secret_settings,
        )


class ConfigFileSource(PydanticBaseSettingsSource):
    """Reads ``leadflow.yaml`` from the home folder named by the sources above it."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        home = self.current_state.get("home") or os.getcwd()
        path = Path(home) / CONFIG_FILE
        if not path.is_file():
            return {}
        return load_config_file(path, self.settings_cls)


def load_config_file(path: Path, settings_cls: type[BaseSettings] = Settings) -> dict[str, Any]:
    """The settings a YAML config file sets; ConfigError naming the file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode) or not isinstance(values, dict):
        line = root.start_mark.line + 1
        raise ConfigError(f"{path}:{line}: the file must be a mapping of 'key: value' lines")
    fields = {n: f for n, f in settings_cls.model_fields.items() if n not in NOT_IN_FILE}
    found: dict[str, Any] = {}
    seen: set[str] = set()
    for key_node, _value_node in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if not isinstance(key, str) or key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{path}:{line}: unknown key {key!r}; known keys: {known}")
        if key in seen:
            raise ConfigError(f"{path}:{line}: key {key!r} is set twice")
        seen.add(key)
        value = values[key]
        if value is None:
            continue  # "key:" with no value leaves the default
        try:
            TypeAdapter[Any](fields[key].annotation or Any).validate_python(value)
        except PydanticValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise ConfigError(f"{path}:{line}: key {key!r}: {reason}") from None
        found[key] = value
    return found
