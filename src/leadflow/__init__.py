"""leadflow: an open-source lead-qualification engine.

Open a store with :func:`open_leadflow` (SQLite in the working folder by default, PostgreSQL by
URL) and use the :class:`Leadflow` facade: sources, ingestion of Segment-spec messages, leads.
"""

from leadflow.bootstrap import Leadflow, open_leadflow
from leadflow.config import Settings
from leadflow.domain.errors import (
    AuthenticationError,
    BatchErrors,
    ConfigError,
    Conflict,
    ItemError,
    LeadflowError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ValidationError,
)
from leadflow.ports import LeadFilter, LeadPage, LeadView, SourceRecord
from leadflow.services.ingest import IngestResult

__all__ = [
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
]
__version__ = "0.1.0"
