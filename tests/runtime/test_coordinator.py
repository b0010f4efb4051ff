"""The apply coordinator on fakes: every step kind and every failure class, in milliseconds.

The provider is an in-memory fake, the SSH session factory makes sessions that are ready at
once, and the job part is a stand-in that succeeds or raises what a job can raise. The journal
(the real state store, on a temp dir), the provisioner, the lifecycle and the manifest are the
real parts. The simulator tests (tests/e2e, tests/reliability) cover the same paths on real
sshd and rsync."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.observed import (
    Catalog,
    CloudType,
    GpuAvailability,
    GpuPrice,
    Observation,
    ObservedPod,
    PodStatus,
    SshEndpoint,
    StockStatus,
)
from reconciler.plan import PlacementOptions, Plan, PlanOptions, StepKind
from reconciler.state import PendingKind, PendingOperation, PodRecord, StackState
from runpod_deploy.api import Stack, load_stack, make_plan
from runtime.errors import (
    BudgetExceededError,
    CapacityError,
    JobFailedError,
    PodKilledError,
    RemoteCommandError,
    RuntimeExceededError,
    StalePlanError,
)
from runtime.executor import ApplyOptions, Executor, Transports
from runtime.outcome import ArtifactsMissingError, RunProgress
from runtime.reporter import Reporter
from runtime.rundir import EventLog, RunOutcome
from runtime.statestore import StateStore

A4000, A5000 = "NVIDIA RTX A4000", "NVIDIA RTX A5000"
RO, IL = "EU-RO-1", "US-IL-1"
IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"


class FakeClock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def now(self) -> datetime:
        return datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        self.mono += 0.01
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.mono += seconds


@dataclass
class FakeProvider:
    """Pods in a dict; `refuse` pairs answer a stock-out; `resume_gpus` is what a start gives."""

    name: str = "fake"
    refuse: set[tuple[str, str]] = field(default_factory=set)
    resume_gpus: int = 1
    pods: dict[str, ObservedPod] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def _up(self, pod: ObservedPod, **changes: Any) -> ObservedPod:
        pod = replace(pod, status=PodStatus.RUNNING, container_up=True, uptime_sec=5.0,
                      ssh=SshEndpoint("127.0.0.1", 22022), **changes)
        self.pods[pod.pod_id] = pod
        return pod

    def list_pods(self, *, name_prefix: str | None = None) -> tuple[ObservedPod, ...]:
        return tuple(p for p in self.pods.values() if not name_prefix or p.name.startswith(name_prefix))

    def get_pod(self, pod_id: str) -> ObservedPod | None:
        return self.pods.get(pod_id)

    def create_pod(self, request: Any) -> ObservedPod:
        self.calls.append(f"create {request.gpu_type_id}@{request.datacenter_id}")
        if (request.gpu_type_id, request.datacenter_id) in self.refuse:
            raise CapacityError("no capacity", gpu_type_id=request.gpu_type_id, datacenter_id=request.datacenter_id)
        pod = ObservedPod(pod_id=f"pod{next(self.ids)}", name=request.name, status=PodStatus.CREATED,
                          image=request.image, gpu_type_id=request.gpu_type_id, gpu_count=request.gpu_count,
                          datacenter_id=request.datacenter_id, cost_per_hr=0.25)
        return self._up(pod)

    def start_pod(self, pod_id: str, *, gpu_count: int) -> ObservedPod:
        self.calls.append(f"start {pod_id}")
        return self._up(self.pods[pod_id], gpu_count=self.resume_gpus)

    def stop_pod(self, pod_id: str) -> None:
        self.calls.append(f"stop {pod_id}")
        self.pods[pod_id] = replace(self.pods[pod_id], status=PodStatus.EXITED, container_up=False, ssh=None)

    def terminate_pod(self, pod_id: str) -> None:
        self.calls.append(f"terminate {pod_id}")
        self.pods.pop(pod_id, None)

    def catalog(self, *, cloud_type: CloudType | None = None) -> Catalog:
        return Catalog()

    def list_network_volumes(self) -> tuple[()]:
        return ()


class FakeSession:
    closed = 0

    def wait_until_ready(self, *, timeout_sec: float, on_attempt: Callable[[Any], None]) -> None:
        return None

    def close(self) -> None:
        FakeSession.closed += 1

    def system_ssh_target(self) -> None:
        return None


@dataclass
class FakeJob:
    """The job part: raises `error` (after marking the job started), or succeeds."""

    error: BaseException | None = None
    ran_on: list[str] = field(default_factory=list)
    keep_pod: bool = False
    """Act as the teardown rule does when the pulled artifacts do not match the pod's."""

    def run(
        self,
        run: RunProgress,
        session: Any,
        run_dir: Path,
        events: EventLog,
        *,
        journal: Any = None,
        attach: Any = None,
        detach: bool = False,
    ) -> None:
        assert run.pod is not None and session is not None
        self.ran_on.append(run.pod.pod_id)
        run.run_started = True
        run.keep_pod = self.keep_pod
        if self.error is not None:
            raise self.error


