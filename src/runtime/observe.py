"""observe(provider, state, prefix, clock) -> Observation: the hoisted read side of a plan."""

from __future__ import annotations

from reconciler.observed import CloudType, Observation, ObservedPod
from reconciler.state import StackState
from runtime.clock import Clock
from runtime.errors import ProviderAuthError, ProviderError
from runtime.providers.protocol import AccountSnapshot, PodProvider, SnapshotReader

__all__ = ["observe", "read_account"]


def observe(provider: PodProvider | None, state: StackState, *, prefix: str, clock: Clock,
            cloud_type: CloudType | None = None, with_catalog: bool = True,
            with_network_volumes: bool = False,
            missing_note: str = "no provider available") -> Observation:
    """Every pod carrying the stack prefix, the pod the state names (by id), the catalog and,
    for a stack that mounts one (`with_network_volumes`), the account's network volumes.
    With no provider the observation is `complete=False` and says why.

    A catalog that cannot be read is a note (ids are then checked against the static table);
    network volumes that cannot be listed are an error like pods: without the volume's id and
    datacenter no create can be right."""
    if provider is None:
        return Observation(observed_at=clock.now(), complete=False, provider="none",
                           notes=(missing_note,))
    notes: list[str] = []
    account = read_account(provider, prefix=prefix, cloud_type=cloud_type,
                           with_catalog=with_catalog, with_network_volumes=with_network_volumes,
                           notes=notes)
    pods: dict[str, ObservedPod] = {p.pod_id: p for p in account.pods}
    wanted = [state.pod.pod_id] if state.pod else []
    if state.pending and state.pending.pod_id:
        wanted.append(state.pending.pod_id)
    if state.pending and not state.pending.pod_name.startswith(prefix):
        # A pending create under a name outside the prefix (an older naming): list it too.
        for pod in provider.list_pods(name_prefix=state.pending.pod_name):
            pods.setdefault(pod.pod_id, pod)
    for pod_id in wanted:
        known = pods.get(pod_id)
        if known is not None and _fully_described(known):
            continue  # the listing said all a plan needs: no second round trip for it
        found = provider.get_pod(pod_id)
        if found is not None:
            pods[pod_id] = found
    return Observation(observed_at=clock.now(), pods=tuple(pods.values()),
                       catalog=account.catalog, network_volumes=account.network_volumes,
                       complete=True, provider=provider.name,
                       notes=tuple(notes))


def read_account(provider: PodProvider, *, prefix: str | None, cloud_type: CloudType | None,
                 with_catalog: bool, with_network_volumes: bool, notes: list[str],
                 volumes_required: bool = True) -> AccountSnapshot:
    """Pods (those carrying `prefix`, or all), the catalog and the network volumes: in one
    request when the provider can (`SnapshotReader`), else call by call. When the one request
    fails for another reason than the key, the calls are made one by one, so that an unreadable
    catalog (and, unless `volumes_required`, volume listing) is a note in `notes`, not an error."""
    if isinstance(provider, SnapshotReader):
        try:
            return provider.snapshot(name_prefix=prefix, with_catalog=with_catalog,
                                     with_network_volumes=with_network_volumes)
        except ProviderAuthError:
            raise
        except ProviderError:
            pass
    pods = provider.list_pods(name_prefix=prefix)
    catalog = None
    if with_catalog:
        try:
            catalog = provider.catalog(cloud_type=cloud_type)
        except ProviderError as exc:
            notes.append(f"catalog unavailable: {exc}")
    volumes = None
    if with_network_volumes:
        try:
            volumes = provider.list_network_volumes()
        except ProviderError as exc:
            if volumes_required:
                raise
            notes.append(f"network volumes unavailable: {exc}")
    return AccountSnapshot(pods=pods, catalog=catalog, network_volumes=volumes)


def _fully_described(pod: ObservedPod) -> bool:
    """Whether a listed pod carries its placement (the API's listing does; runpodctl's compact
    one leaves datacenter, cloud type and mount path out, so its recorded pod is read in full)."""
    return None not in (pod.datacenter_id, pod.cloud_type, pod.volume_mount_path)
