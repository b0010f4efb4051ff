"""Faults from the simulator: each ends in its documented outcome (exit code, lifecycle), with
the run log pulled where it exists, and no pod left that the state does not record."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.plan import StepKind
from runpod_deploy.api import ApplyRequest, load_stack, make_plan
from runtime.rundir import RunOutcome

from .conftest import Proj, events_in, run_dirs, wait_until
from .test_kill_matrix import QUIET_TELEMETRY

pytestmark = pytest.mark.sim


@pytest.fixture(autouse=True)
def _no_fault_outlives_its_test(proj: Proj) -> Iterator[None]:
    yield
    proj.sim.clear_faults()


def _when_pod_is_up(proj: Proj, config: Path, action: object) -> threading.Thread:
    """Run `action(pod_id)` once the stack's pod has a container (in a thread)."""

    def wait_then_act() -> None:
        wait_until(lambda: any(p["sshdPid"] for p in proj.pods(config)), 60, "a running container")
        action(proj.pods(config)[0]["id"])  # type: ignore[operator]

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def test_api_429s_are_retried_and_the_run_succeeds(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    proj.sim.fault("http_error", status=429, count=3)
    proj.sim.fault("http_delay", seconds=1.0, count=1)
    result = proj.apply(config)
    assert result.ok, result.detail
    assert not [f for f in proj.sim.faults() if f["name"] in ("http_error", "http_delay")], "all were hit"
    proj.assert_no_leak(config)


def test_an_api_that_keeps_failing_is_a_clean_error_and_creates_nothing(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    billed = set(proj.sim.billing()["pods"])
    proj.sim.fault("http_error", status=503, count=1000)
    done = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api")
    proj.sim.clear_faults()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and "503" in done.stderr, done.stderr
    assert set(proj.sim.billing()["pods"]) == billed, "nothing was created"
    assert proj.state(config).is_empty


def test_a_create_answered_with_500_after_the_pod_exists_is_adopted_not_doubled(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    billed = set(proj.sim.billing()["pods"])
    proj.sim.fault("create_5xx", count=1)
    result = proj.apply(config)
    assert result.ok, result.detail
    assert len(set(proj.sim.billing()["pods"]) - billed) == 1, "exactly one pod was made"
    assert "exists: adopting it" in proj.log.getvalue()
    proj.assert_no_leak(config)


def test_a_5xx_on_create_that_made_nothing_fails_over(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    proj.sim.fault("http_error", status=502, count=1, route="podFindAndDeployOnDemand")
    result = proj.apply(config)
    assert result.ok, result.detail
    attempts = [(a.datacenter_id, a.outcome.value) for a in result.attempts]
    assert attempts == [("EU-RO-1", "create_failed"), ("US-IL-1", "created")], attempts
    proj.assert_no_leak(config)


def test_a_stockout_of_every_candidate_exits_3_and_creates_nothing(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    for dc in ("EU-RO-1", "US-IL-1"):
        proj.sim.fault("stockout", gpu="NVIDIA RTX A4000", datacenter=dc)
    billed = set(proj.sim.billing()["pods"])
    result = proj.apply(config)
    assert result.outcome is RunOutcome.PROVISIONING_FAILED and result.exit_code == 3, result.detail
    assert set(proj.sim.billing()["pods"]) == billed
    assert proj.state(config).is_empty
    assert (result.run_dir / "runpod_deploy_pull_manifest.json").exists()


def test_a_pod_killed_mid_run_exits_6_and_on_failure_stop_keeps_it_on_record(proj: Proj) -> None:
    config = proj.stack({"run": {"body": "echo started\nsleep 60\necho '[job] DONE'\n"},
                         "lifecycle": {"on_failure": "stop"}, "telemetry": QUIET_TELEMETRY})

    def preempt_once_launched() -> None:
        wait_until(lambda: any(e["event"] == "job_launched" for d in run_dirs(proj.root) for e in events_in(d)),
                   60, "job_launched")
        proj.sim.fault("preempt", pod_id=proj.pods(config)[0]["id"])

    thread = threading.Thread(target=preempt_once_launched, daemon=True)
    thread.start()
    result = proj.apply(config)
    thread.join(5)
    assert result.outcome is RunOutcome.POD_KILLED and result.exit_code == 6, result.detail
    assert [p["desiredStatus"] for p in proj.pods(config)] == ["EXITED"]
    assert proj.state(config).pod.pod_id == result.pod_id
    proj.assert_no_leak(config)


def test_zero_gpus_on_resume_replaces_the_pod(proj: Proj) -> None:
    config = proj.stack({"lifecycle": {"on_success": "recycle"}, "telemetry": QUIET_TELEMETRY})
    first = proj.apply(config)
    assert first.ok, first.detail
    proj.sim.fault("zero_gpu_resume", count=1, pod_id=first.pod_id)
    second = proj.apply(config)
    assert second.ok, second.detail
    assert second.pod_id != first.pod_id, "the zero-GPU pod was replaced"
    assert [p["id"] for p in proj.pods(config)] == [second.pod_id]
    assert "came back with 0 GPUs" in proj.log.getvalue()
    proj.assert_no_leak(config)


def test_a_stopped_pod_removed_behind_our_back_is_forgotten_and_recreated(proj: Proj) -> None:
    config = proj.stack({"lifecycle": {"on_success": "recycle"}, "telemetry": QUIET_TELEMETRY})
    first = proj.apply(config)
    proj.sim.fault("remove_stopped", pod_id=first.pod_id)
    plan = make_plan(load_stack(config, env=proj.env), provider="api", env=proj.env)
    assert [s.kind for s in plan.steps] == [StepKind.FORGET, StepKind.CREATE]
    assert plan.steps[0].pod_id == first.pod_id
    second = proj.apply(config)
    assert second.ok and second.pod_id != first.pod_id
    proj.assert_no_leak(config)


def test_ssh_dropped_three_times_during_the_run_resumes_the_log_and_succeeds(proj: Proj) -> None:
    body = "for i in $(seq 1 30); do echo line-$i; sleep 0.1; done\necho '[job] DONE'\n"
    config = proj.stack({"run": {"body": body}, "telemetry": QUIET_TELEMETRY})

    def drop_once_launched() -> None:
        wait_until(lambda: any(e["event"] == "job_launched" for d in run_dirs(proj.root) for e in events_in(d)),
                   60, "job_launched")
        proj.sim.fault("ssh_drop", times=3, pod_id=proj.pods(config)[0]["id"])

    thread = threading.Thread(target=drop_once_launched, daemon=True)
    thread.start()
    result = proj.apply(config)
    thread.join(5)
    assert result.ok, (result.detail, proj.log.getvalue()[-3000:])
    assert not [f for f in proj.sim.faults() if f["name"] == "ssh_drop"], "all three drops happened"
    streamed = [line for line in proj.log.getvalue().splitlines() if "| line-" in line]
    assert [line.rsplit("| ", 1)[1] for line in streamed] == [f"line-{i}" for i in range(1, 31)], \
        "every line streamed exactly once across the reconnects"
    proj.assert_no_leak(config)


def test_a_full_disk_on_the_pod_fails_the_job_with_its_log_pulled(proj: Proj) -> None:
    config = proj.stack({
        "setup": [{"command": "while [ ! -e /root/go ]; do sleep 0.1; done"}],
        "run": {"script_path": "/root/job.sh", "log_path": "/root/job.log",
                "body": "set -e\necho writing\ndd if=/dev/zero of=/workspace/big bs=64k count=64\necho '[job] DONE'\n"},
        "artifacts": [],
        "telemetry": QUIET_TELEMETRY,
    })

    def fill_then_go(pod_id: str) -> None:
        proj.sim.fault("disk_full", pod_id=pod_id, size_kb=64)
        (proj.sim.home / "pods" / pod_id / "container" / "root" / "go").write_text("")

    thread = _when_pod_is_up(proj, config, fill_then_go)
    result = proj.apply(config)
    thread.join(5)
    assert result.outcome is RunOutcome.JOB_FAILED and result.exit_code == 1, result.detail
    assert "No space left on device" in (result.run_dir / "job.log").read_text()
    assert proj.pods(config) == []
    proj.assert_no_leak(config)


def test_a_failure_marker_fails_the_run_with_the_log_pulled(proj: Proj) -> None:
    body = "echo 'Traceback (most recent call last):'\necho 'RuntimeError: CUDA out of memory'\n"
    config = proj.stack({"run": {"body": body}, "lifecycle": {"on_failure": "stop"}, "telemetry": QUIET_TELEMETRY})
    result = proj.apply(config)
    assert result.outcome is RunOutcome.JOB_FAILED and result.exit_code == 1, result.detail
    assert "failure marker" in result.detail or "without the success marker" in result.detail
    assert "CUDA out of memory" in (result.run_dir / "job.log").read_text()
    assert any(e["event"] == "failure_marker_seen" for e in events_in(result.run_dir))
    assert [p["desiredStatus"] for p in proj.pods(config)] == ["EXITED"]
    proj.assert_no_leak(config)


def test_malformed_runpodctl_output_is_a_clean_error(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    proj.sim.fault("runpodctl_malformed", count=10)
    done = proj.cli("plan", "--config", str(config), "--provider", "runpodctl")
    assert done.returncode == 1 and "Traceback" not in done.stderr, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: "), done.stderr
    assert proj.pods(config) == []


__all__ = ["ApplyRequest"]


def test_a_pod_whose_sshd_never_answers_is_deleted_and_the_next_candidate_tried(proj: Proj) -> None:
    config = proj.stack({"budget": {"ssh_ready_timeout_sec": 4}, "telemetry": QUIET_TELEMETRY})
    proj.sim.knobs(sshd_delay_sec=30)
    try:
        result = proj.apply(config)
    finally:
        proj.sim.knobs(sshd_delay_sec=0)
    assert result.outcome is RunOutcome.PROVISIONING_FAILED and result.exit_code == 3, result.detail
    outcomes = [(a.datacenter_id, a.outcome.value) for a in result.attempts]
    assert outcomes == [("EU-RO-1", "boot_timeout"), ("US-IL-1", "boot_timeout")], outcomes
    assert all(a.pod_id for a in result.attempts), "each attempt made a pod, and says which"
    assert proj.pods(config) == [], "every pod that never became reachable was deleted"
    assert proj.state(config).is_empty
