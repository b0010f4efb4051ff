"""`sweep --detach`, `--status`, `--attach` on the simulator: the sweep is launched, runs without
any process of ours, is watched and then collected from other processes, each job run once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Project, events_of, manifest_of, project
from tests.sweep.helpers import cli, cli_env, write_template

pytestmark = pytest.mark.sim
__all__ = ["project"]

GATED_BODY = (
    "echo seed={seed}\n"
    "while [ ! -e /workspace/gate ]; do sleep 0.5; done\n"  # runs until the test opens the gate
    "echo 'result={seed}'\n"
    "echo '[job] DONE'\n"
)


def _split(done: subprocess.CompletedProcess[str]) -> tuple[dict[str, object], list[str]]:
    """The `--json` summary and the `RUN_DIR=` lines that follow it on stdout."""
    lines = done.stdout.splitlines()
    run_dirs = [line.removeprefix("RUN_DIR=") for line in lines if line.startswith("RUN_DIR=")]
    body = json.loads("\n".join(line for line in lines if not line.startswith("RUN_DIR=")))
    assert isinstance(body, dict)
    return body, run_dirs


def _our_processes(config: Path) -> list[str]:
    """Command lines of live processes that name the sweep's stack file (a client of ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(config) in cmdline:
            found.append(cmdline)
    return found


def _open_gates(project: Project) -> None:
    for pod in project.live_pods():
        volume = project.sim.home / "pods" / pod["id"] / "volume"
        if volume.is_dir():
            (volume / "gate").write_text("go\n")


def test_detach_then_status_then_attach_from_other_processes(project: Project) -> None:
    config = write_template(project, {"run": {"body": GATED_BODY}})
    launched = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2,3,4",
                   "--max-parallel", "2", "--detach", "--json", "--print-run-dirs")
    assert launched.returncode == 0, launched.stderr[-4000:]
    body, run_dirs = _split(launched)
    sweep_id = str(body["sweep_id"])
    points = body["points"]
    assert isinstance(points, list)
    assert [p["status"] for p in points] == ["detached"] * 4, points
    assert len(run_dirs) == 4 == len(set(run_dirs))
    assert len(project.live_pods()) == 4  # every job runs on, and no client of ours does
    assert _our_processes(config) == []

    status = cli(project, "sweep", "--status", sweep_id, "--json")
    assert status.returncode == 0, status.stderr[-4000:]
    shown = json.loads(status.stdout)
    assert [p["job"] for p in shown["points"]] == ["running"] * 4, shown
    assert all(p["pod_id"] and p["elapsed_sec"] is not None for p in shown["points"]), shown
    table = cli(project, "sweep", "--status", sweep_id)
    assert table.returncode == 0 and table.stdout.count(" running ") == 4, table.stdout

    _open_gates(project)
    collected = cli(project, "sweep", "--attach", sweep_id, "--max-parallel", "2", "--json",
                    "--print-run-dirs")
    assert collected.returncode == 0, collected.stderr[-4000:]
    body, attached_dirs = _split(collected)
    points = body["points"]
    assert isinstance(points, list)
    assert [p["status"] for p in points] == ["succeeded"] * 4, points
    assert attached_dirs == run_dirs  # pulled into the runs' original run dirs
    for point, run_dir in zip(points, run_dirs, strict=True):
        seed = point["variables"]["seed"]
        log = (Path(run_dir) / "pulled" / "job.log").read_text()
        assert log.splitlines().count(f"seed={seed}") == 1, log  # the job ran once
        assert f"result={seed}" in log
        events = [e["event"] for e in events_of(Path(run_dir))]
        assert events.count("job_launched") == 1 and events.count("run_attached") == 1, events
        manifest = manifest_of(Path(run_dir))
        assert manifest["outcome"] == "succeeded" and manifest["sweep_id"] == sweep_id
    assert sorted(p.parent for p in project.root.glob("artifacts/runpod/*/events.jsonl")) == \
        sorted(Path(d) for d in run_dirs)
    assert project.live_pods() == []

    again = cli(project, "sweep", "--attach", sweep_id, "--json")  # finished points: reported
    assert again.returncode == 0, again.stderr[-4000:]
    assert [p["status"] for p in json.loads(again.stdout)["points"]] == ["succeeded"] * 4
    assert project.live_pods() == []


