"""The public records of the simulator and its generative model.

`SimulationConfig` says what to simulate, `SimLead` is the ground truth kept for one lead. The
functions below are the latent model: how fit follows from who a lead is, how engagement intent
follows fit, and how the chance of an opportunity and of a won deal follow fit and the
engagement a scoring engine could observe. docs/simulator.md states the same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

PERSONAS = ("buyer", "student", "job_seeker")
PERSONA_SHARE = (0.86, 0.06, 0.08)

# Fit logit: FIT_BASE + industry + size + seniority + department + country + mail + persona + noise
FIT_BASE = -1.6
FIT_NOISE = 0.45
FREE_MAIL_FIT = -0.7
PERSONA_FIT = {"buyer": 0.0, "student": -3.0, "job_seeker": -3.5}
NO_INDUSTRY_FIT = -0.5
SIZE_PEAK_LOG10 = 2.85  # about 700 employees
SIZE_WIDTH_LOG10 = 0.75

# Intent logit: INTENT_BASE + INTENT_FROM_FIT * fit_logit + noise (sd INTENT_NOISE)
INTENT_BASE = -0.7
INTENT_FROM_FIT = 0.45
INTENT_NOISE = 1.0
OTHER_INTENT = {"student": (-1.0, 0.8), "job_seeker": (-1.0, 0.8)}  # (base, noise sd)

# P(buying journey) = JOURNEY_MAX * (1 - exp(-JOURNEY_RATE * fit**0.8 * intent**1.2))
JOURNEY_MAX = 0.9
JOURNEY_RATE = 1.6

# Engagement observed at the journey's end: decayed points, half-life ENGAGEMENT_HALF_LIFE_DAYS,
# squashed to [0, 1) by 1 - exp(-points / ENGAGEMENT_SCALE).
ENGAGEMENT_HALF_LIFE_DAYS = 10.0
ENGAGEMENT_SCALE = 40.0

# P(opportunity) = sigmoid(OPP_BASE + OPP_FIT * fit + OPP_ENGAGEMENT * engagement + N(0, OPP_NOISE))
OPP_BASE = -5.5
OPP_FIT = 3.6
OPP_ENGAGEMENT = 3.0
OPP_NOISE = 0.6
# Outbound: sales calls an identified lead with no journey: P = OUTBOUND_RATE * fit**2
OUTBOUND_RATE = 0.02

# P(won | opportunity) = sigmoid(WIN_BASE + WIN_FIT * fit + WIN_ENGAGEMENT * engagement + noise)
WIN_BASE = -3.1
WIN_FIT = 2.2
WIN_ENGAGEMENT = 0.9
WIN_NOISE = 0.5

# Annual contract value: DEAL_BASE * (employees / 100) ** DEAL_EXPONENT * lognormal(0, DEAL_SPREAD)
DEAL_BASE = 9000.0
DEAL_EXPONENT = 0.45
DEAL_SPREAD = 0.35
DEAL_MIN = 3000.0
DEAL_MAX = 400000.0


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: a seed, how many leads, over how many days from `start` (aware UTC)."""

    seed: int = 7
    leads: int = 3000
    days: int = 90
    start: datetime = datetime(2026, 8, 1, tzinfo=UTC)
    emit_outcomes: bool = False

    def __post_init__(self) -> None:
        if self.leads < 0:
            raise ValueError("leads must be >= 0")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")


@dataclass(frozen=True, slots=True)
class SimLead:
    """Ground truth for one simulated lead.

    `email` is the person's real address (lowercase) even when they never identify; `user_id`
    is set only if they identified inside the window. Conversion times may lie after the window.
    `deal_value` is the opportunity amount, set whenever `opportunity_at` is; it is revenue only
    for leads with `customer_at`.
    """

    key: str
    anonymous_id: str
    user_id: str | None
    email: str | None
    traits: dict[str, object]
    account_id: str | None
    account_traits: dict[str, object]
    fit: float
    intent: float
    first_touch: datetime
    mql_like_at: datetime | None
    opportunity_at: datetime | None
    customer_at: datetime | None
    deal_value: float | None
    index: int = 0
    persona: str = "buyer"
    identified_at: datetime | None = None


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def size_fit(employees: int) -> float:
    """Company-size term: a bump on log10(employees) peaking near 700, about 0 at 50 and 5000."""
    z = (math.log10(max(employees, 1)) - SIZE_PEAK_LOG10) / SIZE_WIDTH_LOG10
    return 1.4 * math.exp(-0.5 * z * z) - 0.6


def fit_logit(
    *,
    industry: float,
    employees: int | None,
    seniority: float,
    department: float,
    country: float,
    free_mail: bool,
    persona: str,
) -> float:
    """The noise-free fit logit of a lead (add N(0, FIT_NOISE) and squash for the latent fit)."""
    size = size_fit(employees) if employees else NO_INDUSTRY_FIT
    mail = FREE_MAIL_FIT if free_mail else 0.0
    return (
        FIT_BASE + industry + size + seniority + department + country + mail + PERSONA_FIT[persona]
    )


def intent_logit(fit_z: float, persona: str) -> tuple[float, float]:
    """Mean and sd of the intent logit: buyers' intent follows their fit, others' does not."""
    if persona in OTHER_INTENT:
        return OTHER_INTENT[persona]
    return INTENT_BASE + INTENT_FROM_FIT * fit_z, INTENT_NOISE


def journey_probability(fit: float, intent: float, persona: str) -> float:
    """Chance that a lead goes through a buying journey (pricing burst, maybe a demo request)."""
    if persona != "buyer":
        return 0.0
    return JOURNEY_MAX * (1.0 - math.exp(-JOURNEY_RATE * fit**0.8 * intent**1.2))


def squash_engagement(points: float) -> float:
    return 1.0 - math.exp(-max(points, 0.0) / ENGAGEMENT_SCALE)


def opportunity_logit(fit: float, engagement: float, noise: float) -> float:
    return OPP_BASE + OPP_FIT * fit + OPP_ENGAGEMENT * engagement + noise


def win_logit(fit: float, engagement: float, noise: float) -> float:
    return WIN_BASE + WIN_FIT * fit + WIN_ENGAGEMENT * engagement + noise


def deal_value(employees: int | None, lognormal: float) -> float:
    """Annual contract value in USD for a company size, times a lognormal factor."""
    size = max(employees or 20, 5) / 100.0
    value = DEAL_BASE * size**DEAL_EXPONENT * lognormal
    return float(round(min(max(value, DEAL_MIN), DEAL_MAX), -2))
