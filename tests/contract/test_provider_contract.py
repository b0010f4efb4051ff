"""The PodProvider contract (`runtime.providers.protocol`), proven on real simulated pods for
every provider kind. A provider that passes this suite can stand in for any other.

Where the providers legitimately differ (runpodctl's compact `pod list`, its lack of prices),
`REPORTS` says so, and the suite checks both sides of the difference instead of skipping it.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.desired import PodRequest
from reconciler.observed import NetworkVolume, ObservedPod, PodStatus, StockStatus
from runpod_sim import catalog as sim_catalog
from runpod_sim.testing import Simulator
from runtime.errors import (
    CapacityError,
    HostFullError,
    ProviderAuthError,
    ProviderUnavailableError,
)
from runtime.providers.api import ApiProvider, ApiSettings
from runtime.providers.protocol import SnapshotReader
from runtime.providers.runpodctl import RunpodctlProvider
from tests.contract.providers import (
    A40,
    DATACENTER,
    Provider,
    build,
    pod_request,
    ready,
    wait_until,
)

pytestmark = pytest.mark.sim  # every test here starts the simulator


@dataclass(frozen=True, slots=True)
class Reports:
    """What a provider's answers carry beyond the contract's minimum."""

    placement_in_list: bool
    """`list_pods` names datacenter, cloud, mount path and ports (runpodctl v2.1+ lists compact
    items: id, name, status, image, GPU, count, volume, cost)."""
    prices: bool
    """`catalog` has $/hr per GPU (runpodctl v2 has no price command: with RUNPOD_API_KEY in
    the environment, as here, the runpodctl provider asks GraphQL for them)."""
    spot: bool
    """`create_pod` can rent a spot pod (runpodctl v2.7.2 has no --spot: it makes on-demand)."""


REPORTS = {"runpodctl": Reports(placement_in_list=False, prices=True, spot=False),
           "api": Reports(placement_in_list=True, prices=True, spot=True)}


def asked(request: PodRequest) -> dict[str, Any]:
    return {"name": request.name, "image": request.image, "gpu_type_id": request.gpu_type_id,
            "datacenter_id": request.datacenter_id, "cloud_type": request.cloud_type,
            "gpu_count": request.gpu_count, "volume_gb": request.volume_gb,
            "volume_mount_path": request.volume_mount_path, "ports": sorted(request.ports)}


def seen(pod: ObservedPod) -> dict[str, Any]:
    return {"name": pod.name, "image": pod.image, "gpu_type_id": pod.gpu_type_id,
            "datacenter_id": pod.datacenter_id, "cloud_type": pod.cloud_type,
            "gpu_count": pod.gpu_count, "volume_gb": pod.volume_gb,
            "volume_mount_path": pod.volume_mount_path, "ports": sorted(pod.ports) or None}


def only_pod(provider: Provider, name: str) -> ObservedPod:
    (pod,) = provider.list_pods(name_prefix=name)
    return pod


# -- create and read --------------------------------------------------------------------------

def test_create_is_seen_alike_by_get_and_list_of_both_providers(
        provider: Provider, other: Provider) -> None:
    request = pod_request("ctr-stack--create-1")
    created = provider.create_pod(request)
    assert created.status is PodStatus.RUNNING and seen(created) == asked(request)
    assert not created.container_up and created.ssh is None, "create does not wait for boot"

    for reader in (provider, other):
        got = reader.get_pod(created.pod_id)
        assert got is not None and got.pod_id == created.pod_id
        assert seen(got) == asked(request), reader.name
        listed = only_pod(reader, "ctr-stack--")
        assert listed.pod_id == created.pod_id and listed.status is PodStatus.RUNNING
        reported = {k: v for k, v in seen(listed).items() if v is not None}
        assert reported == {k: v for k, v in seen(got).items() if k in reported}, reader.name
        minimum = {"name", "image", "gpu_type_id", "gpu_count", "volume_gb"}
        placement = {"datacenter_id", "cloud_type", "volume_mount_path", "ports"}
        expected = minimum | placement if REPORTS[reader.name].placement_in_list else minimum
        assert set(reported) == expected, reader.name
        assert reader.list_pods(name_prefix="another-stack--") == ()
        assert created.pod_id in {pod.pod_id for pod in reader.list_pods()}


def test_spot_create_rents_at_the_spot_price_where_supported(provider: Provider) -> None:
    request = pod_request("ctr-stack--spot-1", interruptible=True)
    created = provider.create_pod(request)
    got = provider.get_pod(created.pod_id)
    assert got is not None and seen(got) == asked(request)
    a40 = sim_catalog.GPU_BY_ID[A40]
    if REPORTS[provider.name].spot:
        assert created.interruptible is True and got.interruptible is True
        assert got.cost_per_hr == a40.secure_spot_price
    else:
        assert created.interruptible is False and got.cost_per_hr == a40.secure_price


def test_pod_becomes_ready_with_a_real_sshd(provider: Provider) -> None:
    pod = ready(provider, provider.create_pod(pod_request("ctr-stack--ready-1")).pod_id)
    assert pod.status is PodStatus.RUNNING and pod.ssh is not None
    endpoint = pod.ssh

    def banner() -> bytes | None:
        """sshd may answer a moment after its port is published, as at RunPod."""
        try:
            with socket.create_connection((endpoint.host, endpoint.port), timeout=2) as conn:
                return conn.recv(64)
        except ConnectionRefusedError:
            return None

    assert wait_until(banner, timeout=5).startswith(b"SSH-")


def test_get_of_an_unknown_pod_is_none(provider: Provider) -> None:
    assert provider.get_pod("nosuchpod00000") is None


# -- stop, start, terminate ---------------------------------------------------------------------

def test_stop_then_start(provider: Provider, other: Provider) -> None:
    running = ready(provider, provider.create_pod(pod_request("ctr-stack--stop-1")).pod_id)
    provider.stop_pod(running.pod_id)
    for reader in (provider, other):
        stopped = reader.get_pod(running.pod_id)
        assert stopped is not None and stopped.status is PodStatus.EXITED
        assert not stopped.container_up and stopped.ssh is None
        assert stopped.cost_per_hr is not None and running.cost_per_hr is not None
        assert 0 < stopped.cost_per_hr < running.cost_per_hr, "an EXITED pod bills its disk only"
        assert only_pod(reader, "ctr-stack--").status is PodStatus.EXITED

    resumed = provider.start_pod(running.pod_id, gpu_count=1)
    assert resumed.pod_id == running.pod_id and resumed.status is PodStatus.RUNNING
    again = ready(other, running.pod_id)
    assert again.cost_per_hr == running.cost_per_hr and again.gpu_count == 1


def test_terminate_removes_the_pod_and_is_idempotent(provider: Provider, other: Provider) -> None:
    pod = provider.create_pod(pod_request("ctr-stack--gone-1"))
    provider.terminate_pod(pod.pod_id)
    for reader in (provider, other):
        assert reader.get_pod(pod.pod_id) is None
        assert reader.list_pods(name_prefix="ctr-stack--") == ()
    provider.terminate_pod(pod.pod_id)
    other.terminate_pod(pod.pod_id)


def test_resume_onto_a_full_host_is_host_full_and_not_retried(
        provider: Provider, runpod_sim: Simulator) -> None:
    pod = provider.create_pod(pod_request("ctr-stack--full-1"))
    provider.stop_pod(pod.pod_id)
    runpod_sim.set_stock(DATACENTER, A40, 0)  # the host's GPUs went to someone else
    before = provider.calls
    with pytest.raises(HostFullError):
        provider.start_pod(pod.pod_id, gpu_count=1)
    assert provider.calls == before + 1, "a full host is an answer, not a transient failure"
    stopped = provider.get_pod(pod.pod_id)
    assert stopped is not None and stopped.status is PodStatus.EXITED


# -- catalog and capacity -----------------------------------------------------------------------

def test_catalog_lists_datacenters_stock_and_prices(provider: Provider,
                                                    runpod_sim: Simulator) -> None:
    catalog = provider.catalog()
    assert set(catalog.datacenter_ids) == {dc.id for dc in sim_catalog.DATA_CENTERS}
    for dc in sim_catalog.DATA_CENTERS:
        for gpu_id, _ in dc.initial_stock:
            stock = catalog.stock(gpu_id, dc.id)
            assert stock is not None and stock.available, (gpu_id, dc.id)
    truth = sim_catalog.GPU_BY_ID[A40]
    price = catalog.price(A40)
    assert price is not None and price.display_name == truth.display_name
    assert price.memory_gb == truth.memory_gb
    shown = (price.secure_price, price.community_price, price.secure_spot_price,
             price.community_spot_price)
    if REPORTS[provider.name].prices:
        assert shown == (truth.secure_price, truth.community_price, truth.secure_spot_price,
                         truth.community_spot_price)
    else:
        assert shown == (None, None, None, None)

    runpod_sim.set_stock(DATACENTER, A40, 0)
    assert provider.catalog().stock(A40, DATACENTER) is StockStatus.NONE


def test_runpodctl_without_an_api_key_in_the_environment_lists_no_prices(
        runpod_sim: Simulator, tmp_path: Path) -> None:
    """runpodctl keeps its key in its own config; then the provider cannot ask GraphQL for
    prices and the plan uses the assumed rate (it says so) rather than failing."""
    key = runpod_sim.env["RUNPOD_API_KEY"]
    wrapper = tmp_path / "runpodctl"
    wrapper.write_text(f'#!/bin/sh\nRUNPOD_API_KEY={key} exec {runpod_sim.runpodctl} "$@"\n')
    wrapper.chmod(0o755)
    env = {k: v for k, v in runpod_sim.env.items() if k != "RUNPOD_API_KEY"}
    provider = RunpodctlProvider(str(wrapper), env=env)
    catalog = provider.catalog()
    price = catalog.price(A40)
    assert price is not None and price.display_name == sim_catalog.GPU_BY_ID[A40].display_name
    assert (price.secure_price, price.community_price) == (None, None)
    assert provider.calls == 2, "the two runpodctl listings, no GraphQL call"


def test_stockout_create_is_a_capacity_error_naming_the_candidate(
        provider: Provider, runpod_sim: Simulator) -> None:
    runpod_sim.set_stock(DATACENTER, A40, 0)
    with pytest.raises(CapacityError) as caught:
        provider.create_pod(pod_request("ctr-stack--nostock-1"))
    assert (caught.value.gpu_type_id, caught.value.datacenter_id) == (A40, DATACENTER)
    assert str(caught.value).count(f"{provider.name} create:") == 1
    assert provider.list_pods() == ()


# -- network volumes ----------------------------------------------------------------------------

def test_network_volumes_are_listed_alike_by_both_providers(
        provider: Provider, other: Provider, runpod_sim: Simulator) -> None:
    made = runpod_sim.create_network_volume("ctr-data", DATACENTER, size_gb=20)
    before = provider.calls
    volumes = provider.list_network_volumes()
    assert provider.calls == before + 1, "one round trip"
    assert NetworkVolume(id=made["id"], name="ctr-data", datacenter_id=DATACENTER,
                         size_gb=20) in volumes
    assert {v.name for v in volumes} >= {"sim-volume-ro", "sim-volume-il", "ctr-data"}
    assert sorted(volumes, key=lambda v: v.id) == sorted(other.list_network_volumes(),
                                                         key=lambda v: v.id)


def test_a_pod_created_on_a_network_volume_mounts_it(
        provider: Provider, other: Provider, runpod_sim: Simulator) -> None:
    made = runpod_sim.create_network_volume("ctr-mount", DATACENTER)
    request = pod_request("ctr-stack--nv-1", volume_gb=0, volume_mount_path="/workspace",
                          network_volume_id=made["id"])
    created = provider.create_pod(request)
    ready(provider, created.pod_id)
    api = provider if isinstance(provider, ApiProvider) else other
    got = api.get_pod(created.pod_id)
    assert got is not None
    assert (got.network_volume_id, got.datacenter_id, got.volume_gb) == (made["id"], DATACENTER, 0)
    # The port is published when the container is up; sshd (and the mounts) follow a moment later.
    wait_until(lambda: (runpod_sim.home / "volumes" / made["id"]).is_dir())


def test_volume_listing_is_retried_and_refuses_a_bad_key(kind: str,
                                                         runpod_sim: Simulator) -> None:
    provider = build(kind, runpod_sim)
    runpod_sim.fault("http_error", status=502, count=2)
    before = provider.calls
    assert any(v.name == "sim-volume-ro" for v in provider.list_network_volumes())
    assert provider.calls == before + 3
    bad_key = "rpa_NOT-THE-RIGHT-KEY-0123456789"
    with pytest.raises(ProviderAuthError) as caught:
        build(kind, runpod_sim, RUNPOD_API_KEY=bad_key).list_network_volumes()
    assert bad_key not in str(caught.value)


# -- transient failures, auth, and the 5xx-after-create quirk -----------------------------------

@pytest.mark.parametrize("status", [429, 502])
def test_transient_read_failures_are_retried(provider: Provider, runpod_sim: Simulator,
                                             status: int) -> None:
    provider.create_pod(pod_request("ctr-stack--retry-1"))
    runpod_sim.fault("http_error", status=status, count=2)
    before = provider.calls
    assert len(provider.list_pods(name_prefix="ctr-stack--")) == 1
    assert provider.calls == before + 3


def test_failures_past_the_retries_are_unavailable(provider: Provider,
                                                   runpod_sim: Simulator) -> None:
    runpod_sim.fault("http_error", status=503, count=100)
    before = provider.calls
    with pytest.raises(ProviderUnavailableError):
        provider.list_pods()
    assert provider.calls - before > 1
    runpod_sim.clear_faults()
    assert provider.list_pods() == ()


def impatient(kind: str, sim: Simulator) -> Provider:
    """A provider that gives up on a request after one second, and tries twice."""
    if kind == "api":
        settings = dataclasses.replace(ApiSettings.from_env(sim.env), read_timeout_sec=1.0,
                                       attempts=2)
        return ApiProvider(settings)
    return RunpodctlProvider(sim.runpodctl, env=sim.env, timeout=1.0, attempts=2)


def test_a_request_that_hangs_is_retried_then_unavailable(kind: str,
                                                          runpod_sim: Simulator) -> None:
    provider = impatient(kind, runpod_sim)
    runpod_sim.fault("http_delay", seconds=3, count=2)
    with pytest.raises(ProviderUnavailableError):
        provider.list_pods()
    assert provider.calls == 2


def test_a_bad_api_key_is_an_auth_error_without_the_key(kind: str,
                                                        runpod_sim: Simulator) -> None:
    bad_key = "rpa_NOT-THE-RIGHT-KEY-0123456789"
    provider = build(kind, runpod_sim, RUNPOD_API_KEY=bad_key)
    with pytest.raises(ProviderAuthError) as caught:
        provider.list_pods()
    assert bad_key not in str(caught.value)
    assert provider.calls == 1, "a refused key is not retried"


def test_create_answering_5xx_leaves_one_pod_findable_by_name(
        provider: Provider, runpod_sim: Simulator) -> None:
    request = pod_request("ctr-stack--5xx-1")
    runpod_sim.fault("create_5xx")
    with pytest.raises(ProviderUnavailableError):
        provider.create_pod(request)
    found = wait_until(lambda: provider.list_pods(name_prefix=request.name))
    assert [pod.name for pod in found] == [request.name], "exactly one: a create is not retried"
    assert found[0].status is PodStatus.RUNNING


# -- the one-request read (SnapshotReader, the API provider's) ------------------------------------

def test_a_snapshot_reads_what_the_separate_calls_read_in_one_request(
        runpod_sim: Simulator) -> None:
    provider = build("api", runpod_sim)
    assert isinstance(provider, SnapshotReader)
    provider.create_pod(pod_request("ctr-stack--snap-1"))
    provider.create_pod(pod_request("other--snap-2"))
    runpod_sim.create_network_volume("ctr-snap", DATACENTER)
    before = provider.calls
    snap = provider.snapshot(name_prefix="ctr-stack--", with_catalog=True,
                             with_network_volumes=True)
    assert provider.calls == before + 1
    # the pods boot meanwhile (uptime, ports): compare what a plan keys on
    assert [seen(p) for p in snap.pods] == [seen(p) for p in provider.list_pods(name_prefix="ctr-stack--")]
    assert snap.catalog == provider.catalog()
    assert snap.network_volumes == provider.list_network_volumes()
    bare = provider.snapshot()
    assert (bare.catalog, bare.network_volumes) == (None, None)
    assert {p.name for p in bare.pods} == {"ctr-stack--snap-1", "other--snap-2"}
    assert not isinstance(build("runpodctl", runpod_sim), SnapshotReader), \
        "runpodctl lists with one command each: it is read call by call"
