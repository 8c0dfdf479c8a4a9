"""Who the simulated leads are: personas, companies (accounts), names, e-mails, phones, fit.

`PeopleFactory.person(index, day)` draws the next lead from one sequential random stream; an
account's attributes come from its own stream, so every lead of an account sees the same
company. Leads of an account get distinct names (a per-account counter walks a permutation of
the region's name pairs), which keeps every e-mail address unique.
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Generic, NamedTuple, TypeVar

from leadflow.simulator import catalog as cat
from leadflow.simulator import model
from leadflow.simulator.clock import MS_HOUR, LocalCalendar
from leadflow.simulator.site import SOURCE_MIX, SOURCES

T = TypeVar("T")
_NAME_STEP = 7919  # prime, larger than any region's name-pair count
_SLUGS = {
    region: (tuple(map(cat.ascii_slug, first)), tuple(map(cat.ascii_slug, last)))
    for region, (first, last) in cat.NAMES.items()
}


class Picker(Generic[T]):
    """Weighted choice by bisection over cumulative weights (faster than random.choices)."""

    def __init__(self, items: dict[T, float] | list[tuple[T, float]]) -> None:
        pairs = list(items.items()) if isinstance(items, dict) else list(items)
        self.items = tuple(item for item, _ in pairs)
        self.cum = tuple(accumulate(weight for _, weight in pairs))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random) -> T:
        return self.items[bisect(self.cum, rng.random() * self.total)]


_PERSONA = Picker(list(zip(model.PERSONAS, model.PERSONA_SHARE, strict=True)))
_COUNTRY = Picker([(c, c.weight) for c in cat.COUNTRIES])
_ZONES = {c.code: Picker([(z, z.weight) for z in c.zones]) for c in cat.COUNTRIES}
_INDUSTRY = Picker([(i, i.weight) for i in cat.INDUSTRIES])
_DEPARTMENT = Picker([(d, d.weight) for d in cat.DEPARTMENTS])
_SENIORITY = Picker([(s, s[1]) for s in cat.SENIORITIES])
_SOURCE = {persona: Picker(mix) for persona, mix in SOURCE_MIX.items()}


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """A uniform choice (random.choice without its overhead)."""
    return items[int(rng.random() * len(items))]


def stable_hex(kind: str, seed: int, index: int = 0) -> str:
    """32 hex digits derived from the arguments (deterministic across runs and platforms)."""
    return hashlib.blake2b(f"{kind}:{seed}:{index}".encode(), digest_size=16).hexdigest()


def uuid_like(hex32: str) -> str:
    """Format 32 hex digits as a version-4-looking UUID string."""
    h = hex32
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


class Account(NamedTuple):
    id: str
    name: str
    domain: str
    industry: cat.Industry
    employees: int
    country: cat.Country
    annual_revenue: int
    email_pattern: int  # 0 first.last, 1 first_last, 2 last.first
    name_offset: int

    def traits(self) -> dict[str, object]:
        return {
            "name": self.name,
            "industry": self.industry.key,
            "employees": self.employees,
            "country": self.country.code,
            "domain": self.domain,
            "annual_revenue": self.annual_revenue,
        }


@lru_cache(maxsize=1 << 16)
def make_account(seed: int, index: int) -> Account:
    """The company with this account number (deterministic, independent of any lead)."""
    rng = random.Random(stable_hex("account", seed, index))
    industry = _INDUSTRY(rng)
    country = _COUNTRY(rng)
    employees = max(2, int(10 ** min(max(rng.gauss(2.4, 0.85), 0.3), 5.4)))
    heads, tails = len(cat.NAME_HEADS), len(cat.NAME_TAILS)
    combo, round_ = divmod(index, heads * tails)[::-1]
    combo = (combo * 977 + seed) % (heads * tails)  # 977 is prime and coprime with 2000
    word = cat.NAME_HEADS[combo // tails] + cat.NAME_TAILS[combo % tails]
    if round_ <= len(cat.NAME_QUALIFIERS):
        qualifier = cat.NAME_QUALIFIERS[round_ - 1] if round_ else ""
    else:
        qualifier = str(round_)
    suffix = pick(rng, industry.suffixes)
    name = " ".join(part for part in (word, qualifier, suffix) if part)
    tld = "com" if country.code == "US" or rng.random() < 0.3 else country.tld
    revenue = employees * industry.revenue_per_employee * math.exp(rng.gauss(0.0, 0.3))
    pattern = bisect((0.75, 0.88), rng.random())
    return Account(
        id=f"acct-{index:05d}",
        name=name,
        domain=f"{name.lower().replace(' ', '')}.{tld}",
        industry=industry,
        employees=employees,
        country=country,
        annual_revenue=int(round(revenue, -4)),
        email_pattern=pattern,
        name_offset=rng.randrange(1 << 20),
    )


@dataclass(slots=True)
class Person:
    """A drawn lead before its timeline: identity, traits, latent fit and intent."""

    index: int
    persona: str
    email: str
    traits: dict[str, object]
    account: Account | None
    fit: float
    intent: float
    first_touch: int  # epoch ms
    tz: str


def diurnal_hours(rng: random.Random, persona: str) -> float:
    """Local hour of an activity: work-hours peaks for professionals, evenings for others."""
    u = rng.random()
    evening = 0.15 if persona == "buyer" else 0.45
    if u < evening:
        hour = rng.gauss(20.5, 1.5)
    elif u < evening + (1 - evening) * 0.55:
        hour = rng.gauss(10.5, 1.4)
    else:
        hour = rng.gauss(14.5, 1.7)
    return min(max(hour, 6.0), 23.9)


class PeopleFactory:
    """Draws leads in index order from one random stream (a lead depends on the ones before)."""

    def __init__(self, seed: int, leads: int, calendar: LocalCalendar) -> None:
        self.seed = seed
        self.rng = random.Random(stable_hex("people", seed))
        self.calendar = calendar
        self.accounts = max(10, leads // 3)
        self._seen: dict[str, int] = {}

    def person(self, index: int, day: int) -> Person:
        rng = self.rng
        persona = _PERSONA(rng)
        if persona == "buyer":
            account = make_account(self.seed, int(self.accounts * rng.random() ** 1.6))
            country = account.country
        else:
            account, country = None, _COUNTRY(rng)
        zone = _ZONES[country.code](rng)
        first, last, email = self._name_and_email(index, persona, country, account)
        traits = self._traits(persona, account, first, last, email)
        traits["phone"] = _phone(rng, country, zone)
        traits["country"] = country.code
        traits["timezone"] = zone.tz
        source = SOURCES[_SOURCE[persona](rng)]
        traits["source"] = source.key
        traits["utm_campaign"] = _campaign(rng, persona, source.campaigns)
        fit, intent = self._latent(persona, traits, country, account, email)
        hour = diurnal_hours(rng, persona)
        first_touch = self.calendar.midnight(zone.tz, day) + int(hour * MS_HOUR)
        return Person(index, persona, email, traits, account, fit, intent, first_touch, zone.tz)

    def _latent(
        self,
        persona: str,
        traits: dict[str, object],
        country: cat.Country,
        account: Account | None,
        email: str,
    ) -> tuple[float, float]:
        rng = self.rng
        dept = _DEPT_BY_KEY.get(str(traits.get("department")))
        z = model.fit_logit(
            industry=account.industry.fit if account else model.NO_INDUSTRY_FIT,
            employees=account.employees if account else None,
            seniority=_SENIORITY_FIT.get(str(traits["seniority"]), -1.0),
            department=dept.fit if dept else 0.0,
            country=country.fit,
            free_mail=email.rsplit("@", 1)[1] in cat.FREE_MAIL_DOMAINS,
            persona=persona,
        ) + rng.gauss(0.0, model.FIT_NOISE)
        mean, sd = model.intent_logit(z, persona)
        return model.sigmoid(z), model.sigmoid(rng.gauss(mean, sd))

    def _name_and_email(
        self, index: int, persona: str, country: cat.Country, account: Account | None
    ) -> tuple[str, str, str]:
        rng = self.rng
        firsts, lasts = cat.NAMES[country.region]
        first_slugs, last_slugs = _SLUGS[country.region]
        pairs = len(firsts) * len(lasts)
        seen = 0
        if account is not None:
            seen = self._seen.get(account.id, 0)
            self._seen[account.id] = seen + 1
            combo = (account.name_offset + seen * _NAME_STEP) % pairs
        else:
            combo = int(rng.random() * pairs)
        i, j = divmod(combo, len(lasts))
        f, l_ = first_slugs[i], last_slugs[j]
        if account is not None and rng.random() >= _FREE_MAIL_SHARE:
            extra = str(seen // pairs) if seen >= pairs else ""
            local = (f"{f}.{l_}", f"{f}_{l_}", f"{l_}.{f}")[account.email_pattern] + extra
            return firsts[i], lasts[j], f"{local}@{account.domain}"
        # Personal addresses carry the lead number, which keeps them unique.
        local = (f"{f}.{l_}{index}", f"{f}{l_}{index}", f"{f[0]}{l_}{index}")[int(rng.random() * 3)]
        if persona == "student" and country.code in cat.UNIVERSITY_DOMAIN and rng.random() < 0.6:
            place = cat.ascii_slug(pick(rng, cat.UNIVERSITY_PLACES))
            domain = cat.UNIVERSITY_DOMAIN[country.code].format(place)
        elif country.code in cat.FREE_MAIL_LOCAL and rng.random() < 0.4:
            domain = pick(rng, cat.FREE_MAIL_LOCAL[country.code])
        else:
            domain = pick(rng, cat.FREE_MAIL)
        return firsts[i], lasts[j], f"{local}@{domain}"

    def _traits(
        self, persona: str, account: Account | None, first: str, last: str, email: str
    ) -> dict[str, object]:
        rng = self.rng
        traits: dict[str, object] = {"first_name": first, "last_name": last, "email": email}
        if persona == "buyer" and account is not None:
            dept = _DEPARTMENT(rng)
            seniority, _, role, _ = _SENIORITY(rng)
            traits["title"] = _title(rng, dept, seniority, account.employees)
            traits.update(role=role, seniority=seniority, department=dept.key)
            traits.update(
                industry=account.industry.key,
                company=account.name,
                company_size=account.employees,
            )
        elif persona == "student":
            traits.update(title=pick(rng, cat.STUDENT_TITLES), role="student")
            traits.update(seniority="student", department=None, industry="education")
            traits["company"] = f"University of {pick(rng, cat.UNIVERSITY_PLACES)}"
            traits["company_size"] = rng.randrange(3000, 45000, 500)
        else:
            traits.update(title=pick(rng, cat.JOB_SEEKER_TITLES), role="individual_contributor")
            traits.update(seniority="entry", department=None, industry=None)
            traits.update(company=None, company_size=None)
        return traits


_FREE_MAIL_SHARE = 0.14
_DEPT_BY_KEY = {d.key: d for d in cat.DEPARTMENTS}
_SENIORITY_FIT = {key: fit for key, _, _, fit in cat.SENIORITIES}


def _title(rng: random.Random, dept: cat.Department, seniority: str, employees: int) -> str:
    if seniority == "c_level":
        if employees < 200 and rng.random() < 0.4:
            return pick(rng, ("CEO", "Co-Founder & CEO", "Founder"))
        return dept.c_level
    if seniority == "vp":
        return f"VP of {dept.label}"
    if seniority == "director":
        return f"{pick(rng, ('Director of', 'Head of'))} {dept.label}"
    if seniority == "manager":
        return pick(rng, dept.managers)
    if seniority == "senior":
        return dept.senior
    if seniority == "intern":
        return f"{dept.label} Intern"
    return dept.entry


def _phone(rng: random.Random, country: cat.Country, zone: cat.Zone) -> str:
    """An E.164 number: a mobile of the country or a landline of the lead's city (zone)."""
    plans = country.mobile if country.mobile and rng.random() < 0.55 else zone.phones
    plan = plans[int(rng.random() * len(plans))]
    rest = plan.digits - 1
    lead = plan.lead[int(rng.random() * len(plan.lead))]
    return f"{plan.prefix}{lead}{int(rng.random() * 10**rest):0{rest}d}"


def _campaign(rng: random.Random, persona: str, campaigns: tuple[str, ...]) -> str | None:
    if not campaigns:
        return None
    hiring = "careers-hiring"
    if persona == "job_seeker" and hiring in campaigns:
        return hiring
    options = [c for c in campaigns if c != hiring]
    return options[int(rng.random() * len(options))]
