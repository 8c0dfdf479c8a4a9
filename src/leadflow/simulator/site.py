"""The simulated vendor's web site, content, campaigns and lead sources.

Pages carry a category that drives both the browsing model (which pages a visit shows) and the
hidden engagement value used by the conversion model. Page ids, asset ids, webinar numbers and
e-mail numbers are small integers so that a timeline event packs into one integer.
"""

from __future__ import annotations

from typing import NamedTuple

VENDOR = "Acme Analytics"
SITE = "https://www.acme-analytics.example"


class Page(NamedTuple):
    path: str
    name: str
    title: str
    category: str


BLOG = (
    "what-is-lead-scoring",
    "mql-vs-sql",
    "b2b-attribution-models",
    "building-a-revops-team",
    "intent-data-explained",
    "lead-routing-best-practices",
    "account-based-marketing-playbook",
    "pipeline-forecasting-101",
    "shortening-the-sales-cycle",
    "marketing-ops-stack-2026",
    "email-nurture-benchmarks",
    "customer-data-platforms",
    "scoring-with-product-usage",
    "gdpr-for-marketers",
    "webinar-marketing-tips",
    "measuring-content-roi",
    "sales-and-marketing-alignment",
    "predictive-scoring-myths",
    "plg-meets-sales",
    "data-quality-checklist",
)
DOCS = (
    "getting-started",
    "installation",
    "api-reference",
    "segment-integration",
    "salesforce-sync",
    "hubspot-sync",
    "webhooks",
    "scoring-rules",
    "sso-setup",
    "data-retention",
    "rate-limits",
    "sdk-python",
    "sdk-javascript",
    "changelog",
)
JOBS = (
    "senior-backend-engineer",
    "account-executive",
    "product-designer",
    "customer-success-manager",
    "sales-development-representative",
    "data-scientist",
)


class Asset(NamedTuple):
    slug: str
    title: str
    kind: str  # ebook / whitepaper / case_study


ASSETS = (
    Asset("state-of-b2b-pipeline-2026", "The State of B2B Pipeline 2026", "ebook"),
    Asset("lead-scoring-playbook", "The Lead Scoring Playbook", "ebook"),
    Asset("revops-maturity-model", "The RevOps Maturity Model", "whitepaper"),
    Asset("intent-data-buyers-guide", "Intent Data: A Buyer's Guide", "whitepaper"),
    Asset("security-and-compliance", "Security and Compliance Overview", "whitepaper"),
    Asset("case-study-saas-scaleup", "How a SaaS Scale-up Doubled Pipeline", "case_study"),
    Asset("case-study-global-manufacturer", "A Global Manufacturer's Funnel", "case_study"),
    Asset("case-study-healthcare-network", "A Healthcare Network Goes Data-Driven", "case_study"),
    Asset("roi-calculator-guide", "Building the ROI Case", "ebook"),
    Asset("buyers-checklist", "The Revenue Analytics Buyer's Checklist", "whitepaper"),
)
CASE_STUDIES = tuple(i for i, asset in enumerate(ASSETS) if asset.kind == "case_study")

WEBINARS = (
    ("scoring-that-sales-trusts", "Lead Scoring That Sales Trusts"),
    ("from-mql-to-revenue", "From MQL to Revenue"),
    ("abm-in-practice", "Account-Based Marketing in Practice"),
    ("forecasting-with-confidence", "Forecasting with Confidence"),
    ("nurture-that-converts", "Nurture That Converts"),
    ("revops-roundtable", "The RevOps Roundtable"),
    ("product-led-sales", "Product-Led Sales"),
    ("data-hygiene-live", "Data Hygiene, Live"),
)

# Nurture sequence: (campaign slug, subject, landing path)
NURTURE = (
    (
        "nurture-01-welcome",
        "Welcome: three ways to find your best leads",
        "/blog/what-is-lead-scoring",
    ),
    ("nurture-02-playbook", "Your lead scoring playbook", "/resources/lead-scoring-playbook"),
    (
        "nurture-03-case-study",
        "How a SaaS scale-up doubled pipeline",
        "/resources/case-study-saas-scaleup",
    ),
    ("nurture-04-webinar", "Join our next live session", "/webinars"),
    ("nurture-05-integrations", "Connect your CRM in ten minutes", "/integrations"),
    ("nurture-06-pricing", "Plans that grow with your team", "/pricing"),
    ("nurture-07-customers", "What our customers say", "/customers"),
    ("nurture-08-demo", "See it with your own data", "/demo"),
)

FORMS = (
    "newsletter",
    "content_download",
    "webinar_registration",
    "contact_sales",
    "demo_request",
    "job_application",
    "event_lead_capture",
)
FORM_ID = {name: i for i, name in enumerate(FORMS)}
MARKETING_FORMS = frozenset(FORM_ID[f] for f in FORMS if f != "job_application")


