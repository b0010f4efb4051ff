"""The planner's cascade, table-driven: (state x observed x spec change x option) -> steps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.diagnostics import PlanError
from reconciler.load import load_spec
from reconciler.observed import Catalog, CloudType, GpuPrice, Observation, ObservedPod, PodStatus
from reconciler.plan import Plan, PlanOptions, Reason, StepKind
from reconciler.planner import plan
from reconciler.spec import JobSpec
from reconciler.state import PendingKind, PendingOperation, PodRecord, StackIdentity, StackState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IDENT = StackIdentity(name="t", config_hash="c" * 16, key="abc123")
PREFIX = "t--abc123--"
SPEC_TEXT = """name: t
pod:
  image: img:1
  datacenters: [EU-RO-1, US-IL-1]
  gpu_order: [NVIDIA RTX A4000, NVIDIA RTX A5000]
storage: {mode: ephemeral, volume_gb: 10}
run: {script_path: /w/r.sh, log_path: /w/r.log, success_marker: DONE, body: echo DONE}
lifecycle: {on_success: recycle}
"""
SPEC = load_spec(SPEC_TEXT, source="t.yaml")
CHANGES = {
    "none": SPEC,
    "image": load_spec(SPEC_TEXT.replace("img:1", "img:2"), source="t.yaml"),
    "gpu": load_spec(SPEC_TEXT.replace("[NVIDIA RTX A4000, NVIDIA RTX A5000]", "[NVIDIA A40]"),
                     source="t.yaml"),
    "datacenter": load_spec(SPEC_TEXT.replace("[EU-RO-1, US-IL-1]", "[EU-SE-1]"),
                            source="t.yaml"),
    "cloud": load_spec(SPEC_TEXT.replace("  image", "  cloud_type: COMMUNITY\n  image"),
                       source="t.yaml"),
    "storage": load_spec(SPEC_TEXT.replace("volume_gb: 10", "volume_gb: 20"), source="t.yaml"),
}
DRIFT_REASON = {"image": Reason.IMAGE_DRIFT, "gpu": Reason.GPU_DRIFT,
                "datacenter": Reason.DATACENTER_DRIFT, "cloud": Reason.CLOUD_TYPE_DRIFT,
                "storage": Reason.STORAGE_DRIFT}


def pod(status: PodStatus = PodStatus.RUNNING, *, pod_id: str = "p1", name: str = PREFIX + "n1",
        gpus: int | None = 1) -> ObservedPod:
    return ObservedPod(pod_id=pod_id, name=name, status=status, image="img:1",
                       gpu_type_id="NVIDIA RTX A4000", gpu_count=gpus, datacenter_id="EU-RO-1",
                       cloud_type=CloudType.SECURE, volume_gb=10, cost_per_hr=0.17)


RECORD = PodRecord(pod_id="p1", name=PREFIX + "n1", image="img:1",
                   gpu_type_id="NVIDIA RTX A4000", datacenter_id="EU-RO-1",
                   cloud_type=CloudType.SECURE)
STATES = {
    "empty": StackState(identity=IDENT),
    "record": StackState(identity=IDENT, lineage="L", serial=3, pod=RECORD),
    "pending_create": StackState(identity=IDENT, lineage="L", serial=3, pending=PendingOperation(
        kind=PendingKind.CREATE, pod_name=PREFIX + "n1", started_at="t0")),
    "pending_delete": StackState(identity=IDENT, lineage="L", serial=3, pod=RECORD,
                                 pending=PendingOperation(kind=PendingKind.DELETE,
                                                          pod_name=PREFIX + "n1", pod_id="p1",
                                                          started_at="t0")),
}
OBSERVED = {
    "nothing": (),
    "running": (pod(),),
    "exited": (pod(PodStatus.EXITED),),
    "exited_zero_gpu": (pod(PodStatus.EXITED, gpus=0),),
    "dead": (pod(PodStatus.DEAD),),
    "terminated": (pod(PodStatus.TERMINATED),),
}


def observe(pods: tuple[ObservedPod, ...], **kw: object) -> Observation:
    return Observation(observed_at=NOW, pods=pods, provider="test", **kw)  # type: ignore[arg-type]


def kinds(p: Plan) -> list[str]:
    return [s.kind.value for s in p.steps]


def expected(state: str, observed: str, change: str, force: bool) -> tuple[list[str], Reason]:
    """The cascade, restated as a table oracle."""
    exists = observed not in ("nothing", "terminated")
    if state == "empty":
        return ["create"], Reason.NO_POD
    if state == "pending_create":
        if not exists:
            return ["create"], Reason.PENDING_CREATE_LOST
        if force or change != "none" or observed != "running":
            return ["replace"], Reason.PENDING_CREATE_MISMATCH
        return ["adopt"], Reason.PENDING_CREATE_FOUND
    if state == "pending_delete":
        return (["replace"], Reason.PENDING_DELETE) if exists else (
            ["forget", "create"], Reason.PENDING_DELETE)
    if not exists:
        return ["forget", "create"], Reason.POD_GONE
    if force:
        return ["replace"], Reason.FORCE_FRESH
    if change != "none":
        return ["replace"], DRIFT_REASON[change]
    if observed == "exited_zero_gpu":
        return ["replace"], Reason.ZERO_GPU
    if observed == "exited":
        return ["resume"], Reason.POD_STOPPED
    if observed == "running":
        return ["noop"], Reason.POD_RUNNING
    return ["replace"], Reason.POD_UNHEALTHY


@pytest.mark.parametrize("force", [False, True], ids=["reuse", "force_fresh"])
@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("observed", list(OBSERVED))
@pytest.mark.parametrize("state", list(STATES))
def test_cascade(state: str, observed: str, change: str, force: bool) -> None:
    result = plan(CHANGES[change], STATES[state], observe(OBSERVED[observed]),
                  PlanOptions(force_fresh=force))
    want_kinds, want_reason = expected(state, observed, change, force)
    assert kinds(result) == want_kinds
    assert result.steps[0].reasons[0].reason is want_reason
    assert Plan.from_json(result.to_json()) == result
    assert result.has_changes == (want_kinds != ["noop"])


def test_drift_carries_titles_and_field_changes() -> None:
    result = plan(CHANGES["image"], STATES["record"], observe((pod(),)))
    (step,) = result.steps
    assert step.reasons[0].title == "image drift: img:1 -> img:2"
    assert step.changes[0].path == "image"
    assert (step.changes[0].before, step.changes[0].after) == ("img:1", "img:2")
    storage = plan(CHANGES["storage"], STATES["record"], observe((pod(),))).steps[0]
    assert storage.changes[0].path == "storage.volume_gb"
    assert storage.reasons[0].title == "storage drift: volume_gb 10 -> 20"


def test_a_gpu_among_the_candidates_is_not_drift() -> None:
    other = ObservedPod(pod_id="p1", name=PREFIX + "n1", status=PodStatus.RUNNING,
                        image="img:1", gpu_type_id="NVIDIA RTX A5000", gpu_count=1,
                        datacenter_id="US-IL-1")
    assert kinds(plan(SPEC, STATES["record"], observe((other,)))) == ["noop"]


@pytest.mark.parametrize("delete", [False, True])
def test_orphans_are_reported_and_deleted_only_on_request(delete: bool) -> None:
    orphan = pod(pod_id="p9", name=PREFIX + "zz")
    stranger = pod(pod_id="p8", name="someone-else")
    result = plan(SPEC, STATES["record"], observe((pod(), orphan, stranger)),
                  PlanOptions(delete_orphans=delete))
    assert [o.pod_id for o in result.orphans] == ["p9"]
    assert result.orphans[0].cost_per_hr == 0.17
    assert kinds(result) == (["noop", "delete"] if delete else ["noop"])
    if delete:
        assert result.steps[1].reasons[0].reason is Reason.ORPHAN_FOUND


def test_placement_errors_name_the_field_and_suggest() -> None:
    bad = load_spec(SPEC_TEXT.replace("NVIDIA RTX A5000", "NVIDIA RTX A5001").replace(
        "US-IL-1", "US-IL-9"), source="t.yaml")
    with pytest.raises(PlanError) as caught:
        plan(bad, STATES["empty"], observe(()))
    text = str(caught.value)
    assert "pod.gpu_order[1]" in text and "did you mean 'NVIDIA RTX A5000'" in text
    assert "pod.datacenters[1]" in text and "did you mean" in text
    nv = load_spec(SPEC_TEXT.replace("mode: ephemeral, volume_gb: 10",
                                     "mode: network_volume, volume_name: v").replace(
        "  image", "  cloud_type: COMMUNITY\n  image"), source="t.yaml")
    with pytest.raises(PlanError, match="network volume needs Secure Cloud"):
        plan(nv, STATES["empty"], observe(()))


def test_a_blind_plan_over_a_recorded_pod_is_an_error() -> None:
    blind = Observation(observed_at=NOW, complete=False, notes=("runpodctl missing",))
    with pytest.raises(PlanError, match="no provider could be asked"):
        plan(SPEC, STATES["record"], blind)
    result = plan(SPEC, STATES["empty"], blind)
    assert kinds(result) == ["create"] and "runpodctl missing" in result.unchecked


def test_cost_uses_catalog_prices_and_names_the_source() -> None:
    catalog = Catalog(prices=(GpuPrice("NVIDIA RTX A4000", secure_price=0.25),))
    result = plan(SPEC, STATES["empty"], observe((), catalog=catalog))
    a4000, a5000 = result.cost.candidates
    assert (a4000.hourly_usd, a4000.source) == (0.25, "catalog (SECURE on-demand)")
    assert (a5000.hourly_usd, a5000.source) == (1.65, "assumed_hourly_rate_usd")
    assert result.cost.worst_case_usd == round(1.65 * SPEC.budget.timeout_sec / 3600, 2)
    assert [g.name for g in result.guards] == ["ssh_ready", "monitor", "watchdog"]
    assert [p.phase.value for p in result.phases] == [
        "setup", "secrets", "stage", "preflight", "launch", "monitor", "pull", "lifecycle"]


def test_fingerprint_changes_with_the_world() -> None:
    base = plan(SPEC, STATES["record"], observe((pod(),)))
    assert base.inputs_fingerprint == plan(SPEC, STATES["record"], observe((pod(),))
                                           ).inputs_fingerprint
    moved = STATES["record"].evolve(serial=4)
    assert plan(SPEC, moved, observe((pod(),))).inputs_fingerprint != base.inputs_fingerprint
    stopped = plan(SPEC, STATES["record"], observe((pod(PodStatus.EXITED),)))
    assert stopped.inputs_fingerprint != base.inputs_fingerprint


# -- property: re-planning after the plan's outcome is a no-op ------------------------------

def outcome(p: Plan, state: StackState, pods: tuple[ObservedPod, ...]
            ) -> tuple[StackState, tuple[ObservedPod, ...]]:
    """What a successful apply of the provisioning steps leaves (before the job's lifecycle)."""
    world = {x.pod_id: x for x in pods}
    record = state.pod
    for i, step in enumerate(p.steps):
        if step.kind in (StepKind.DELETE, StepKind.REPLACE):
            world.pop(step.pod_id or "", None)
        if step.kind in (StepKind.FORGET, StepKind.REPLACE):
            record = None
        if step.kind in (StepKind.CREATE, StepKind.REPLACE):
            new = ObservedPod(pod_id=f"new{i}", name=p.stack.pod_prefix + f"x{i}",
                              status=PodStatus.RUNNING, image=SPEC_NOW[0].pod.image,
                              gpu_type_id=SPEC_NOW[0].pod.gpu_order[0], gpu_count=1,
                              datacenter_id=SPEC_NOW[0].pod.datacenters[0],
                              cloud_type=SPEC_NOW[0].pod.cloud_type,
                              volume_gb=SPEC_NOW[0].storage.volume_gb)
            world[new.pod_id] = new
            record = PodRecord(pod_id=new.pod_id, name=new.name)
        if step.kind in (StepKind.RESUME, StepKind.ADOPT):
            old = world[step.pod_id or ""]
            world[old.pod_id] = ObservedPod(**{**{f: getattr(old, f) for f in old.__slots__},
                                               "status": PodStatus.RUNNING})
            record = PodRecord(pod_id=old.pod_id, name=old.name)
    return state.evolve(pod=record, pending=None, serial=state.serial + 1), tuple(world.values())


SPEC_NOW: list[JobSpec] = [SPEC]


@settings(max_examples=150, deadline=None)
@given(state=st.sampled_from(list(STATES)), observed=st.sampled_from(list(OBSERVED)),
       change=st.sampled_from(list(CHANGES)), force=st.booleans(), orphans=st.booleans())
def test_replanning_after_the_outcome_is_a_noop(state: str, observed: str, change: str,
                                                force: bool, orphans: bool) -> None:
    spec = CHANGES[change]
    SPEC_NOW[0] = spec
    pods = OBSERVED[observed] + ((pod(pod_id="o1", name=PREFIX + "orphan"),) if orphans else ())
    options = PlanOptions(force_fresh=force, delete_orphans=True)
    first = plan(spec, STATES[state], observe(pods), options)
    new_state, new_pods = outcome(first, STATES[state], pods)
    again = plan(spec, new_state, observe(new_pods), PlanOptions(delete_orphans=True))
    assert kinds(again) == ["noop"], (kinds(first), kinds(again))
    assert not again.has_changes and not again.orphans
