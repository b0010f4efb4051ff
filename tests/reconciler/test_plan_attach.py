"""The plan attaches to an unfinished run the state records (the planner is pure: the state
carries the run's handle), and says so: "attach to run X (running 3m12s)" or "finish run X
(exited 0, not pulled)". `--rerun`, `--force-fresh` or a pod that is not kept run the job anew."""

from __future__ import annotations

import pytest

from reconciler.observed import PodStatus
from reconciler.plan import PlanOptions, StepKind
from reconciler.planner import plan
from reconciler.render import render_markdown, render_text
from reconciler.state import RunJob
from tests.reconciler.test_planner import SPEC, STATES, observe, pod

JOB = RunJob(run_id="20260102T030000Z", run_dir="/p/artifacts/runpod/20260102T030000Z", pod_id="p1",
             control_dir="/root/.runpod-deploy/20260102T030000Z", log_path="/w/r.log",
             launched_at="2026-01-02T03:00:53+00:00")
WITH_JOB = STATES["record"].evolve(job=JOB)


def test_a_running_pod_with_an_unfinished_run_is_attached_to() -> None:
    made = plan(SPEC, WITH_JOB, observe((pod(),)))
    assert [s.kind for s in made.steps] == [StepKind.NOOP]
    assert made.attach is not None and made.attach.elapsed_sec == 3 * 60 + 12
    assert made.attach.describe() == "attach to run 20260102T030000Z (running 3m12s)"
    assert "Job: attach to run 20260102T030000Z (running 3m12s)" in render_text(made)
    assert "attach to run 20260102T030000Z" in render_markdown(made)


def test_a_run_seen_ending_is_finished_not_run_again() -> None:
    made = plan(SPEC, WITH_JOB.evolve(job=JOB.model_copy(update={"exit_code": 0})), observe((pod(),)))
    assert made.attach is not None
    assert made.attach.describe() == "finish run 20260102T030000Z (exited 0, not pulled)"


def test_a_stopped_pod_is_resumed_to_finish_the_run() -> None:
    made = plan(SPEC, WITH_JOB, observe((pod(PodStatus.EXITED),)))
    assert [s.kind for s in made.steps] == [StepKind.RESUME] and made.attach is not None


@pytest.mark.parametrize("options", [PlanOptions(rerun=True), PlanOptions(force_fresh=True)])
def test_rerun_and_force_fresh_run_the_job_again(options: PlanOptions) -> None:
    assert plan(SPEC, WITH_JOB, observe((pod(),)), options).attach is None


def test_a_gone_pod_has_no_run_to_attach_to() -> None:
    made = plan(SPEC, WITH_JOB, observe(()))
    assert made.attach is None and StepKind.CREATE in [s.kind for s in made.steps]


def test_the_plan_round_trips_with_its_attach() -> None:
    made = plan(SPEC, WITH_JOB, observe((pod(),)))
    assert type(made).from_json(made.to_json()) == made
