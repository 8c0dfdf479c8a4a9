"""``leadflow init``: a config file, the database and a first source, in the current folder."""

from __future__ import annotations

import json

import typer

from leadflow.cli.common import masked, settings, state, stdout, store, tracking_base
from leadflow.config import CONFIG_FILE
from leadflow.services.models import default_model_text

WEBSITE_SOURCE = "website"

TEMPLATE = """\
# leadflow configuration, read from the folder leadflow runs in.
# LEADFLOW_<KEY> environment variables and command-line options (--db) override these
# values. An unknown key is an error, so a typo never goes unnoticed.

# Where leadflow keeps its data: a database URL. Empty means the SQLite file leadflow.db
# in this folder. PostgreSQL: postgresql://user:password@host:5432/leadflow
database_url: {database_url}

# The address tracking clients (analytics.js, the Segment and RudderStack SDKs) use to
# reach this server, like https://track.example.com. Empty means the address a request
# came in on.
public_url: ""

# Country of phone numbers written without a country code (two-letter ISO 3166 code).
default_phone_region: US
"""


CONFIRM_TEMPLATE = """\
# The email of a double opt-in (leadflow consent request ID): confirm_url grants consent.
subject: Please confirm your subscription
text: |
  Hi {{ lead.first_name | default('there') }},

  Please confirm that you want our email by opening this link:
  {{ confirm_url }}

  If you did not sign up, ignore this message: you will hear nothing more from us.
"""


def config_text(database_url: str) -> str:
    """The starter file: the settings above, then the default scoring model to adapt."""
    return TEMPLATE.format(database_url=json.dumps(database_url)) + "\n" + default_model_text()


def init(ctx: typer.Context) -> None:
    """Write leadflow.yaml here, create the database and a 'website' source.

    An existing leadflow.yaml is left as it is. Prints the write key of the 'website'
    source and the tracking endpoint to send events to.
    """
    out = stdout()
    config = settings(ctx)
    path = config.home / CONFIG_FILE
    if path.exists():
        out.print(f"{CONFIG_FILE} exists: left unchanged ({path})")
    else:
        path.write_text(config_text(state(ctx).db or ""), encoding="utf-8")
        out.print(f"wrote {path}")
    confirm = config.home / "templates" / "confirm-subscription.email.yaml"
    if not confirm.exists():
        confirm.parent.mkdir(exist_ok=True)
        confirm.write_text(CONFIRM_TEMPLATE, encoding="utf-8")
        out.print(f"wrote {confirm} (the double opt-in email; templates go in this folder)")
    with store(ctx) as leadflow:
        out.print(f"database ready: {masked(config.resolved_database_url())}")
        known = {source.name for source in leadflow.sources()}
        source = leadflow.ensure_source(WEBSITE_SOURCE)
        verb = "source" if WEBSITE_SOURCE in known else "created source"
    base = tracking_base(config)
    out.print(f"{verb} '{source.name}', write key: {source.write_key}")
    out.print(f"tracking endpoint: {base}/v1/batch")
    out.print(f"analytics.js settings: {base}/v1/projects/{source.write_key}/settings")
    out.print("next: leadflow serve")
