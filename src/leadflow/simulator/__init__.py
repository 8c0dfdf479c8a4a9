"""A seeded simulator of a B2B software company's leads and their Segment tracking messages.

Used by ``leadflow demo``, the tests and the benchmarks. Standard library only::

    from leadflow.simulator import SimulationConfig, simulate

    company = simulate(SimulationConfig(seed=7, leads=3000, days=90))
    for message in company.messages():  # streamed, globally sorted by timestamp
        ...
    truth = {lead.key: lead.opportunity_at for lead in company.leads()}

The generative model and its parameters are described in docs/simulator.md.
"""

from leadflow.simulator.export import LEAD_COLUMNS, write_events_jsonl, write_leads_csv
from leadflow.simulator.generate import Company, simulate
from leadflow.simulator.model import SimLead, SimulationConfig

__all__ = [
    "LEAD_COLUMNS",
    "Company",
    "SimLead",
    "SimulationConfig",
    "simulate",
    "write_events_jsonl",
    "write_leads_csv",
]
