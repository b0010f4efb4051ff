"""`bench/run.py --smoke`: every benchmark scenario runs once at toy size, so a change that
breaks the bench (an import it relies on, a command line it runs) fails here rather than on
the next real benchmark run. No figure is judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {"startup", "drift", "apply", "staging", "pulling", "failover", "backend", "sweep",
             "attach"}

pytestmark = [pytest.mark.sim, pytest.mark.slow]  # the bench starts its own simulators


def test_every_scenario_runs_at_smoke_size(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--work", str(tmp_path / "work"),
         "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    document = json.loads(out.read_text())
    assert document["options"]["smoke"] is True
    assert {row["scenario"] for row in document["rows"]} == SCENARIOS
    unmeasured = [row["name"] for row in document["rows"] if row["median_sec"] is None]
    assert unmeasured == [], f"measured nothing: {unmeasured}"
    assert document["targets"] == [], "a smoke run judges no figure"
