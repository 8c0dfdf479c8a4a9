"""`leadflow demo --no-serve`: a simulated company through real HTTP into this folder's store."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from leadflow import LeadFilter, Settings, open_leadflow
from leadflow.adapters.db.tables import Event, StageChangeRow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo(folder: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "leadflow.cli", "demo", "--no-serve",
        "--leads", "300", "--days", "30", "--port", str(_free_port()),
    ]  # fmt: skip
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)


def test_demo_fills_the_store_of_the_current_folder_and_is_idempotent(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "messages sent over HTTP" in first.stdout
    assert "Traceback" not in first.stderr
    database = tmp_path / "leadflow.db"
    assert database.exists()
    with open_leadflow(Settings(database_url=f"sqlite:///{database}")) as lf:
        leads = lf.leads(LeadFilter(), limit=1, count=True).total
        with lf.engine.connect() as conn:
            events = conn.scalar(select(func.count()).select_from(Event))
        # every simulated person is one lead, whatever devices and identifies they used
        assert leads == 300
        assert events and events > 300 * 3
        known = lf.leads(LeadFilter(search="@"), limit=1000).items
        assert known and all(lead.email == lead.email.lower() for lead in known if lead.email)
        # sales worked the queue: some accepted, some rejected, some still waiting
        decided = lf.sla_report().to_json()
        assert decided["accepted"] > 0 and decided["rejected"] > 0
        assert decided["pending"] + decided["overdue"] > 0  # the last week's, in the queue
        # the history was sent as if live: stage changes are dated across the window, and
        # each decision follows its MQL by hours, not by the length of the demo's run
        with lf.engine.connect() as conn:
            moments = (
                conn.execute(select(StageChangeRow.at).where(StageChangeRow.to_stage == "mql"))
                .scalars()
                .all()
            )
        weeks = {moment.isocalendar()[:2] for moment in moments}
        assert len(weeks) >= 3, sorted(weeks)
        assert decided["median_decision_seconds"] < 24 * 3600
        assert {s.name for s in lf.segments()} == {"hot-accounts", "pricing-researchers"}
        users = {u.email: u.role.value for u in lf.users()}
        assert users == {"admin@demo.leadflow": "admin", "marketer@demo.leadflow": "marketer",
                         "sales@demo.leadflow": "sales"}  # fmt: skip
    printed = dict(re.findall(r"(admin@demo\.leadflow)\s+.\s+admin\s+.\s+(\S+)", first.stdout))
    assert printed, first.stdout
    with open_leadflow(Settings(database_url=f"sqlite:///{database}")) as lf:
        assert lf.sign_in(
            "admin@demo.leadflow", printed["admin@demo.leadflow"]
        ).user.role.value == ("admin")

    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr
    with open_leadflow(Settings(database_url=f"sqlite:///{database}")) as lf:
        assert lf.leads(LeadFilter(), limit=1, count=True).total == 300
        with lf.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Event)) == events
