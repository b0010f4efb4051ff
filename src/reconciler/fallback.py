"""`run --fallback-cloud-type`: the original's one retry on the other cloud type after a stock-out,
as an input to where failover candidates are formed.

`effective_fallback` says whether the flag applies to a stack (a network volume needs SECURE; a
fallback equal to the configured type is no fallback) and why not. `with_fallback` orders the
failover walk: every (GPU, datacenter) pair on the configured type first, then the same pairs
on the fallback type, so a pod on the other type is only asked for once the configured type has
stocked out everywhere the stack may go (the original retried only its one chosen pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.observed import CloudType
from reconciler.spec import JobSpec

__all__ = ["FallbackDecision", "PlacementCandidate", "effective_fallback", "with_fallback"]


@dataclass(frozen=True, slots=True)
class FallbackDecision:
    cloud_type: CloudType | None
    """The type to retry with, or None (no fallback)."""
    warning: str | None = None
    """Why a requested fallback does not apply."""


@dataclass(frozen=True, slots=True)
class PlacementCandidate:
    gpu_type_id: str
    datacenter_id: str
    cloud_type: CloudType | None = None
    """None: the stack's own `pod.cloud_type`."""


def effective_fallback(spec: JobSpec, requested: CloudType | None) -> FallbackDecision:
    if requested is None:
        return FallbackDecision(None)
    if spec.uses_network_volume:
        return FallbackDecision(None, "--fallback-cloud-type is ignored: storage.mode "
                                "network_volume is SECURE-only")
    if requested.value == spec.pod.cloud_type.value:
        return FallbackDecision(None, f"--fallback-cloud-type {requested.value} matches the "
                                "configured pod.cloud_type; no fallback")
    return FallbackDecision(requested)


def with_fallback(pairs: Sequence[tuple[str, str]], fallback: CloudType | None
                  ) -> tuple[PlacementCandidate, ...]:
    """The failover order: the pairs on the stack's type, then (with a fallback) the same pairs
    on the fallback type."""
    primary = tuple(PlacementCandidate(gpu, dc) for gpu, dc in pairs)
    if fallback is None:
        return primary
    return primary + tuple(PlacementCandidate(gpu, dc, fallback) for gpu, dc in pairs)
