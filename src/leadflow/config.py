"""Settings, built once by the composition root from the environment and arguments."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_FILE = "leadflow.db"


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
    api_token: str = Field(
        default="", description="When set, /api/* requires 'Authorization: Bearer <token>'."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / DEFAULT_DB_FILE).resolve()}"
