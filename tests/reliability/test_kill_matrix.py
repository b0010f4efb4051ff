"""The kill matrix: SIGKILL the real `runpod-deploy apply` at every named crash point
(`RUNPOD_DEPLOY_CRASH_AT`, see runtime/failpoints.py), then check that

1. right after the kill, no pod of the stack exists that the state does not point at (its pod
   record, or its pending operation's pod name or id), and the state file parses;
2. `plan` shows exactly what exists: the step kind (create, adopt, reuse, replace, forget +
   create, resume) and the pod it is about;
3. a following `apply` converges: it succeeds, the artifacts are complete, the state is valid
   (no pending operation, same lineage, a higher serial), and the stack's pods are what the
   lifecycle policy leaves (none for delete, one stopped for stop/recycle, one running for
   preserve), each recorded by the state.

Crash points before the lifecycle step do not depend on the policy in the killed process (it
never reaches the lifecycle), so each runs under `delete` and a sample of them under the other
policies; the points around the lifecycle call and the final state writes run under every
policy that makes a call there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.plan import PlanOptions, StepKind
from runpod_deploy.api import ApplyRequest, load_stack, make_plan
from runtime.failpoints import POINTS
from runtime.rundir import RunOutcome

from .conftest import Proj, run_dirs

pytestmark = pytest.mark.sim

JOB = "echo started\necho payload > /workspace/out/result.txt\necho '[job] DONE'\n"

QUIET_TELEMETRY = {"enabled": False, "capture_nvidia_smi": False, "capture_dmesg": False,
                   "capture_pod_describe": False, "capture_remote_env": False}
"""Snapshots off: they are tested elsewhere and would double each apply's time here."""

# (crash point, lifecycle policy, the plan's step kinds after the kill)
CASES = [
    ("after_lock", "delete", [StepKind.CREATE]),
    ("before_create_call", "delete", [StepKind.CREATE]),
    ("after_create_call", "delete", [StepKind.ADOPT]),
    ("ssh_wait", "delete", [StepKind.NOOP]),
    ("setup", "delete", [StepKind.NOOP]),
    ("stage", "delete", [StepKind.NOOP]),
    ("launch", "delete", [StepKind.NOOP]),
    ("monitor", "delete", [StepKind.NOOP]),
    ("before_pull", "delete", [StepKind.NOOP]),
    ("pull", "delete", [StepKind.NOOP]),
    ("before_lifecycle_call", "delete", [StepKind.REPLACE]),
    ("after_lifecycle_call", "delete", [StepKind.FORGET, StepKind.CREATE]),
    ("before_manifest", "delete", [StepKind.CREATE]),
    ("state_write@2", "delete", [StepKind.ADOPT]),
    ("before_lifecycle_call", "stop", [StepKind.NOOP]),
    ("after_lifecycle_call", "stop", [StepKind.RESUME]),
    ("before_manifest", "stop", [StepKind.RESUME]),
    ("before_lifecycle_call", "recycle", [StepKind.NOOP]),
    ("after_lifecycle_call", "recycle", [StepKind.RESUME]),
    ("before_manifest", "recycle", [StepKind.RESUME]),
    ("monitor", "preserve", [StepKind.NOOP]),
    ("before_manifest", "preserve", [StepKind.NOOP]),
]


def test_every_crash_point_is_in_the_matrix() -> None:
    covered = {point.partition("@")[0] for point, _, _ in CASES}
    assert covered == set(POINTS)
    assert {policy for _, policy, _ in CASES} == {"delete", "stop", "recycle", "preserve"}


def _stack(proj: Proj, policy: str) -> Path:
    (proj.root / "src").mkdir()
    (proj.root / "src" / "train.py").write_text("print('hi')\n")
    (proj.root / "data").mkdir()
    (proj.root / "data" / "rows.csv").write_text("a,b\n1,2\n")
    return proj.stack({
        "setup": [{"command": "mkdir -p /workspace/out"}],
        "staging": [
            {"label": "code", "source": "src/", "destination": "/workspace/code"},
            {"label": "data", "source": "data/", "destination": "/workspace/data"},
        ],
        "run": {"body": JOB},
        "artifacts": [
            {"label": "log", "remote_path": "/workspace/job.log", "local_path": "{run_dir}/pulled"},
            {"label": "out", "remote_path": "/workspace/out/", "local_path": "{run_dir}/out"},
        ],
        "lifecycle": {"on_success": policy, "on_failure": "stop" if policy == "recycle" else policy},
        "telemetry": QUIET_TELEMETRY,
    })


