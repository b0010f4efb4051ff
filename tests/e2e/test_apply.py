"""`apply` end to end on the simulator: real pods (sshd), real rsync, real HTTP. Each test ends
with the leak check: no pod exists that the stack's state does not record."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.plan import PlanOptions, Reason, StepKind
from runpod_deploy.api import ApplyRequest, load_stack, make_plan
from runtime.rundir import RunOutcome

from .conftest import Project, ScaledClock, events_of, manifest_of, wait_for

pytestmark = pytest.mark.sim


def test_hello_applies_end_to_end_through_the_cli(project: Project) -> None:
    config = project.stack()
    exe = Path(sys.executable).with_name("runpod-deploy")
    done = subprocess.run(
        [str(exe), "apply", "--config", str(config), "--yes", "--provider", "api", "--print-run-dir"],
        env=project.env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.splitlines()[0].removeprefix("RUN_DIR="))
    assert run_dir.parent == project.root / "artifacts" / "runpod"

    manifest = manifest_of(run_dir)
    assert manifest["failed"] is False and manifest["outcome"] == "succeeded"
    assert manifest["gpu_id"] == "NVIDIA RTX A4000" and manifest["datacenter_id"] == "EU-RO-1"
    assert manifest["gpu_price_source"] == "pod_describe" and manifest["gpu_price_per_hour_usd"] > 0
    assert manifest["estimated_cost_usd"] > 0 and manifest["lifecycle_action"] == "delete"
    assert manifest["pod_final_state"] == "TERMINATED"
    assert [a["status"] for a in manifest["artifacts"]] == ["success"]
    assert "nvidia_smi_start.txt" in manifest["telemetry_files"]
    assert "[job] DONE" in (run_dir / "job.log").read_text()
    assert "[job] DONE" in (run_dir / "pulled" / "job.log").read_text()
    names = [e["event"] for e in events_of(run_dir)]
    for expected in ("run_started", "pod_created", "ssh_ready", "job_launched", "job_finished",
                     "artifact_pull_completed", "lifecycle_applied", "run_finished"):
        assert expected in names, expected

    assert project.live_pods() == []
    state = project.state(config)
    assert state.pod is None and state.pending is None and state.last_run.outcome == "succeeded"
    project.assert_no_leak(config)


RECYCLE_BODY = """set -euo pipefail
n=$(cat /workspace/counter 2>/dev/null || echo 0)
echo "workspace_counter=$n"
if [ -e /root/container-mark ]; then echo container=kept; else echo container=wiped; fi
echo $((n + 1)) > /workspace/counter
touch /root/container-mark
echo '[job] DONE'
"""


def test_recycle_resumes_the_same_pod_then_replaces_it_on_image_drift(project: Project) -> None:
    config = project.stack({"run": {"body": RECYCLE_BODY}, "lifecycle": {"on_success": "recycle"}})
    first = project.apply(config)
    assert first.ok, first.detail
    assert [p["desiredStatus"] for p in project.live_pods()] == ["EXITED"]
    assert "workspace_counter=0" in (first.run_dir / "job.log").read_text()

    second = project.apply(config)
    assert second.ok and second.pod_id == first.pod_id
    assert manifest_of(second.run_dir)["pod_resumed"] is True
    log = (second.run_dir / "job.log").read_text()
    assert "workspace_counter=1" in log, "/workspace (volume disk) survives a stop"
    assert "container=wiped" in log, "the container disk is wiped on stop"

    drifted = project.stack({"run": {"body": RECYCLE_BODY}, "lifecycle": {"on_success": "recycle"},
                             "pod": {"image": "runpod/pytorch:2.5.0-py3.11-cuda12.4.1-devel-ubuntu22.04"}})
    assert drifted == config
    stack = load_stack(config, env=project.env)
    plan = make_plan(stack, provider="api", env=project.env)
    assert [s.kind for s in plan.steps] == [StepKind.REPLACE]
    assert Reason.IMAGE_DRIFT in [r.reason for r in plan.steps[0].reasons]

    third = project.apply(config)
    assert third.ok and third.pod_id != first.pod_id
    assert "workspace_counter=0" in (third.run_dir / "job.log").read_text()
    assert {p["id"] for p in project.live_pods()} == {third.pod_id}
    project.assert_no_leak(config)


def test_stockout_in_the_first_datacenter_fails_over_to_the_next(project: Project) -> None:
    project.sim.set_stock("EU-RO-1", "NVIDIA RTX A4000", 0)
    config = project.stack()
    result = project.apply(config)
    assert result.ok, result.detail
    manifest = manifest_of(result.run_dir)
    assert manifest["datacenter_id"] == "US-IL-1"
    failovers = [e for e in events_of(result.run_dir) if e["event"] == "datacenter_failover"]
    assert failovers and failovers[0]["from"] == "NVIDIA RTX A4000@EU-RO-1"
    project.assert_no_leak(config)


def test_a_pinned_pair_refused_for_capacity_fails_with_the_attempt_on_record(project: Project) -> None:
    # Pinning skips the catalog, so the create itself is refused (RunPod's stock-out message).
    project.sim.fault("stockout", gpu="NVIDIA RTX A4000", datacenter="EU-RO-1")
    config = project.stack()
    result = project.apply(config, ApplyRequest(provider="api", gpu_id="NVIDIA RTX A4000", datacenter_id="EU-RO-1"))
    assert result.outcome is RunOutcome.PROVISIONING_FAILED and result.exit_code == 3, result.detail
    attempts = manifest_of(result.run_dir)["provisioning_attempts"]
    assert [(a["datacenter_id"], a["outcome"]) for a in attempts] == [("EU-RO-1", "stock_out")]
    assert project.live_pods() == []
    assert project.state(config).is_empty
    project.assert_no_leak(config)


def test_a_failing_job_pulls_its_log_and_stops_the_pod(project: Project) -> None:
    body = "echo 'Traceback (most recent call last):'\necho 'ValueError: boom'\nexit 1\n"
    config = project.stack({"run": {"body": body}, "lifecycle": {"on_failure": "stop"}})
    result = project.apply(config)
    assert result.outcome is RunOutcome.JOB_FAILED and result.exit_code == 1
    assert "ValueError: boom" in (result.run_dir / "job.log").read_text()
    assert [p["desiredStatus"] for p in project.live_pods()] == ["EXITED"]
    assert project.state(config).pod.pod_id == result.pod_id, "a stopped pod stays on record"
    assert manifest_of(result.run_dir)["failed"] is True
    project.assert_no_leak(config)


def test_a_pod_killed_mid_run_is_classified(project: Project) -> None:
    config = project.stack({"run": {"body": "echo started\nsleep 120\necho '[job] DONE'\n"}})

    def preempt_when_running() -> None:
        wait_for(lambda: any("job_launched" in p.read_text() for p in project.root.glob("artifacts/runpod/*/events.jsonl")), 60)
        pod_id = project.live_pods()[0]["id"]
        project.sim.fault("preempt", pod_id=pod_id)

    killer = threading.Thread(target=preempt_when_running, daemon=True)
    killer.start()
    result = project.apply(config)
    killer.join(5)
    assert result.outcome is RunOutcome.POD_KILLED and result.exit_code == 6, result.detail
    assert any(e["event"] == "pod_killed_unexpected" for e in events_of(result.run_dir))
    assert project.live_pods() == [], "on_failure: delete removed the stopped pod"
    project.assert_no_leak(config)


def test_the_cost_cap_stops_the_job(project: Project) -> None:
    config = project.stack({
        "budget": {"cost_cap_usd": 0.0005, "max_runtime_minutes": None, "poll_interval_sec": 1},
        "run": {"body": "echo started\nsleep 120\n"},
    })
    result = project.apply(config, ApplyRequest(provider="api", cost_cap_usd=0.0005))
    assert result.outcome is RunOutcome.BUDGET_EXCEEDED and result.exit_code == 4, result.detail
    assert "started" in (result.run_dir / "job.log").read_text()
    assert project.live_pods() == []
    project.assert_no_leak(config)


def test_max_runtime_stops_the_job(project: Project) -> None:
    config = project.stack({"budget": {"max_runtime_minutes": 1}, "run": {"body": "echo started\nsleep 600\n"}})
    result = project.apply(config, clock=ScaledClock(30))
    assert result.outcome is RunOutcome.RUNTIME_EXCEEDED and result.exit_code == 5, result.detail
    assert project.live_pods() == []
    project.assert_no_leak(config)


def test_force_fresh_replaces_a_recycled_pod(project: Project) -> None:
    config = project.stack({"lifecycle": {"on_success": "recycle"}})
    first = project.apply(config)
    stack = load_stack(config, env=project.env)
    plan = make_plan(stack, options=PlanOptions(force_fresh=True), provider="api", env=project.env)
    assert [s.kind for s in plan.steps] == [StepKind.REPLACE]
    second = project.apply(config, ApplyRequest(provider="api", plan_options=PlanOptions(force_fresh=True)))
    assert second.ok and second.pod_id != first.pod_id
    assert {p["id"] for p in project.live_pods()} == {second.pod_id}
    project.assert_no_leak(config)


class _FrozenNowClock(ScaledClock):
    """Wall-clock time stands still (every run starts in the same second); monotonic runs."""

    def __init__(self) -> None:
        super().__init__(1.0)
        from datetime import UTC, datetime

        self._now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

    def now(self):  # type: ignore[no-untyped-def]
        return self._now


def test_runs_started_in_the_same_second_get_distinct_run_ids(project: Project) -> None:
    """Parallel sweep shards start in the same second: their run dirs and run ids must differ,
    and the run id the job sees names its own run dir."""
    config = project.stack({"run": {"body": "echo 'run_id={run_id}'\necho '[job] DONE'\n"}})
    clock = _FrozenNowClock()
    first = project.apply(config, clock=clock)
    second = project.apply(config, clock=clock)
    assert first.ok and second.ok, (first.detail, second.detail)
    assert [first.run_dir.name, second.run_dir.name] == ["20261123T120000Z", "20261123T120000Z-001"]
    seen = [(r.run_dir / "pulled" / "job.log").read_text().splitlines()[0] for r in (first, second)]
    assert seen == ["run_id=e2e-20261123T120000Z", "run_id=e2e-20261123T120000Z-001"], seen
    assert [manifest_of(r.run_dir)["run_id"] for r in (first, second)] == [
        first.run_dir.name, second.run_dir.name]


def test_manifest_summary_totals_match_the_billing_meter_to_the_cent(project: Project) -> None:
    """The cost a user reads back (`manifest-summary --root`) is what RunPod bills for compute:
    three runs on 2x H100 ($5.98/hr, so a price or GPU-count slip shows in whole cents)."""
    import json

    config = project.stack({
        "pod": {"datacenters": ["US-IL-1"], "gpu_order": ["NVIDIA H100 80GB HBM3"], "gpu_count": 2},
        "run": {"body": "sleep 5\necho '[job] DONE'\n"},
    })
    pods = []
    for _ in range(3):
        result = project.apply(config)
        assert result.ok, result.detail
        pods.append(result.pod_id)
    done = subprocess.run([str(Path(sys.executable).parent / "runpod-deploy"), "manifest-summary",
                           "--root", str(project.root), "--json"],
                          capture_output=True, text=True, env=project.env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)["totals"]
    meter = project.sim.billing()["pods"]
    billed = sum(meter[pod_id]["compute_usd"] for pod_id in pods)
    assert totals["manifests"] == 3 and totals["failed"] == 0
    assert billed > 0.02, f"the runs cost whole cents ({billed})"
    assert abs(totals["estimated_cost_usd"] - billed) < 0.01, (totals, billed)
