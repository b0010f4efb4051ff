"""Long jobs outlive the client: a killed apply's job is attached to, never run again; `apply
--detach` then `attach` from another process; `status --json` while the job runs; a pod nobody
comes back to stops itself after the job; `attach` with nothing to attach to fails clearly.

The job counts its own starts in a file on /workspace and the count is pulled as an artifact,
so "ran exactly once" is read from what the pod saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.plan import StepKind
from runpod_deploy.api import ApplyRequest, attach_stack, load_stack, make_plan
from runtime.reporter import PlainReporter
from runtime.rundir import MANIFEST_FILENAME, RunOutcome
from tests.reliability.conftest import Proj, events_in, run_dirs, start_cli, wait_until

pytestmark = pytest.mark.sim

QUIET_TELEMETRY = {"enabled": False, "capture_nvidia_smi": False, "capture_dmesg": False,
                   "capture_pod_describe": False, "capture_remote_env": False}

COUNTING_JOB = (
    "n=$(cat /workspace/starts 2>/dev/null || echo 0); echo $((n + 1)) > /workspace/starts\n"
    "echo \"attempt $RUNPOD_DEPLOY_ATTEMPT\"\n"
    "for i in 1 2 3 4 5 6 7 8; do echo \"tick $i\"; sleep {tick}; done\n"
    "mkdir -p /workspace/out && cp /workspace/starts /workspace/out/starts\n"
    "echo payload > /workspace/out/result.txt\n"
    "echo '[job] DONE'\n"
)


def _stack(proj: Proj, *, tick: float = 0.3, lifecycle: dict[str, object] | None = None) -> Path:
    return proj.stack({
        "run": {"body": COUNTING_JOB.replace("{tick}", str(tick))},
        "artifacts": [
            {"label": "log", "remote_path": "/workspace/job.log", "local_path": "{run_dir}/pulled"},
            {"label": "out", "remote_path": "/workspace/out/", "local_path": "{run_dir}/out"},
        ],
        "lifecycle": {"on_success": "delete", "on_failure": "delete", **(lifecycle or {})},
        "telemetry": QUIET_TELEMETRY,
    })


def _assert_ran_once_in(run_dir: Path) -> None:
    assert (run_dir / "out" / "starts").read_text().strip() == "1", "the job ran more than once"
    assert (run_dir / "out" / "result.txt").read_text() == "payload\n"
    assert "[job] DONE" in (run_dir / "pulled" / "job.log").read_text()


# during launch, early in the run, late in the run, after the marker before the pull, during the pull
KILL_POINTS = ["launch", "monitor", "monitor@6", "before_pull", "pull"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_client_is_attached_to_and_the_job_runs_once(proj: Proj, point: str) -> None:
    config = _stack(proj)
    killed = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", crash_at=point)
    assert killed.returncode == -9, f"the crash point {point} was not reached:\n{killed.stderr[-3000:]}"
    [original] = run_dirs(proj.root)

    plan = make_plan(load_stack(config, env=proj.env), provider="api", env=proj.env)
    assert [s.kind for s in plan.steps] == [StepKind.NOOP]
    assert plan.attach is not None and plan.attach.run_id == original.name
    shown = proj.cli("plan", "--config", str(config), "--provider", "api")
    said = shown.stdout + shown.stderr
    # The job may have been seen ending (its exit code journaled) before the kill, or not.
    assert (f"attach to run {original.name} (running " in said
            or f"finish run {original.name} (exited 0, not pulled)" in said), said[-2000:]

    result = proj.apply(config)
    assert result.outcome is RunOutcome.SUCCEEDED, (result.detail, proj.log.getvalue()[-3000:])
    assert result.run_dir == original and run_dirs(proj.root) == [original]
    _assert_ran_once_in(original)
    assert proj.pods(config) == [] and proj.state(config).pod is None and proj.state(config).job is None
    events = [e["event"] for e in events_in(original)]
    assert events.count("run_attached") == (0 if point == "launch" else 1), events
    assert events.count("job_launched") == 1 and events.count("run_finished") == 1, events
    assert result.manifest_path is not None and result.manifest_path.parent == original


def test_rerun_runs_the_job_again_in_a_new_run_dir(proj: Proj) -> None:
    config = _stack(proj)
    killed = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", crash_at="monitor")
    assert killed.returncode == -9, killed.stderr[-2000:]
    rerun = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", "--rerun")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first, second = run_dirs(proj.root)
    assert (second / "out" / "starts").read_text().strip() == "2"
    assert not (first / MANIFEST_FILENAME).exists() and (second / MANIFEST_FILENAME).exists()


def test_detach_then_attach_from_another_process_and_status_while_it_runs(proj: Proj) -> None:
    config = _stack(proj, tick=1.0)
    detached = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", "--detach",
                        "--print-run-dir")
    assert detached.returncode == 0, detached.stderr[-3000:]
    run_dir = Path(detached.stdout.split("RUN_DIR=", 1)[1].split()[0])
    assert "Detached" in detached.stderr
    state = proj.state(config)
    assert state.job is not None and state.job.detached and state.job.run_id == run_dir.name
    assert [p["desiredStatus"] for p in proj.pods(config)] == ["RUNNING"]

    status = proj.cli("status", "--config", str(config), "--provider", "api", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["run_id"] == run_dir.name and report["job"] == "running", report
    assert report["elapsed_sec"] >= 0 and report["spend_usd"] is not None and report["hourly_usd"] > 0
    assert any("attempt 1" in line for line in report["last_lines"]), report

    attached = proj.cli("attach", "--config", str(config), "--provider", "api", "--print-run-dir")
    assert attached.returncode == 0, attached.stderr[-3000:]
    assert f"RUN_DIR={run_dir}" in attached.stdout
    assert "tick 8" in attached.stderr  # streamed from where the run dir's copy ended
    _assert_ran_once_in(run_dir)
    assert run_dirs(proj.root) == [run_dir]
    assert proj.pods(config) == []
    events = [e["event"] for e in events_in(run_dir)]
    assert events.count("run_detached") == 1 and events.count("run_attached") == 1, events

    after = proj.cli("status", "--config", str(config), "--provider", "api", "--json")
    assert json.loads(after.stdout)["run_id"] is None


def test_attach_with_no_unfinished_run_fails_clearly(proj: Proj) -> None:
    config = _stack(proj)
    out = proj.cli("attach", "--config", str(config), "--provider", "api")
    assert out.returncode == 1
    assert "no unfinished run of this stack to attach to" in out.stderr
    assert "Traceback" not in out.stderr
    assert proj.pods(config) == [] and run_dirs(proj.root) == []


def test_detached_and_never_come_back_the_pod_stops_itself_then_attach_finishes(proj: Proj) -> None:
    config = _stack(proj, tick=0.1, lifecycle={"self_stop_after_sec": 1})
    detached = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", "--detach")
    assert detached.returncode == 0, detached.stderr[-3000:]
    [run_dir] = run_dirs(proj.root)
    [pod] = proj.pods(config)

    # The job ends (about a second), then grace (1 s) and one poll (5 s): the pod stops itself.
    wait_until(lambda: (proj.sim.pod(pod["id"]) or {}).get("desiredStatus") == "EXITED", timeout=60,
               what="the pod stopped itself")
    before = proj.sim.billing()["pods"][pod["id"]]
    proj.sim.clock(advance=600)  # ten simulated minutes later, nobody having come back
    later = proj.sim.billing()["pods"][pod["id"]]
    assert later["compute_usd"] == before["compute_usd"] and later["running_seconds"] == before["running_seconds"]
    assert later["stopped_seconds"] > before["stopped_seconds"]

    told = proj.cli("status", "--config", str(config), "--provider", "api")
    assert told.returncode == 0 and "(EXITED)" in told.stdout and "runpod-deploy attach` resumes it" in told.stdout

    # Its GPU went to someone else meanwhile: the pod resumes with none, and /workspace will do.
    proj.sim.fault("zero_gpu_resume", pod_id=pod["id"])
    attached = attach_stack(config, ApplyRequest(provider="api"), env=proj.env, reporter=PlainReporter(proj.log))
    assert attached.outcome is RunOutcome.SUCCEEDED, (attached.detail, proj.log.getvalue()[-3000:])
    assert attached.run_dir == run_dir
    assert not [f for f in proj.sim.faults() if f.get("pod_id") == pod["id"]], "the resume was not a zero-GPU one"
    _assert_ran_once_in(run_dir)
    assert proj.pods(config) == [] and proj.state(config).job is None
    resumed = [e for e in events_in(run_dir) if e["event"] == "pod_resumed"]
    assert resumed and resumed[-1]["resumed"] is True


def test_a_spot_reclaim_mid_run_restarts_the_job_on_a_fresh_pod(proj: Proj) -> None:
    body = (
        "echo \"attempt $RUNPOD_DEPLOY_ATTEMPT\"\n"
        "if [ \"$RUNPOD_DEPLOY_ATTEMPT\" = 1 ]; then sleep 120; fi\n"
        "mkdir -p /workspace/out && echo \"$RUNPOD_DEPLOY_ATTEMPT\" > /workspace/out/attempt\n"
        "echo '[job] DONE'\n"
    )
    config = proj.stack({
        "pod": {"spot": True},
        # The provider is asked about the pod every 15 s only: the job's SIGTERM exit (143) is
        # seen first, and must still be read as the pod's reclaim.
        "budget": {"poll_interval_sec": 30},
        "run": {"body": body, "restart": {"max_attempts": 3, "on": ["pod_killed_unexpected"]}},
        "artifacts": [
            {"label": "log", "remote_path": "/workspace/job.log", "local_path": "{run_dir}/pulled"},
            {"label": "out", "remote_path": "/workspace/out/", "local_path": "{run_dir}/out"},
        ],
        "telemetry": QUIET_TELEMETRY,
    })
    apply = start_cli(proj, "apply", "--config", str(config), "--yes", "--provider", "api")
    try:
        wait_until(lambda: len(run_dirs(proj.root)) == 1 and any(
            e["event"] == "job_launched" for e in events_in(run_dirs(proj.root)[0])),
            timeout=120, what="the first attempt launched")
        [first_pod] = proj.pods(config)
        proj.sim.fault("preempt", pod_id=first_pod["id"], kill_after_sec=1)
        _, stderr = apply.communicate(timeout=240)
    finally:
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode == 0, stderr[-3000:]
    [run_dir] = run_dirs(proj.root)
    assert (run_dir / "out" / "attempt").read_text().strip() == "2"
    assert "attempt 2" in (run_dir / "pulled" / "job.log").read_text()
    assert proj.pods(config) == [] and proj.state(config).pod is None
    manifest = json.loads(result_manifest(run_dir).read_text())
    attempts = manifest["job_attempts"]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "pod_killed"), (2, "succeeded")], attempts
    assert attempts[0]["pod_id"] == first_pod["id"] != attempts[1]["pod_id"] == manifest["pod_id"]
    assert all(a["usd"] > 0 for a in attempts), attempts
    restarted = [e for e in events_in(run_dir) if e["event"] == "job_restarted"]
    assert [e["attempt"] for e in restarted] == [2]


def result_manifest(run_dir: Path) -> Path:
    return run_dir / MANIFEST_FILENAME
