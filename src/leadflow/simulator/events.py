"""Timeline events as packed integers, their hidden engagement value, and sampling helpers.

Packing: ``(t_ms << 20) | (arg << 7) | (device << 6) | code``, so sorting the integers sorts by
time. For page views ``arg`` is ``page | campaign << 7 | email << 9`` (campaign: 0 none,
1 the lead's first-touch campaign, 2 a nurture e-mail).
"""

from __future__ import annotations

import math
import random

from leadflow.simulator.clock import MS_DAY, MS_HOUR, MS_MINUTE
from leadflow.simulator.site import MODES, PAGE_POINTS, PAGES, PAGES_BY_CATEGORY

(
    PAGE,
    CONTENT_DOWNLOADED,
    WEBINAR_REGISTERED,
    WEBINAR_ATTENDED,
    EMAIL_OPENED,
    EMAIL_CLICKED,
    FORM_SUBMITTED,
    DEMO_REQUESTED,
    UNSUBSCRIBED,
    PRICING_CALCULATOR_USED,
    IDENTIFY,
    GROUP,
    ALIAS,
    OPPORTUNITY_CREATED,
    DEAL_WON,
    DEAL_LOST,
) = range(16)
OUTCOMES = frozenset({OPPORTUNITY_CREATED, DEAL_WON, DEAL_LOST})
CAMP_SOURCE, CAMP_EMAIL = 1, 2
HORIZON_DAYS = 60  # activity and outcomes are simulated this long past the window
SESSION_GAP_MS = 30 * MS_MINUTE
TRACK_POINTS = {
    CONTENT_DOWNLOADED: 5.0,
    WEBINAR_REGISTERED: 4.0,
    WEBINAR_ATTENDED: 8.0,
    EMAIL_OPENED: 0.5,
    EMAIL_CLICKED: 2.0,
    FORM_SUBMITTED: 3.0,
    DEMO_REQUESTED: 20.0,
    UNSUBSCRIBED: -8.0,
    PRICING_CALCULATOR_USED: 6.0,
}
_PAGE_POINTS = tuple(PAGE_POINTS[page.category] for page in PAGES)


def mode_table(weights: dict[str, float], size: int = 1024) -> tuple[int, ...]:
    """Page ids laid out by quantile, so a uniform index draws a page with the mode's weights.

    Within a category, popularity falls with the page's rank: P(rank <= r) = (r / n) ** (2/3).
    """
    total = sum(weights.values())
    shares: list[tuple[int, float]] = []
    for category, weight in weights.items():
        pages = PAGES_BY_CATEGORY[category]
        n = len(pages)
        for rank, page in enumerate(pages):
            share = ((rank + 1) / n) ** (2 / 3) - (rank / n) ** (2 / 3)
            shares.append((page, weight / total * share))
    table, cumulative, k = [], 0.0, 0
    for page, share in shares:
        cumulative += share
        while k < size and (k + 0.5) / size <= cumulative:
            table.append(page)
            k += 1
    table.extend([shares[-1][0]] * (size - len(table)))
    return tuple(table)


MODE_TABLES = {mode: mode_table(weights) for mode, weights in MODES.items()}


def pack(t: int, code: int, arg: int = 0, dev: int = 0) -> int:
    return (t << 20) | (arg << 7) | (dev << 6) | code


def page_arg(page: int, campaign: int = 0, email: int = 0) -> int:
    return page | (campaign << 7) | (email << 9)


def exponential(rng: random.Random, mean: float) -> float:
    """An exponential variate (as random.expovariate(1 / mean), without its overhead)."""
    return -math.log(1.0 - rng.random()) * mean


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def engagement_points(events: list[int], at: int, half_life_days: float) -> float:
    """Points of the events up to `at`, each decayed exponentially with its age."""
    rate = math.log(2) / (half_life_days * MS_DAY)
    total = 0.0
    for value in events:
        t = value >> 20
        if t > at:
            continue
        code = value & 63
        points = _PAGE_POINTS[(value >> 7) & 127] if code == PAGE else TRACK_POINTS.get(code, 0.0)
        if points:
            total += points * math.exp((t - at) * rate)
    return total


def webinar_schedule(start: int, until: int) -> list[int]:
    """Webinar start times: every other Thursday at 16:00 UTC from two weeks before `start`."""
    first = start - 14 * MS_DAY
    days_since_epoch = first // MS_DAY
    thursday = days_since_epoch + (3 - (days_since_epoch + 3) % 7) % 7  # 1970-01-01 was a Thursday
    t = thursday * MS_DAY + 16 * MS_HOUR
    times = []
    while t < until + 30 * MS_DAY:
        times.append(t)
        t += 14 * MS_DAY
    return times
