"""`--fallback-cloud-type`: when it applies, and the failover order it gives."""

from __future__ import annotations

from reconciler.fallback import PlacementCandidate, effective_fallback, with_fallback
from reconciler.observed import CloudType
from reconciler.spec import JobSpec

BASE = {
    "name": "f",
    "pod": {"image": "i:1", "datacenters": ["EU-RO-1"], "gpu_order": ["NVIDIA A40"]},
    "storage": {"mode": "ephemeral", "volume_gb": 5},
    "run": {"script_path": "/w/j.sh", "log_path": "/w/j.log", "success_marker": "DONE",
            "body": "echo DONE"},
}


def test_the_other_cloud_type_is_tried_after_every_pair_on_the_configured_one() -> None:
    spec = JobSpec.model_validate(BASE)
    decision = effective_fallback(spec, CloudType.COMMUNITY)
    assert decision.cloud_type is CloudType.COMMUNITY and decision.warning is None
    order = with_fallback([("A", "X"), ("B", "X")], decision.cloud_type)
    assert order == (PlacementCandidate("A", "X"), PlacementCandidate("B", "X"),
                     PlacementCandidate("A", "X", CloudType.COMMUNITY),
                     PlacementCandidate("B", "X", CloudType.COMMUNITY))
    assert with_fallback([("A", "X")], None) == (PlacementCandidate("A", "X"),)


def test_no_fallback_for_a_network_volume_or_the_same_type() -> None:
    volume = JobSpec.model_validate({**BASE, "storage": {"mode": "network_volume",
                                                         "volume_name": "v"}})
    decision = effective_fallback(volume, CloudType.COMMUNITY)
    assert decision.cloud_type is None and "SECURE-only" in (decision.warning or "")
    same = effective_fallback(JobSpec.model_validate(BASE), CloudType.SECURE)
    assert same.cloud_type is None and "matches" in (same.warning or "")
    assert effective_fallback(JobSpec.model_validate(BASE), None).warning is None