def _pages() -> tuple[Page, ...]:
    pages = [
        Page("/", "Home", f"{VENDOR} | Revenue analytics for B2B teams", "home"),
        Page("/product", "Product", f"Product | {VENDOR}", "product"),
        Page("/pricing", "Pricing", f"Pricing | {VENDOR}", "pricing"),
        Page("/customers", "Customers", f"Customers | {VENDOR}", "customers"),
        Page("/careers", "Careers", f"Careers | {VENDOR}", "careers"),
        Page("/demo", "Demo", f"Request a demo | {VENDOR}", "demo"),
        Page("/integrations", "Integrations", f"Integrations | {VENDOR}", "integrations"),
        Page("/contact", "Contact", f"Contact sales | {VENDOR}", "contact"),
        Page("/webinars", "Webinars", f"Webinars | {VENDOR}", "webinars"),
    ]
    for slug in BLOG:
        title = slug.replace("-", " ").capitalize()
        pages.append(Page(f"/blog/{slug}", title, f"{title} | {VENDOR} Blog", "blog"))
    for slug in DOCS:
        title = slug.replace("-", " ").capitalize()
        pages.append(Page(f"/docs/{slug}", title, f"{title} | {VENDOR} Docs", "docs"))
    for slug in JOBS:
        title = slug.replace("-", " ").title()
        pages.append(Page(f"/careers/{slug}", title, f"{title} | Careers", "careers_job"))
    for asset in ASSETS:
        pages.append(Page(f"/resources/{asset.slug}", asset.title, asset.title, "resources"))
    for slug, title in WEBINARS:
        pages.append(Page(f"/webinars/{slug}", title, f"Webinar: {title}", "webinar"))
    return tuple(pages)


PAGES = _pages()
PAGE_ID = {page.path: i for i, page in enumerate(PAGES)}
PAGES_BY_CATEGORY: dict[str, tuple[int, ...]] = {}
for _i, _page in enumerate(PAGES):
    PAGES_BY_CATEGORY[_page.category] = (*PAGES_BY_CATEGORY.get(_page.category, ()), _i)
RESOURCE_PAGE = tuple(PAGE_ID[f"/resources/{asset.slug}"] for asset in ASSETS)
WEBINAR_PAGE = tuple(PAGE_ID[f"/webinars/{slug}"] for slug, _ in WEBINARS)
NURTURE_PAGE = tuple(PAGE_ID[path] for _, _, path in NURTURE)

# Browsing modes: category weights of the pages a visit shows.
MODES: dict[str, dict[str, float]] = {
    "browse": {
        "home": 14, "product": 14, "blog": 30, "docs": 6, "customers": 5, "pricing": 6,
        "integrations": 6, "resources": 8, "webinars": 4, "careers": 2,
    },
    "research": {
        "docs": 45, "product": 12, "integrations": 15, "blog": 15, "pricing": 5, "home": 5,
        "resources": 3,
    },
    "buying": {
        "pricing": 28, "product": 16, "customers": 16, "integrations": 8, "docs": 10,
        "resources": 10, "demo": 6, "home": 4,
    },
    "careers": {"careers": 35, "careers_job": 40, "home": 10, "blog": 10, "product": 5},
    "study": {
        "blog": 45, "docs": 20, "home": 10, "product": 10, "careers": 8, "resources": 7,
    },
}  # fmt: skip

# Hidden engagement value of a page view by category (negative: not a buying signal).
PAGE_POINTS = {
    "home": 0.5,
    "product": 1.5,
    "pricing": 4.0,
    "customers": 2.0,
    "careers": -3.0,
    "careers_job": -4.0,
    "demo": 3.0,
    "integrations": 1.5,
    "contact": 3.0,
    "webinars": 1.0,
    "webinar": 1.5,
    "blog": 0.6,
    "docs": 1.0,
    "resources": 1.0,
}


class Source(NamedTuple):
    key: str
    utm_source: str
    utm_medium: str
    campaigns: tuple[str, ...]
    referrer: str


SOURCES = {
    "organic": Source("organic", "", "", (), "https://www.google.com/"),
    "paid_search": Source(
        "paid_search",
        "google",
        "cpc",
        ("brand-search", "lead-scoring-software", "revenue-analytics-generic"),
        "https://www.google.com/",
    ),
    "linkedin": Source(
        "linkedin",
        "linkedin",
        "paid_social",
        ("abm-enterprise-q3", "revops-guide-promo", "careers-hiring"),
        "https://www.linkedin.com/",
    ),
    "referral": Source(
        "referral",
        "partner",
        "referral",
        ("partner-referral", "customer-referral"),
        "https://www.g2.com/",
    ),
    "webinar_partner": Source(
        "webinar_partner",
        "partner",
        "webinar",
        ("partner-webinar-revops", "partner-webinar-abm"),
        "https://partners.example.org/",
    ),
    "event": Source(
        "event",
        "event",
        "offline",
        ("revops-summit-2026", "saas-connect-2026"),
        "",
    ),
}
# source -> share per persona
SOURCE_MIX = {
    "buyer": {
        "organic": 0.34,
        "paid_search": 0.20,
        "linkedin": 0.16,
        "referral": 0.10,
        "webinar_partner": 0.10,
        "event": 0.10,
    },
    "student": {"organic": 0.85, "linkedin": 0.10, "referral": 0.05},
    "job_seeker": {"organic": 0.55, "linkedin": 0.45},
}
FIRST_PAGE = {
    "organic": ("blog", "home", "blog", "docs"),
    "paid_search": ("product", "pricing", "home", "product"),
    "linkedin": ("resources", "product", "blog", "resources"),
    "referral": ("customers", "product", "home", "integrations"),
    "webinar_partner": ("webinar", "webinar", "webinar", "webinar"),
    "event": ("product", "home", "demo", "product"),
}
EXTERNAL_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "",
    "",
)
