"""The contract every pod provider keeps (runpodctl, the RunPod API, test doubles).

Parameters and results are the core's frozen values, never raw dicts: a provider's job is to
translate RunPod's wire formats to `ObservedPod`, `Catalog`, `NetworkVolume` and back from
`PodRequest`. One contract suite (`tests/contract/`) runs every implementation against the
simulator.

Rules every implementation keeps:
- Every pod this tool creates carries the stack's name prefix, so `list_pods(name_prefix=...)`
  finds pods that no state records (orphans) — the first defence against a leaked pod.
- `terminate_pod` on a pod that does not exist returns silently: "gone" is the goal, not an error.
- `create_pod` raises `CapacityError` for a stock-out of that one candidate (the caller fails
  over to the next), and may raise `ProviderUnavailableError` after the pod was in fact created
  (RunPod's 5xx-after-create): the caller must then look for the request's name before retrying.
- Transient failures (429, 5xx, timeouts) are retried inside the provider with backoff; what
  escapes is `ProviderUnavailableError`. Auth failures are `ProviderAuthError`, never retried.
- Nothing here logs or returns the API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reconciler.desired import PodRequest
from reconciler.observed import Catalog, CloudType, NetworkVolume, ObservedPod


class PodProvider(Protocol):
    name: str
    """Short name for messages and events: "runpodctl", "api"."""

    def list_pods(self, *, name_prefix: str | None = None) -> tuple[ObservedPod, ...]:
        """Every pod of the account in any status (RUNNING and EXITED alike), optionally only
        those whose name starts with `name_prefix`. One call, whatever the number of stacks."""
        ...

    def get_pod(self, pod_id: str) -> ObservedPod | None:
        """The pod, or None when the provider does not know it (deleted, or never existed)."""
        ...

    def create_pod(self, request: PodRequest) -> ObservedPod:
        """Create one pod for one candidate. Returns as soon as RunPod accepted it (it reports
        RUNNING with no container yet); readiness is the caller's to wait for.
        Raises CapacityError, ProviderAuthError, ProviderUnavailableError, ProviderError."""
        ...

    def start_pod(self, pod_id: str, *, gpu_count: int) -> ObservedPod:
        """Resume a stopped pod on its host. Raises HostFullError when the host has no free
        GPU for it, PodNotFoundError when it is gone."""
        ...

    def stop_pod(self, pod_id: str) -> None:
        """Stop the pod (EXITED): compute stops billing, the volume disk goes on (at 2x)."""
        ...

    def terminate_pod(self, pod_id: str) -> None:
        """Delete the pod and its volume disk. A pod that is already gone is not an error."""
        ...

    def catalog(self, *, cloud_type: CloudType | None = None) -> Catalog:
        """GPU stock per datacenter and prices per GPU type (prices may be missing)."""
        ...

    def list_network_volumes(self) -> tuple[NetworkVolume, ...]:
        """Every network volume of the account (id, name, datacenter, size). One call; asked
        only for a stack that mounts one, to resolve its name to the id a create needs."""
        ...


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What one round trip told about the account: its pods, and on request the catalog and
    the network volumes (None when not asked for)."""

    pods: tuple[ObservedPod, ...]
    catalog: Catalog | None = None
    network_volumes: tuple[NetworkVolume, ...] | None = None


@runtime_checkable
class SnapshotReader(Protocol):
    """An optional capability: a provider that can read pods, catalog and volumes in one
    request (GraphQL takes several root fields in one document) offers it, and the read side
    of a plan then costs one round trip instead of two or three. Providers without it (the
    runpodctl one: each listing is its own command) are read call by call."""

    def snapshot(self, *, name_prefix: str | None = None, with_catalog: bool = False,
                 with_network_volumes: bool = False) -> AccountSnapshot:
        """One request for all of it; raises like `list_pods` when any part fails."""
        ...