class Recorder(Reporter):
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


CATALOG = Catalog(
    availability=(
        GpuAvailability(gpu_type_id=A4000, datacenter_id=RO, stock=StockStatus.NONE),
        GpuAvailability(gpu_type_id=A5000, datacenter_id=RO, stock=StockStatus.HIGH),
        GpuAvailability(gpu_type_id=A4000, datacenter_id=IL, stock=StockStatus.LOW),
        GpuAvailability(gpu_type_id=A5000, datacenter_id=IL, stock=StockStatus.MEDIUM),
    ),
    prices=(GpuPrice(gpu_type_id=A4000, secure_price=0.25), GpuPrice(gpu_type_id=A5000, secure_price=0.27)),
)


@dataclass
class World:
    tmp: Path
    provider: FakeProvider = field(default_factory=FakeProvider)
    clock: FakeClock = field(default_factory=FakeClock)
    reporter: Recorder = field(default_factory=Recorder)
    stack: Stack | None = None
    catalog: Catalog = CATALOG

    def load(self, **lifecycle: str) -> Stack:
        key = self.tmp / "id_test"
        key.write_text("not a real key\n")
        key.chmod(0o600)
        data = {
            "schema_version": 2, "name": "unit",
            "pod": {"image": IMAGE, "datacenters": [RO, IL], "gpu_order": [A4000, A5000]},
            "storage": {"mode": "ephemeral", "volume_gb": 5},
            "budget": {"cost_cap_usd": 5.0},
            "ssh": {"key_path": str(key)},
            "run": {"script_path": "/workspace/job.sh", "log_path": "/workspace/job.log",
                    "success_marker": "[job] DONE", "body": "echo '[job] DONE'\n"},
            "lifecycle": {"on_success": "delete", "on_failure": "delete", **lifecycle},
        }
        (self.tmp / "stack.yaml").write_text(yaml.safe_dump(data))
        env = {"HOME": str(self.tmp / "home"), "RUNPOD_DEPLOY_STATE_DIR": str(self.tmp / "state")}
        self.stack = load_stack(self.tmp / "stack.yaml", env=env, stamp="20260501T120000Z")
        return self.stack

    @property
    def store(self) -> StateStore:
        assert self.stack is not None
        return StateStore(self.stack.state_path, self.stack.identity)

    def plan(self, options: PlanOptions | None = None) -> tuple[Plan, StackState]:
        assert self.stack is not None
        options = options or PlanOptions()
        state = self.store.read()
        observation = Observation(observed_at=self.clock.now(), pods=tuple(self.provider.pods.values()),
                                  catalog=self.catalog, provider="fake")
        return make_plan(self.stack, options=options, state=state, observation=observation), state

    def apply(self, job: FakeJob, plan: Plan, state: StackState, options: ApplyOptions | None = None) -> Any:
        assert self.stack is not None
        options = options or ApplyOptions()
        names = itertools.count(1)
        executor = Executor(
            spec=self.stack.job.spec, project_root=self.tmp, config_path=self.stack.config_path,
            store=self.store, provider=self.provider, clock=self.clock, reporter=self.reporter,
            options=options, make_pod_name=lambda: f"{plan.stack.pod_prefix}n{next(names)}",
            hostkeys_path=self.tmp / "hostkeys.json", env={},
            transports=Transports(session_factory=lambda *a, **k: FakeSession()), job_runner=job,
        )
        run_dir = self.tmp / "run"
        run_dir.mkdir(exist_ok=True)
        with EventLog(run_dir / "events.jsonl", now=self.clock.now) as events:
            return executor.apply(plan, state, run_dir=run_dir, events=events)

    def events(self) -> list[dict[str, Any]]:
        lines = (self.tmp / "run" / "events.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def record(self, pod: ObservedPod) -> None:
        assert self.stack is not None
        state = self.store.read()
        self.store.write(state.evolve(pod=PodRecord(
            pod_id=pod.pod_id, name=pod.name, gpu_type_id=pod.gpu_type_id, datacenter_id=pod.datacenter_id,
            image=pod.image, gpu_count=1, created_at="2026-05-01T11:00:00+00:00")))


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.load()
    return w


def _existing(world: World, status: PodStatus, image: str = IMAGE) -> ObservedPod:
    assert world.stack is not None
    pod = ObservedPod(pod_id="old1", name=f"{world.stack.pod_prefix}old", status=status, image=image,
                      gpu_type_id=A5000, gpu_count=1, datacenter_id=RO, cost_per_hr=0.27)
    world.provider.pods[pod.pod_id] = (
        world.provider._up(pod) if status is PodStatus.RUNNING else pod)
    world.record(pod)
    return pod


# -- step kinds -----------------------------------------------------------------------------


def test_create_walks_the_plans_order_skipping_what_the_plan_skipped(world: World) -> None:
    world.provider.refuse = {(A5000, RO)}
    plan, state = world.plan()
    assert [s.kind for s in plan.steps] == [StepKind.CREATE]
    result = world.apply(FakeJob(), plan, state)
    assert result.outcome is RunOutcome.SUCCEEDED and result.exit_code == 0
    # A4000@RO is out of stock in the plan's catalog: never asked; A5000@RO refuses; A4000@IL is next.
    assert world.provider.calls[:2] == [f"create {A5000}@{RO}", f"create {A4000}@{IL}"]
    skipped = [e for e in world.events() if e["event"] == "datacenter_failover" and e["to"] is None]
    assert [(e["from"], e["reason"]) for e in skipped] == [(f"{A4000}@{RO}", "catalog: out of stock")]
    assert [a.outcome.value for a in result.attempts] == ["stock_out", "created"]
    assert result.state.pod is None and world.provider.calls[-1].startswith("terminate")
    manifest = json.loads(result.manifest_path.read_text())
    assert (manifest["gpu_id"], manifest["datacenter_id"]) == (A4000, IL)


def test_create_uses_the_plans_pod_request(world: World) -> None:
    plan, state = world.plan()
    assert plan.pod_request is not None
    plan = plan.model_copy(update={"pod_request": plan.pod_request.model_copy(update={"image": "planned:1"})})
    world.load(on_success="preserve")
    result = world.apply(FakeJob(), plan, state)
    assert result.ok
    [pod] = world.provider.pods.values()
    assert pod.image == "planned:1", "apply rebuilt the request instead of using the plan's"


def test_resume_starts_the_stopped_pod(world: World) -> None:
    old = _existing(world, PodStatus.EXITED)
    plan, state = world.plan()
    assert [s.kind for s in plan.steps] == [StepKind.RESUME]
    job = FakeJob()
    result = world.apply(job, plan, state)
    assert result.ok and job.ran_on == [old.pod_id]
    assert world.provider.calls[0] == f"start {old.pod_id}"
    assert not any(c.startswith("create") for c in world.provider.calls)


def test_a_resume_that_comes_back_without_gpus_is_replaced(world: World) -> None:
    old = _existing(world, PodStatus.EXITED)
    world.provider.resume_gpus = 0
    plan, state = world.plan()
    job = FakeJob()
    result = world.apply(job, plan, state)
    assert result.ok
    assert world.provider.calls[:3] == [f"start {old.pod_id}", f"terminate {old.pod_id}", f"create {A5000}@{RO}"]
    assert job.ran_on != [old.pod_id]


def test_noop_reuses_the_running_pod(world: World) -> None:
    old = _existing(world, PodStatus.RUNNING)
    plan, state = world.plan()
    assert [s.kind for s in plan.steps] == [StepKind.NOOP]
    job = FakeJob()
    assert world.apply(job, plan, state).ok
    assert job.ran_on == [old.pod_id]
    assert world.provider.calls == [f"terminate {old.pod_id}"]


def test_adopt_records_the_pod_an_interrupted_create_made(world: World) -> None:
    assert world.stack is not None
    name = f"{world.stack.pod_prefix}cut"
    made = world.provider._up(ObservedPod(pod_id="made1", name=name, status=PodStatus.RUNNING, image=IMAGE,
                                          gpu_type_id=A5000, gpu_count=1, datacenter_id=RO, cost_per_hr=0.27))
    state = world.store.read()
    world.store.write(state.evolve(pending=PendingOperation(kind=PendingKind.CREATE, pod_name=name,
                                                            started_at="2026-05-01T11:59:00+00:00")))
    plan, state = world.plan()
    assert [s.kind for s in plan.steps] == [StepKind.ADOPT]
    job = FakeJob()
    result = world.apply(job, plan, state)
    assert result.ok and job.ran_on == [made.pod_id]
    assert not any(c.startswith("create") for c in world.provider.calls)


def test_forget_a_pod_deleted_behind_our_back_then_create(world: World) -> None:
    gone = _existing(world, PodStatus.RUNNING)
    del world.provider.pods[gone.pod_id]
    plan, state = world.plan()
    assert [s.kind for s in plan.steps] == [StepKind.FORGET, StepKind.CREATE]
    job = FakeJob()
    assert world.apply(job, plan, state).ok
    assert job.ran_on and job.ran_on != [gone.pod_id]
    assert f"terminate {gone.pod_id}" not in world.provider.calls


def test_replace_deletes_then_creates(world: World) -> None:
    old = _existing(world, PodStatus.RUNNING, image="runpod/pytorch:old")
    plan, state = world.plan()
    assert [s.kind for s in plan.steps] == [StepKind.REPLACE]
    job = FakeJob()
    assert world.apply(job, plan, state).ok
    assert world.provider.calls[:2] == [f"terminate {old.pod_id}", f"create {A5000}@{RO}"]
    assert job.ran_on and job.ran_on != [old.pod_id]


def test_delete_orphans_then_create(world: World) -> None:
    assert world.stack is not None
    orphan = world.provider._up(ObservedPod(pod_id="orph", name=f"{world.stack.pod_prefix}stray",
                                            status=PodStatus.RUNNING, image=IMAGE))
    plan, state = world.plan(PlanOptions(delete_orphans=True))
    assert {s.kind for s in plan.steps} == {StepKind.CREATE, StepKind.DELETE}
    assert world.apply(FakeJob(), plan, state).ok
    assert f"terminate {orphan.pod_id}" in world.provider.calls


def test_a_plan_made_against_another_state_is_refused(world: World) -> None:
    plan, state = world.plan()
    world.store.write(state.evolve())  # the state moved on (serial + 1)
    with pytest.raises(StalePlanError):
        world.apply(FakeJob(), plan, world.store.read())
    assert world.provider.calls == []


# -- failure classes ------------------------------------------------------------------------

FAILURES = [
    (BudgetExceededError("over the cap"), RunOutcome.BUDGET_EXCEEDED, 4),
    (RuntimeExceededError("over max_runtime"), RunOutcome.RUNTIME_EXCEEDED, 5),
    (PodKilledError("pod gone"), RunOutcome.POD_KILLED, 6),
    (RemoteCommandError("false", 1, ""), RunOutcome.REMOTE_COMMAND_FAILED, 1),
    (JobFailedError("failure marker seen"), RunOutcome.JOB_FAILED, 1),
    (ArtifactsMissingError("required artifacts could not be pulled: ['x']"), RunOutcome.ARTIFACT_PULL_FAILED, 1),
    (KeyboardInterrupt(), RunOutcome.INTERRUPTED, 130),
    (ValueError("a bug"), RunOutcome.JOB_FAILED, 1),
]


@pytest.mark.parametrize(("error", "outcome", "code"), FAILURES, ids=[f[1].value + "-" + type(f[0]).__name__
                                                                       for f in FAILURES])
def test_each_failure_class_ends_in_on_failure_a_manifest_and_its_exit_code(
        world: World, error: BaseException, outcome: RunOutcome, code: int) -> None:
    world.load(on_success="delete", on_failure="stop")
    plan, state = world.plan()
    result = world.apply(FakeJob(error=error), plan, state)
    assert (result.outcome, result.exit_code) == (outcome, code)
    assert result.lifecycle_action is not None and result.lifecycle_action.value == "stop"
    assert result.state.pod is not None and result.state.pending is None  # stopped, still recorded
    [pod] = world.provider.pods.values()
    assert pod.status is PodStatus.EXITED
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["outcome"] == outcome.value and manifest["failed"] is True
    assert world.events()[-1]["event"] == "run_finished"
    if isinstance(error, ValueError):
        assert any("unexpected error: ValueError: a bug" in w for w in world.reporter.warnings)


def test_artifacts_that_do_not_match_stop_the_pod_even_under_delete(world: World) -> None:
    """The teardown rule: a run whose artifacts are not all here never deletes the pod."""
    world.load(on_success="delete", on_failure="delete")
    plan, state = world.plan()
    result = world.apply(FakeJob(error=ArtifactsMissingError("out: result.txt (missing locally)"), keep_pod=True),
                         plan, state)
    assert result.outcome is RunOutcome.ARTIFACT_PULL_FAILED and result.exit_code == 1
    assert result.lifecycle_action is not None and result.lifecycle_action.value == "stop"
    [pod] = world.provider.pods.values()
    assert pod.status is PodStatus.EXITED and result.state.pod is not None
    assert any("not deleting pod" in w for w in world.reporter.warnings)


def test_provisioning_failure_leaves_no_pod_and_exit_3(world: World) -> None:
    world.provider.refuse = {(A5000, RO), (A4000, IL), (A5000, IL)}
    plan, state = world.plan()
    job = FakeJob()
    result = world.apply(job, plan, state)
    assert (result.outcome, result.exit_code) == (RunOutcome.PROVISIONING_FAILED, 3)
    assert job.ran_on == [] and result.state.pod is None and result.lifecycle_action is None
    assert world.provider.pods == {}
    assert len(result.attempts) == 3


def test_a_placement_with_nothing_left_fails_before_any_create(world: World) -> None:
    plan, state = world.plan(PlanOptions(placement=PlacementOptions(max_gpu_price=0.01)))
    assert plan.placement is not None and plan.placement.error
    result = world.apply(FakeJob(), plan, state)
    assert result.outcome is RunOutcome.PROVISIONING_FAILED
    assert world.provider.calls == []


# -- one placement: plan, apply and estimate agree -------------------------------------------

NOT_LISTED_RO = Catalog(availability=tuple(a for a in CATALOG.availability
                                           if (a.gpu_type_id, a.datacenter_id) != (A5000, RO)),
                        prices=CATALOG.prices)
ALL_STOCKED = Catalog(availability=tuple(replace(a, stock=StockStatus.HIGH) for a in CATALOG.availability),
                      prices=CATALOG.prices)

PLACEMENT_CASES = {
    "all in stock": (ALL_STOCKED, PlacementOptions()),
    "one out of stock": (CATALOG, PlacementOptions()),
    "not listed in a datacenter": (NOT_LISTED_RO, PlacementOptions()),
    "no stock data": (Catalog(prices=CATALOG.prices), PlacementOptions()),
    "price cap": (ALL_STOCKED, PlacementOptions(max_gpu_price=0.26)),
    "pinned pair": (CATALOG, PlacementOptions(gpu_id=A5000, datacenter_id=IL)),
}


@pytest.mark.parametrize("case", list(PLACEMENT_CASES))
def test_plan_apply_and_estimate_walk_the_same_candidates_with_the_same_skip_reasons(
        world: World, case: str) -> None:
    from runtime import ops

    catalog, placement = PLACEMENT_CASES[case]
    world.catalog = catalog
    world.provider.refuse = {(g, d) for g in (A4000, A5000) for d in (RO, IL)}  # apply tries every one
    plan, state = world.plan(PlanOptions(placement=placement))
    assert plan.placement is not None
    planned = [(e.gpu_type_id, e.datacenter_id) for e in plan.placement.candidates]
    planned_skips = [(f"{e.gpu_type_id}@{e.datacenter_id}", e.skipped) for e in plan.placement.skipped]
    assert planned, "every case leaves something to try"

    result = world.apply(FakeJob(), plan, state, ApplyOptions(
        gpu_id=placement.gpu_id, datacenter_id=placement.datacenter_id, max_gpu_price=placement.max_gpu_price))
    assert [(a.gpu_id, a.datacenter_id) for a in result.attempts] == planned
    applied_skips = [(e["from"], e["reason"].removeprefix("catalog: ")) for e in world.events()
                     if e["event"] == "datacenter_failover" and e["to"] is None
                     and not e["reason"].startswith("stock-out")]  # the last refused create
    assert applied_skips == planned_skips

    if placement == PlacementOptions():  # estimate has no pin or price-cap flags
        assert world.stack is not None
        walk = ops.estimate(world.stack.job.spec, catalog).walk
        assert [(c.gpu_type_id, c.datacenter_id) for c in walk if not c.outcome.startswith("skipped")] == planned
        assert [(f"{c.gpu_type_id}@{c.datacenter_id}", c.outcome.removeprefix("skipped: "))
                for c in walk if c.outcome.startswith("skipped")] == planned_skips


def test_the_cases_cover_every_skip_reason(world: World) -> None:
    """The table above is only worth its name if each reason shows up in some case."""
    from reconciler.placement import NOT_LISTED, OUT_OF_STOCK, place

    assert world.stack is not None
    spec = world.stack.job.spec
    reasons = {(e.skipped or "").split(" ")[0] for catalog, options in PLACEMENT_CASES.values()
               for e in place(spec, catalog, options).skipped}
    assert {NOT_LISTED.split(" ")[0], OUT_OF_STOCK.split(" ")[0], "price"} <= reasons