def test_status_of_an_unknown_sweep_fails_clearly(project: Project) -> None:
    done = cli(project, "sweep", "--status", "sw-20260101T000000Z-000000")
    assert done.returncode != 0
    assert "no sweep sw-20260101T000000Z-000000" in done.stderr
    assert "Traceback" not in done.stderr


def _machine(project: Project, name: str, **extra: str) -> dict[str, str]:
    """The environment of another machine of the team: its own HOME and local state dir."""
    home = project.root.parent / f"{name}-home"
    home.mkdir(exist_ok=True)
    return {**cli_env(project), "HOME": str(home),
            "RUNPOD_DEPLOY_STATE_DIR": str(project.root.parent / f"{name}-state"), **extra}


def _run(project: Project, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runpod_deploy", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=project.root, check=False)


def test_a_detached_sweep_on_a_shared_backend_is_collected_from_another_machine(
        project: Project) -> None:
    team = f"file://{project.root.parent / 'team-state'}"
    config = write_template(project, {"run": {"body": GATED_BODY}})
    laptop = _machine(project, "laptop", RUNPOD_DEPLOY_BACKEND=team)
    launched = _run(project, laptop, "sweep", "--config", str(config), "--matrix", "seed=1,2",
                    "--max-parallel", "2", "--detach", "--json", "--print-run-dirs")
    assert launched.returncode == 0, launched.stderr[-4000:]
    body, run_dirs = _split(launched)
    sweep_id = str(body["sweep_id"])

    desktop = _machine(project, "desktop")  # knows the team's backend from --backend only
    assert not (Path(desktop["RUNPOD_DEPLOY_STATE_DIR"]) / "sweeps").exists()
    status = _run(project, desktop, "sweep", "--status", sweep_id, "--backend", team, "--json")
    assert status.returncode == 0, status.stderr[-4000:]
    assert [p["job"] for p in json.loads(status.stdout)["points"]] == ["running"] * 2
    _open_gates(project)
    collected = _run(project, desktop, "sweep", "--attach", sweep_id, "--backend", team,
                     "--max-parallel", "2", "--json", "--print-run-dirs")
    assert collected.returncode == 0, collected.stderr[-4000:]
    body, attached_dirs = _split(collected)
    assert attached_dirs == run_dirs
    assert project.live_pods() == []

    # back on the laptop, the team's record says every point is done: nothing is re-run
    shown = _run(project, laptop, "sweep", "--status", sweep_id, "--json")
    assert [p["status"] for p in json.loads(shown.stdout)["points"]] == ["succeeded"] * 2


def test_detached_points_keep_their_worst_case_against_the_fleet_cap(project: Project) -> None:
    config = write_template(project)
    preview = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2,3", "--plan",
                  "--json")
    worst = json.loads(preview.stdout)["points"][0]["worst_case_usd"]
    launched = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2,3",
                   "--max-parallel", "1", "--cost-cap-usd", f"{worst * 1.5:.4f}", "--detach",
                   "--json")
    assert launched.returncode == 1, launched.stderr[-4000:]  # not every point was launched
    body = json.loads(launched.stdout)
    assert [p["status"] for p in body["points"]] == ["detached", "not_run", "not_run"], body
    assert "fleet cap" in str(body["budget_stop"])
    assert len(project.live_pods()) == 1  # the detached job runs on, its worst case reserved

    collected = cli(project, "sweep", "--attach", str(body["sweep_id"]), "--json")
    assert collected.returncode == 1, collected.stderr[-4000:]  # two points never ran
    assert [p["status"] for p in json.loads(collected.stdout)["points"]] == \
        ["succeeded", "not_run", "not_run"]
    assert project.live_pods() == []
