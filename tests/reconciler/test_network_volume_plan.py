"""The planner's network-volume rules, pure: the named volume must exist and live in a listed
datacenter; it pins the create to that datacenter and carries its id; a pod on another volume
is drift; a volume that was not looked up is said to be unchecked, never guessed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.diagnostics import PlanError, Severity
from reconciler.load import load_spec
from reconciler.observed import CloudType, NetworkVolume, Observation, ObservedPod, PodStatus
from reconciler.plan import Plan, Reason, StepKind
from reconciler.planner import check_placement, plan
from reconciler.render import render_markdown, render_text
from reconciler.state import PodRecord, StackIdentity, StackState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IDENT = StackIdentity(name="nv", config_hash="c" * 16, key="abc123")
PREFIX = "nv--abc123--"
SPEC_TEXT = """name: nv
pod:
  image: img:1
  datacenters: [EU-RO-1, US-IL-1]
  gpu_order: [NVIDIA RTX A4000]
storage: {mode: network_volume, volume_name: embed-data, volume_mount: /workspace}
run: {script_path: /w/r.sh, log_path: /w/r.log, success_marker: DONE, body: echo DONE}
lifecycle: {on_success: recycle}
"""
SPEC = load_spec(SPEC_TEXT, source="nv.yaml")
EPHEMERAL = load_spec(SPEC_TEXT.replace(
    "mode: network_volume, volume_name: embed-data, volume_mount: /workspace",
    "mode: ephemeral, volume_gb: 10"), source="nv.yaml")
EMBED = NetworkVolume(id="vol-embed-1", name="embed-data", datacenter_id="EU-RO-1", size_gb=50)
OTHER = NetworkVolume(id="vol-other", name="scratch", datacenter_id="US-IL-1", size_gb=10)
EMPTY = StackState(identity=IDENT)


def observe(pods: tuple[ObservedPod, ...] = (),
            volumes: tuple[NetworkVolume, ...] | None = (EMBED, OTHER), **kw: object
            ) -> Observation:
    return Observation(observed_at=NOW, pods=pods, network_volumes=volumes,
                       provider="test", **kw)  # type: ignore[arg-type]


def pod(status: PodStatus = PodStatus.EXITED, *, volume_id: str | None = "vol-embed-1",
        datacenter: str = "EU-RO-1") -> ObservedPod:
    return ObservedPod(pod_id="p1", name=PREFIX + "n1", status=status, image="img:1",
                       gpu_type_id="NVIDIA RTX A4000", gpu_count=1, datacenter_id=datacenter,
                       cloud_type=CloudType.SECURE, volume_gb=0, volume_mount_path="/workspace",
                       network_volume_id=volume_id)


def recorded(volume_id: str | None = "vol-embed-1") -> StackState:
    return StackState(identity=IDENT, lineage="L", serial=3, pod=PodRecord(
        pod_id="p1", name=PREFIX + "n1", image="img:1", gpu_type_id="NVIDIA RTX A4000",
        datacenter_id="EU-RO-1", cloud_type=CloudType.SECURE, network_volume_id=volume_id))


def only_error(caught: pytest.ExceptionInfo[PlanError]) -> tuple[str, str, str]:
    (diagnostic,) = [d for d in caught.value.diagnostics if d.severity is Severity.ERROR]
    return diagnostic.field_path, diagnostic.summary, diagnostic.detail


# -- resolving the name --------------------------------------------------------------------

def test_the_create_carries_the_volume_and_is_pinned_to_its_datacenter() -> None:
    result = plan(SPEC, EMPTY, observe())
    assert [s.kind for s in result.steps] == [StepKind.CREATE]
    volume = result.network_volume
    assert volume is not None
    assert (volume.id, volume.name, volume.datacenter_id, volume.size_gb, volume.mount_path) == (
        "vol-embed-1", "embed-data", "EU-RO-1", 50, "/workspace")
    assert not any("network volume" in u for u in result.unchecked)
    mounts = "mounts network volume embed-data (vol-embed-1, 50 GB) in EU-RO-1 at /workspace"
    assert mounts in render_text(result) and mounts in render_markdown(result)
    assert Plan.from_json(result.to_json()) == result


def test_an_unknown_name_is_an_error_on_volume_name_listing_what_exists() -> None:
    spec = load_spec(SPEC_TEXT.replace("embed-data", "embed-dta"), source="nv.yaml")
    with pytest.raises(PlanError) as caught:
        plan(spec, EMPTY, observe())
    field, summary, detail = only_error(caught)
    assert field == "storage.volume_name"
    assert summary == "no network volume named 'embed-dta'"
    assert "did you mean 'embed-data'?" in detail
    assert "embed-data (EU-RO-1)" in detail and "scratch (US-IL-1)" in detail


def test_an_account_without_volumes_says_so() -> None:
    with pytest.raises(PlanError) as caught:
        plan(SPEC, EMPTY, observe(volumes=()))
    field, _, detail = only_error(caught)
    assert field == "storage.volume_name" and "the account has no network volumes" in detail


def test_a_volume_outside_the_listed_datacenters_is_an_error_on_datacenters() -> None:
    spec = load_spec(SPEC_TEXT.replace("[EU-RO-1, US-IL-1]", "[US-IL-1]"), source="nv.yaml")
    with pytest.raises(PlanError) as caught:
        plan(spec, EMPTY, observe())
    field, summary, detail = only_error(caught)
    assert field == "pod.datacenters"
    assert summary == ("network volume 'embed-data' is in EU-RO-1, which pod.datacenters "
                       "does not list")
    assert "expected pod.datacenters to include EU-RO-1" in detail


def test_of_namesakes_the_one_in_a_listed_datacenter_is_meant() -> None:
    twin = NetworkVolume(id="vol-twin", name="embed-data", datacenter_id="EU-SE-1")
    result = plan(SPEC, EMPTY, observe(volumes=(twin, EMBED)))
    assert result.network_volume is not None and result.network_volume.id == "vol-embed-1"
    both = NetworkVolume(id="vol-il", name="embed-data", datacenter_id="US-IL-1")
    with pytest.raises(PlanError) as caught:
        plan(SPEC, EMPTY, observe(volumes=(EMBED, both)))
    field, summary, detail = only_error(caught)
    assert field == "storage.volume_name" and summary.startswith("2 network volumes are named")
    assert "vol-embed-1 (EU-RO-1)" in detail and "vol-il (US-IL-1)" in detail


def test_several_datacenters_warn_that_only_the_volumes_is_tried() -> None:
    warnings = [d for d in check_placement(SPEC, observe()) if d.severity is Severity.WARNING]
    assert [w.field_path for w in warnings] == ["pod.datacenters"]
    assert "only EU-RO-1, where it lives, is tried" in warnings[0].detail


# -- not looked up -------------------------------------------------------------------------

def test_an_offline_plan_says_the_volume_was_not_checked() -> None:
    blind = Observation(observed_at=NOW, complete=False, notes=("runpodctl missing",))
    result = plan(SPEC, EMPTY, blind)
    assert [s.kind for s in result.steps] == [StepKind.CREATE]
    assert result.network_volume is None
    assert any(u.startswith("network volume 'embed-data' was not looked up")
               for u in result.unchecked)
    assert "mounts network volume" not in render_text(result)


def test_volumes_not_listed_are_unknown_and_unknown_is_not_drift() -> None:
    result = plan(SPEC, recorded("vol-gone"), observe((pod(volume_id="vol-gone"),), volumes=None))
    assert [s.kind for s in result.steps] == [StepKind.RESUME]
    assert any("was not looked up" in u for u in result.unchecked)


def test_a_stack_without_a_volume_asks_nothing_of_them() -> None:
    result = plan(EPHEMERAL, EMPTY, observe(volumes=None))
    assert result.network_volume is None
    assert not any("network volume" in u for u in result.unchecked)


# -- drift ---------------------------------------------------------------------------------

def test_a_pod_on_the_named_volume_is_reused() -> None:
    result = plan(SPEC, recorded(), observe((pod(),)))
    assert [s.kind for s in result.steps] == [StepKind.RESUME]


def test_a_pod_on_another_volume_is_replaced() -> None:
    """The volume was deleted and made again under the same name: the name matches, the id
    does not, and the old pod cannot reach the new volume."""
    result = plan(SPEC, recorded("vol-old"), observe((pod(volume_id="vol-old"),)))
    (step,) = result.steps
    assert step.kind is StepKind.REPLACE
    assert [r.reason for r in step.reasons] == [Reason.STORAGE_DRIFT]
    assert step.reasons[0].title == "storage drift: network_volume_id vol-old -> vol-embed-1"
    assert [(c.path, c.before, c.after) for c in step.changes] == [
        ("storage.network_volume_id", "vol-old", "vol-embed-1")]
    assert "mounts network volume embed-data" in render_text(result)


def test_the_record_speaks_when_the_provider_does_not() -> None:
    """runpodctl's `pod get` does not pass the volume id through: the state's word counts."""
    result = plan(SPEC, recorded("vol-old"), observe((pod(volume_id=None),)))
    assert [s.kind for s in result.steps] == [StepKind.REPLACE]
    assert result.steps[0].changes[0].path == "storage.network_volume_id"


def test_a_pod_outside_the_volumes_datacenter_is_replaced() -> None:
    result = plan(SPEC, recorded(None), observe((pod(volume_id=None, datacenter="US-IL-1"),)))
    (step,) = result.steps
    assert step.kind is StepKind.REPLACE
    assert [(c.path, c.before, c.after) for c in step.changes] == [
        ("datacenter_id", "US-IL-1", "EU-RO-1")]


def test_a_pod_made_for_ephemeral_storage_is_replaced_once_the_stack_names_a_volume() -> None:
    """Neither provider tells "no volume" from "not said"; the state's storage mode does."""
    state = StackState(identity=IDENT, lineage="L", serial=3, pod=PodRecord(
        pod_id="p1", name=PREFIX + "n1", image="img:1", storage_mode="ephemeral", volume_gb=10))
    result = plan(SPEC, state, observe((pod(volume_id=None),)))
    (step,) = result.steps
    assert step.kind is StepKind.REPLACE
    assert [(c.path, c.before, c.after) for c in step.changes] == [
        ("storage.mode", "ephemeral", "network_volume")]
    unknown = recorded(None)  # a record from before storage modes were recorded
    assert [s.kind for s in plan(SPEC, unknown, observe((pod(volume_id=None),))).steps] == [
        StepKind.RESUME]


def test_a_pod_on_a_volume_the_stack_no_longer_names_is_replaced() -> None:
    result = plan(EPHEMERAL, recorded(), observe((pod(),), volumes=None))
    (step,) = result.steps
    assert step.kind is StepKind.REPLACE
    assert ("storage.network_volume_id", "vol-embed-1", None) in [
        (c.path, c.before, c.after) for c in step.changes]


def test_a_saved_plan_goes_stale_when_the_volume_is_made_again() -> None:
    before = plan(SPEC, EMPTY, observe())
    again = NetworkVolume(id="vol-embed-2", name="embed-data", datacenter_id="EU-RO-1")
    after = plan(SPEC, EMPTY, observe(volumes=(again, OTHER)))
    assert before.inputs_fingerprint != after.inputs_fingerprint
    assert before.spec_fingerprint == after.spec_fingerprint