@pytest.mark.parametrize(("point", "policy", "expected"), CASES, ids=[f"{p}-{lc}" for p, lc, _ in CASES])
def test_sigkill_at_a_crash_point_then_plan_shows_it_and_apply_converges(
    proj: Proj, point: str, policy: str, expected: list[StepKind]
) -> None:
    config = _stack(proj, policy)
    killed = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", crash_at=point)
    assert killed.returncode == -9, f"the crash point {point} was not reached:\n{killed.stderr[-3000:]}"

    # 1. Nothing exists that the state does not point at; the state parses.
    state = proj.state(config)
    known_ids = {state.pod.pod_id} if state.pod else set()
    if state.pending is not None:
        known_ids.add(state.pending.pod_id or "")
    known_names = {state.pending.pod_name} if state.pending else set()
    live = proj.pods(config)
    assert len(live) <= 1, live
    for pod in live:
        assert pod["id"] in known_ids or pod["name"] in known_names, (pod, state)

    # 2. The plan shows exactly what exists.
    stack = load_stack(config, env=proj.env)
    plan = make_plan(stack, provider="api", env=proj.env)
    assert [s.kind for s in plan.steps] == expected, plan.steps
    assert not plan.orphans, plan.orphans
    about = {s.pod_id for s in plan.steps if s.pod_id}
    assert about == {p["id"] for p in live} | ({state.pod.pod_id} if state.pod else set()) | (
        {state.pending.pod_id} if state.pending and state.pending.pod_id else set()
    ), (plan.steps, live, state)

    # 3. The next apply converges.
    result = proj.apply(config)
    assert result.outcome is RunOutcome.SUCCEEDED, (result.detail, proj.log.getvalue()[-3000:])
    assert (result.run_dir / "out" / "result.txt").exists(), (
        sorted(run_dirs(proj.root)), result.run_dir, proj.log.getvalue()[-3000:])
    assert (result.run_dir / "out" / "result.txt").read_text() == "payload\n"
    assert "[job] DONE" in (result.run_dir / "pulled" / "job.log").read_text()
    after = proj.state(config)
    assert after.pending is None
    if state.lineage is not None:
        assert after.lineage == state.lineage and after.serial > state.serial
    proj.assert_no_leak(config)
    remaining = proj.pods(config)
    if policy == "delete":
        assert remaining == [] and after.pod is None
    else:
        want = "RUNNING" if policy == "preserve" else "EXITED"
        assert [p["desiredStatus"] for p in remaining] == [want]
        assert after.pod is not None and after.pod.pod_id == remaining[0]["id"]
    assert len(run_dirs(proj.root)) >= 1


def test_a_job_left_running_by_a_killed_apply_is_stopped_before_a_rerun_starts(proj: Proj) -> None:
    """The killed apply's job runs on, detached; `apply --rerun` reuses the pod and runs the
    job again. If the old job were left alone it would write its success marker into the new
    run's log (the log path is the same) and the new run would "succeed" before its own job
    ends. (Without --rerun the next apply attaches instead: tests/reliability/test_long_jobs.py.)"""
    body = "echo 'started {run_id}'\nsleep 3\necho '[job] DONE {run_id}'\n"
    config = proj.stack({"run": {"body": body}, "telemetry": QUIET_TELEMETRY})
    killed = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", crash_at="monitor")
    assert killed.returncode == -9, killed.stderr[-2000:]
    first_run = run_dirs(proj.root)[0].name

    result = proj.apply(config, ApplyRequest(provider="api", plan_options=PlanOptions(rerun=True)))
    assert result.ok, result.detail
    log = (result.run_dir / "job.log").read_text()
    lines = log.splitlines()
    assert [line.split(" rel-")[0] for line in lines] == ["started", "[job] DONE"], log
    assert all(line.endswith(f"-{result.run_dir.name}") for line in lines), (
        f"the killed run's job ({first_run}) wrote into the new run's log:\n{log}")
    proj.assert_no_leak(config)
