"""`runpod-deploy sweep` on the simulator: bounded parallelism, retries of transient failures
only, the fleet cap, the manifests' sweep records."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Project, events_of, manifest_of, project, wait_for
from tests.sweep.helpers import cli, most_pods_at_once, pod_prefix, summary_json, write_template

pytestmark = pytest.mark.sim
__all__ = ["project"]

GPU = "NVIDIA RTX A4000"


def _run_dir_of_pod(project: Project, pod_id: str) -> Path | None:
    for events in project.root.glob("artifacts/runpod/*/events.jsonl"):
        names = events_of(events.parent)
        if any(e.get("pod_id") == pod_id for e in names) and \
                any(e["event"] == "job_launched" for e in names):
            return events.parent
    return None


def test_six_points_two_at_a_time_with_a_reclaim_and_a_stock_out(project: Project) -> None:
    config = write_template(project)
    points = [{"seed": n, "sleep": 15 if n == 3 else 1} for n in range(1, 7)]
    matrix = project.root / "points.yaml"
    matrix.write_text(yaml.safe_dump(points))
    reclaimed: list[str] = []
    project.sim.fault("stockout", gpu=GPU, datacenter="EU-RO-1")

    def capacity_comes_back() -> None:
        wait_for(lambda: any(manifest_of(m.parent).get("outcome") == "provisioning_failed"
                             for m in project.root.glob("artifacts/runpod/*/runpod_deploy_pull_manifest.json")), 120)
        project.sim.clear_faults()

    def reclaim_point_3() -> None:
        prefix = pod_prefix(project, config, seed="3", sleep="15")
        def launched() -> bool:
            pods = [p for p in project.live_pods() if p["name"].startswith(prefix)]
            return bool(pods) and _run_dir_of_pod(project, pods[0]["id"]) is not None
        wait_for(launched, 180)
        pod_id = next(p["id"] for p in project.live_pods() if p["name"].startswith(prefix))
        project.sim.fault("preempt", pod_id=pod_id, kill_after_sec=0)
        reclaimed.append(pod_id)

    helpers = [threading.Thread(target=t, daemon=True) for t in (capacity_comes_back, reclaim_point_3)]
    for thread in helpers:
        thread.start()
    done = cli(project, "sweep", "--config", str(config), "--matrix-file", str(matrix),
               "--max-parallel", "2", "--retry", "1", "--retry-delay-sec", "2", "--json",
               "--print-run-dirs")
    for thread in helpers:
        thread.join(5)
    lines = done.stdout.splitlines()
    run_dirs = [line.removeprefix("RUN_DIR=") for line in lines if line.startswith("RUN_DIR=")]
    body = summary_json(type(done)(done.args, done.returncode,
                                   "\n".join(x for x in lines if not x.startswith("RUN_DIR=")), ""))
    assert done.returncode == 0, done.stderr[-4000:]
    by_seed = {p["variables"]["seed"]: p for p in body["points"]}
    assert [p["outcome"] for p in body["points"]] == ["succeeded"] * 6
    assert reclaimed and by_seed["3"]["attempts"] == 2, by_seed["3"]
    first_try = manifest_of(Path(by_seed["3"]["run_dirs"][0]))
    assert first_try["outcome"] == "pod_killed" and first_try["pod_id"] == reclaimed[0]
    stocked_out = [p for p in body["points"] if any(
        manifest_of(Path(d)).get("outcome") == "provisioning_failed" for d in p["run_dirs"])]
    assert stocked_out and all(p["attempts"] == 2 for p in stocked_out), body
    assert len(run_dirs) == 6 == len(set(run_dirs))
    for seed, point in by_seed.items():
        run_dir = Path(point["run_dir"])
        assert str(run_dir) in run_dirs
        assert f"result={seed}" in (run_dir / "pulled" / "job.log").read_text()
        manifest = manifest_of(run_dir)
        assert manifest["sweep_id"] == body["sweep_id"]
        assert manifest["sweep_point"] == {"seed": seed, "sleep": "15" if seed == "3" else "1"}
    assert len({p["stack_key"] for p in body["points"]}) == 6, "each point is its own instance"
    assert most_pods_at_once(project) <= 2
    assert project.live_pods() == []
    record = json.loads(Path(body["record"]).read_text())
    assert [p["run_dir"] for p in record["points"]] == [p["run_dir"] for p in body["points"]]


def test_a_fleet_cap_lower_than_the_sweep_needs_stops_launching(project: Project) -> None:
    config = write_template(project)
    preview = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2,3,4",
                  "--plan", "--json")
    assert preview.returncode == 0, preview.stderr
    worst = summary_json(preview)["points"][0]["worst_case_usd"]
    assert worst > 0
    text = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2,3,4", "--plan",
               "--cost-cap-usd", f"{worst * 2.5:.4f}")
    assert text.returncode == 0, text.stderr
    assert "4 points; nothing is created" in text.stdout
    assert text.stdout.count("create tmpl--") == 4
    assert text.stdout.count("(past the fleet cap: would not start)") == 2
    assert project.live_pods() == [] and not (project.root / "artifacts").exists()
    done = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2,3,4",
               "--var", "sleep=5", "--max-parallel", "2", "--cost-cap-usd", f"{worst * 1.5:.4f}",
               "--print-run-dirs")
    assert done.returncode == 1, done.stderr
    assert "stopped launching: fleet cap" in done.stderr
    run_dirs = [x for x in done.stdout.splitlines() if x.startswith("RUN_DIR=")]
    assert len(run_dirs) == 1, done.stderr  # two running points' worst cases would pass the cap
    not_run = done.stderr.split("points not run: ", 1)[1].splitlines()[0].split("; ")
    assert len(not_run) == 3 and "seed=4" in not_run and "seed=3" in not_run
    assert len(list(project.root.glob("artifacts/runpod/*/runpod_deploy_pull_manifest.json"))) == 1
    assert project.live_pods() == []


def test_a_failing_job_is_not_retried(project: Project) -> None:
    config = write_template(project)
    done = cli(project, "sweep", "--config", str(config), "--matrix", "seed=1,2",
               "--matrix", "tail=exit 3,echo '[job] DONE'", "--max-parallel", "2", "--retry", "2",
               "--json")
    assert done.returncode == 1, done.stderr
    body = summary_json(done)
    outcomes = {(p["variables"]["seed"], p["variables"]["tail"]): (p["outcome"], p["attempts"])
                for p in body["points"]}
    assert outcomes[("1", "exit 3")] == ("job_failed", 1)
    assert outcomes[("2", "echo '[job] DONE'")] == ("succeeded", 1)
    assert project.live_pods() == []


def test_ctrl_c_stops_every_point_and_leaves_no_pod(project: Project) -> None:
    import signal
    import subprocess
    import sys

    from tests.sweep.helpers import cli_env

    config = write_template(project)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "runpod_deploy", "sweep", "--config", str(config), "--matrix",
         "seed=1,2,3", "--var", "sleep=120", "--max-parallel", "2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(project),
        cwd=project.root)

    def two_jobs_running() -> bool:
        events = list(project.root.glob("artifacts/runpod/*/events.jsonl"))
        return sum(any(e["event"] == "job_launched" for e in events_of(p.parent)) for p in events) == 2

    try:
        wait_for(two_jobs_running, 180)
        sweep.send_signal(signal.SIGINT)
        out, err = sweep.communicate(timeout=180)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, err[-3000:]
    statuses = {p["point"]: p["status"] for p in json.loads(out)["points"]}
    assert statuses == {"seed=1": "interrupted", "seed=2": "interrupted", "seed=3": "not_run"}
    for manifest in project.root.glob("artifacts/runpod/*/runpod_deploy_pull_manifest.json"):
        assert manifest_of(manifest.parent)["outcome"] == "interrupted"
    assert project.live_pods() == []


def test_on_a_terminal_a_live_table_shows_every_point(project: Project) -> None:
    import os
    import sys

    from tests.e2e.test_live_view import _text, run_in_pty

    config = write_template(project)
    env = {**os.environ, **project.env, "TERM": "xterm-256color", "LANG": "C.UTF-8",
           "RUNPOD_DEPLOY_SSH_KEY": str(project.key)}
    for key in ("CI", "NO_COLOR", "COLUMNS", "LINES"):
        env.pop(key, None)
    code, stdout, raw = run_in_pty([sys.executable, "-m", "runpod_deploy", "sweep", "--config",
                                    str(config), "--matrix", "seed=1,2", "--max-parallel", "2",
                                    "--provider", "api"], env, cols=120)
    screen = _text(raw)
    assert code == 0, screen[-3000:]
    assert "sweep sw-" in screen and "┃ point" in screen and "┃ GPU" in screen, screen[-3000:]
    assert "│ seed=1 " in screen and "│ seed=2 " in screen and "RTX A4000" in screen
    assert "2 of 2 points succeeded" in screen
    assert stdout == ""
    assert project.live_pods() == []
