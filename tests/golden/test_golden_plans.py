"""Golden plans: text, JSON and markdown of fixed inputs. RUNPOD_DEPLOY_ACCEPT=1 rewrites them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.load import load_spec
from reconciler.observed import (
    Catalog,
    CloudType,
    GpuPrice,
    NetworkVolume,
    Observation,
    ObservedPod,
    PodStatus,
)
from reconciler.plan import Plan, PlanOptions
from reconciler.planner import plan
from reconciler.render import render_json, render_markdown, render_text
from reconciler.state import PodRecord, StackIdentity, StackState
from reconciler.template import render_spec, resolve_variables
from tests.golden_files import check_golden

HERE = Path(__file__).parent / "cases"
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IDENT = StackIdentity(name="gpu-bench", config_hash="0" * 16, key="abc123")
PREFIX = "gpu-bench--abc123--"
CATALOG = Catalog(prices=(GpuPrice("NVIDIA RTX A4000", secure_price=0.25),
                          GpuPrice("NVIDIA RTX A5000", secure_price=0.27)))


def _pod(status: PodStatus, image: str = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
         pod_id: str = "pod1", name: str = PREFIX + "a1b2c3") -> ObservedPod:
    return ObservedPod(pod_id=pod_id, name=name, status=status, image=image,
                       gpu_type_id="NVIDIA RTX A4000", gpu_count=1, datacenter_id="EU-RO-1",
                       cloud_type=CloudType.SECURE, volume_gb=10, cost_per_hr=0.25)


RECORD = StackState(identity=IDENT, lineage="lin-1", serial=7,
                    pod=PodRecord(pod_id="pod1", name=PREFIX + "a1b2c3"))
VOLUMES = (NetworkVolume(id="nv0ro00001", name="sim-volume-ro", datacenter_id="EU-RO-1",
                         size_gb=50),)
CASES = {
    "fresh": (StackState(identity=IDENT), (), PlanOptions()),
    "network_volume": (StackState(identity=IDENT), (), PlanOptions()),
    "resume": (RECORD, (_pod(PodStatus.EXITED),), PlanOptions()),
    "image_drift": (RECORD, (_pod(PodStatus.EXITED, image="old:1"),), PlanOptions()),
    "orphans": (RECORD, (_pod(PodStatus.RUNNING), _pod(PodStatus.EXITED, pod_id="pod9",
                                                       name=PREFIX + "zzz")),
                PlanOptions(delete_orphans=True)),
}


STACKS = {"network_volume": "stacks/network-volume.yaml"}
"""Cases planned from another stack than stacks/recycle.yaml."""


@pytest.mark.parametrize("case", list(CASES))
def test_golden(case: str) -> None:
    stack = STACKS.get(case, "stacks/recycle.yaml")
    text = (ROOT / stack).read_text()
    spec = load_spec(text, source=stack)
    values = resolve_variables(spec, config_dir="/p/stacks", home="/home/u",
                               run_stamp="20260102T030405Z")
    job = render_spec(spec, values)
    state, pods, options = CASES[case]
    volumes = VOLUMES if job.spec.uses_network_volume else None
    result = plan(job, state, Observation(observed_at=NOW, pods=pods, catalog=CATALOG,
                                          network_volumes=volumes, provider="test"), options,
                  config_path=f"/p/{stack}", state_path="/s/gpu-bench.json")
    assert Plan.from_json(result.to_json()) == result
    outputs = {"plan.txt": render_text(result), "plan.json": render_json(result),
               "plan.md": render_markdown(result)}
    for name, content in outputs.items():
        check_golden(HERE / case / name, content)
