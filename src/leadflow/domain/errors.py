"""The exception tree of leadflow. Errors carry no transport codes; the edges map them."""

from __future__ import annotations

from dataclasses import dataclass, field


class LeadflowError(Exception):
    """Base class of every error leadflow raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(LeadflowError):
    """Input that cannot be accepted, with the problem named."""

    code = "invalid_request"


class PayloadTooLarge(ValidationError):
    code = "payload_too_large"


class AuthenticationError(LeadflowError):
    code = "unauthorized"


class NotFound(LeadflowError):
    code = "not_found"


class Conflict(LeadflowError):
    code = "conflict"


class RateLimited(LeadflowError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(LeadflowError):
    code = "config_error"


class StoreUnavailable(ConfigError):
    """The database cannot be reached or opened."""

    code = "store_unavailable"


@dataclass(frozen=True)
class ItemError:
    """One rejected item of a batch, named by its index."""

    index: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"item {self.index}: {self.field}: {self.reason}"


@dataclass
class BatchErrors(ValidationError):
    """Some items of a batch were rejected; the valid ones were kept."""

    errors: list[ItemError] = field(default_factory=list)
    accepted: int = 0

    def __post_init__(self) -> None:
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        LeadflowError.__init__(
            self, f"{len(self.errors)} invalid item(s), {self.accepted} accepted: {shown}{more}"
        )


class DeliveryError(LeadflowError):
    """A transport refused or failed to take a message."""

    code = "delivery_failed"


class TransientDeliveryError(DeliveryError):
    """Worth another try later (timeouts, 5xx, 429, a queue that is full)."""

    code = "delivery_transient"


class PermanentDeliveryError(DeliveryError):
    """Will never succeed as is (bad address, rejected by policy); the delivery fails."""

    code = "delivery_permanent"
