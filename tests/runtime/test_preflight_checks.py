"""validate's checks that need no network: image references, the consumer scan, stock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.observed import Catalog, GpuAvailability, StockStatus
from reconciler.spec import JobSpec
from runtime.offline_dry_run import offline_walk
from runtime.preflight_checks import (
    ImageRef,
    Level,
    check_availability,
    parse_image_ref,
    scan_consumer,
)

BASE: dict[str, Any] = {
    "name": "c",
    "pod": {"image": "i:1", "datacenters": ["EU-RO-1", "US-IL-1"],
            "gpu_order": ["NVIDIA A40", "NVIDIA RTX A4000"]},
    "storage": {"mode": "ephemeral", "volume_gb": 5},
    "run": {"script_path": "/w/j.sh", "log_path": "/w/j.log", "success_marker": "DONE",
            "body": "echo DONE"},
}


def test_image_references_as_docker_hub_reads_them() -> None:
    assert parse_image_ref("ubuntu") == ImageRef("library/ubuntu", "latest")
    assert parse_image_ref("runpod/pytorch:2.4.0-py3.11") == ImageRef("runpod/pytorch",
                                                                      "2.4.0-py3.11")
    assert parse_image_ref("a/b@sha256:abc") == ImageRef("a/b", "sha256:abc")
    assert "not on Docker Hub" in str(parse_image_ref("ghcr.io/x/y:1"))
    assert "not a valid reference" in str(parse_image_ref("Bad Image"))


def test_availability_fails_only_when_nothing_is_stocked_and_suggests_a_name() -> None:
    spec = JobSpec.model_validate({**BASE, "pod": {**BASE["pod"],
                                                   "gpu_order": ["NVIDIA A4O", "NVIDIA RTX A4000"]}})
    stock = (GpuAvailability("NVIDIA A40", "EU-RO-1", StockStatus.HIGH),
             GpuAvailability("NVIDIA RTX A4000", "EU-RO-1", StockStatus.NONE),
             GpuAvailability("NVIDIA RTX A4000", "US-IL-1", StockStatus.LOW))
    findings = check_availability(spec, Catalog(availability=stock,
                                                datacenter_ids=("EU-RO-1", "US-IL-1")))
    text = "\n".join(f.format() for f in findings)
    assert "did you mean 'NVIDIA A40'?" in text
    assert "warning: [availability] NVIDIA RTX A4000 is out of stock in EU-RO-1" in text
    assert "every available configured GPU is Low" in text
    assert "no configured GPU" not in text
    empty = check_availability(spec, Catalog(availability=stock[1:2], datacenter_ids=("EU-RO-1",
                                                                                      "US-IL-1")))
    assert any(f.level is Level.ERROR and "no configured GPU" in f.message for f in empty)


def test_the_consumer_scan_warns_and_honours_excludes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname='x'\nversion='0'\ndependencies=[]\n"
        "[project.optional-dependencies]\ntrain=['runpod-deploy>=0.8']\nlocal=['torch']\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("\n".join(["p='/Users/bob/x'"] * 5))
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "b.py").write_text("p='/home/eve/x'\n")
    spec = JobSpec.model_validate({**BASE, "setup": [{"command": "uv sync --extra train"}],
                                   "remote_env": {"exports": {"UV_LINK_MODE": "copy"}}})
    findings = scan_consumer(spec, project_root=str(tmp_path),
                             staging_sources=[(str(tmp_path), ["skip/"])])
    messages = [f.message for f in findings]
    assert all(f.level is Level.WARNING for f in findings)
    assert any("optional group 'train'" in m for m in messages)
    assert not any("torch" in m for m in messages)  # the 'local' group never reaches the pod
    assert not any("UV_LINK_MODE" in m for m in messages)
    assert sum("/Users/bob/" in m for m in messages) == 3  # at most 3 hits per file
    assert not any("/home/eve/" in m for m in messages)


def test_the_offline_walk_names_secrets_by_destination_only() -> None:
    spec = JobSpec.model_validate({**BASE, "secrets": [
        {"name": "hf", "destination": "/root/.hf", "env": ["HF_TOKEN"]}]})
    steps = offline_walk(spec, pod_name="c--abc123--x", run_dir="/p/artifacts/runpod/T")
    phases = [s.phase for s in steps]
    assert phases[0] == "budget" and phases[-1] == "manifest" and "secrets" in phases
    secret = next(s.format() for s in steps if s.phase == "secrets")
    assert secret == "[secrets] write secret 'hf' (env HF_TOKEN) to /root/.hf mode 0600"
    assert "NVIDIA A40 in EU-RO-1" in next(s.action for s in steps if s.phase == "select")
