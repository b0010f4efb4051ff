"""`ls-runs --by-sweep` and `manifest-summary --root DIR --by-sweep` group runs by the sweep
their manifests record."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from runpod_deploy.cli import app
from runtime.rundir import RunManifest, RunOutcome, write_manifest


def _run(root: Path, name: str, *, sweep: str | None, point: dict[str, str] | None,
         outcome: RunOutcome, cost: float) -> None:
    run_dir = root / "artifacts" / "runpod" / name
    run_dir.mkdir(parents=True)
    write_manifest(run_dir, RunManifest(job_name="tmpl", run_id=name, outcome=outcome,
                                        failed=outcome is not RunOutcome.SUCCEEDED,
                                        estimated_cost_usd=cost, sweep_id=sweep, sweep_point=point))


def _project(tmp_path: Path) -> Path:
    _run(tmp_path, "20261206T100000Z", sweep=None, point=None, outcome=RunOutcome.SUCCEEDED, cost=0.5)
    _run(tmp_path, "20261206T110000Z", sweep="sw-a", point={"seed": "1"},
         outcome=RunOutcome.SUCCEEDED, cost=0.25)
    _run(tmp_path, "20261206T110000Z-001", sweep="sw-a", point={"seed": "2"},
         outcome=RunOutcome.JOB_FAILED, cost=0.5)
    _run(tmp_path, "20261206T120000Z", sweep="sw-b", point={"seed": "1"},
         outcome=RunOutcome.SUCCEEDED, cost=1.0)
    return tmp_path


def test_ls_runs_groups_by_sweep(tmp_path: Path) -> None:
    root = _project(tmp_path)
    out = CliRunner().invoke(app, ["ls-runs", "--project-root", str(root), "--by-sweep"])
    assert out.exit_code == 0, out.output
    blocks = out.stdout.split("\n\n")
    assert blocks[0].startswith("== sweep sw-a: 2 runs, 1 failed, $0.75 ==")
    assert "20261206T110000Z-001  seed=2  job_failed" in blocks[0]
    assert blocks[1].startswith("== sweep sw-b: 1 runs, 0 failed, $1.00 ==")
    assert blocks[2].startswith("== not in a sweep: 1 runs")
    as_json = json.loads(CliRunner().invoke(
        app, ["ls-runs", "--project-root", str(root), "--by-sweep", "--json"]).stdout)
    assert [(g["sweep_id"], [r["point"] for r in g["runs"]]) for g in as_json] == [
        ("sw-a", [{"seed": "1"}, {"seed": "2"}]), ("sw-b", [{"seed": "1"}]), (None, [None])]


def test_manifest_summary_by_sweep_totals_each_sweep(tmp_path: Path) -> None:
    root = _project(tmp_path)
    out = CliRunner().invoke(app, ["manifest-summary", "--root", str(root), "--by-sweep", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    totals = {g["sweep_id"]: g["totals"] for g in body["sweeps"]}
    assert totals["sw-a"]["manifests"] == 2 and totals["sw-a"]["failed"] == 1
    assert totals["sw-a"]["estimated_cost_usd"] == 0.75
    assert body["totals"]["manifests"] == 4


def test_a_manifest_outside_a_sweep_keeps_the_original_keys(tmp_path: Path) -> None:
    _run(tmp_path, "r", sweep=None, point=None, outcome=RunOutcome.SUCCEEDED, cost=0.1)
    text = (tmp_path / "artifacts" / "runpod" / "r" / "runpod_deploy_pull_manifest.json").read_text()
    assert "sweep" not in text
