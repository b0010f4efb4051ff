"""runpodctl JSON -> values, and its error contract -> typed errors (pure functions)."""

from __future__ import annotations

import pytest

from reconciler.desired import PodRequest
from reconciler.observed import CloudType, NetworkVolume, PodStatus, SshEndpoint, StockStatus
from runtime.errors import (
    CapacityError,
    HostFullError,
    PodNotFoundError,
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailableError,
)
from runtime.providers.runpodctl import (
    create_args,
    parse_catalog,
    parse_create_flags,
    parse_error,
    parse_network_volumes,
    parse_pod,
    parse_pod_list,
    raise_for_error,
)

POD_GET = {"containerDiskInGb": 30, "costPerHr": 0.99, "createdAt": "2026-06-23 23:30:13 +0000 UTC",
           "desiredStatus": "EXITED", "gpuCount": 1, "id": "c79", "imageName": "img:1",
           "name": "n", "ports": ["8888/http", "22/tcp"], "uptimeSeconds": 0,
           "ssh": {"error": "pod not ready", "id": "c79"}, "volumeInGb": 0,
           "volumeMountPath": "/workspace", "machine": {"gpuTypeId": "NVIDIA A40",
                                                        "dataCenterId": "EU-RO-1",
                                                        "secureCloud": True}}


def test_pod_get_shape() -> None:
    pod = parse_pod(POD_GET)
    assert pod.status is PodStatus.EXITED and pod.image == "img:1"
    assert pod.gpu_type_id == "NVIDIA A40" and pod.datacenter_id == "EU-RO-1"
    assert pod.cloud_type is CloudType.SECURE and pod.ssh is None and not pod.container_up
    assert pod.ports == ("8888/http", "22/tcp") and pod.cost_per_hr == 0.99


def test_ssh_block_public_ip_and_runtime_ports() -> None:
    assert parse_pod({**POD_GET, "ssh": {"ip": "1.2.3.4", "port": 2222}}).ssh == SshEndpoint(
        "1.2.3.4", 2222)
    rest = {"id": "x", "name": "n", "desiredStatus": "RUNNING", "publicIp": "5.6.7.8",
            "portMappings": {"22": 15186}, "runtime": None}
    assert parse_pod(rest).ssh == SshEndpoint("5.6.7.8", 15186)
    gql = {"id": "x", "desiredStatus": "RUNNING", "runtime": {"uptimeInSeconds": 5, "ports": [
        {"ip": "9.9.9.9", "isIpPublic": True, "privatePort": 22, "publicPort": 40022}]}}
    pod = parse_pod(gql)
    assert pod.ssh == SshEndpoint("9.9.9.9", 40022) and pod.container_up and pod.uptime_sec == 5


def test_pod_get_without_runtime_is_up_once_ssh_is_published() -> None:
    """`pod get` passes no `runtime` through; the ssh block is the sign of a running container,
    and the top-level uptimeSeconds (always 0 at RunPod) is no uptime."""
    running = {**POD_GET, "desiredStatus": "RUNNING", "ssh": {"ip": "1.2.3.4", "port": 2222}}
    assert parse_pod(running).container_up and parse_pod(running).uptime_sec is None
    assert not parse_pod({**running, "ssh": {"error": "pod not ready"}}).container_up


def test_create_answer_in_graphql_shape() -> None:
    created = parse_pod({"id": "p1", "name": "n", "desiredStatus": "RUNNING", "imageName": "i",
                         "ports": "22/tcp,8888/http", "env": [], "gpuCount": 2,
                         "machine": {"gpuDisplayName": "A40", "location": "Romania"}})
    assert created.ports == ("22/tcp", "8888/http") and created.gpu_count == 2
    assert created.gpu_type_id is None and not created.container_up


def test_pod_list_uses_renamed_gpu_id() -> None:
    (pod,) = parse_pod_list([{"id": "a", "name": "t--k--1", "desiredStatus": "RUNNING",
                              "gpuId": "NVIDIA RTX A4000", "gpuCount": 1, "imageName": "i"}])
    assert pod.gpu_type_id == "NVIDIA RTX A4000" and pod.datacenter_id is None
    with pytest.raises(ProviderProtocolError):
        parse_pod_list({"pods": []})
    with pytest.raises(ProviderProtocolError):
        parse_pod({"name": "no id"})


def test_catalog() -> None:
    catalog = parse_catalog(
        [{"id": "EU-RO-1", "gpuAvailability": [{"gpuTypeId": "NVIDIA A40", "stockStatus": "High"},
                                               {"gpuTypeId": "NVIDIA L4", "stockStatus": None}]}],
        [{"gpuId": "NVIDIA A40", "displayName": "A40", "memoryInGb": 48}])
    assert catalog.datacenter_ids == ("EU-RO-1",)
    assert catalog.stock("NVIDIA A40", "EU-RO-1") is StockStatus.HIGH
    assert catalog.stock("NVIDIA L4", "EU-RO-1") is StockStatus.NONE
    assert catalog.price("NVIDIA A40").memory_gb == 48  # type: ignore[union-attr]


RECORDED_404 = """{"error":"api error: {\\"error\\":\\"pod not found\\",\\"status\\":404}\\n (status 404)"}
Usage:
  runpodctl pod get <pod-id> [flags]

{"error":"failed to get pod: api error: {"error":"pod not found","status":404}
 (status 404)"}
"""


def test_error_contract() -> None:
    assert "pod not found" in parse_error(RECORDED_404)
    with pytest.raises(PodNotFoundError):
        raise_for_error("pod get", 1, RECORDED_404, pod_id="x")
    cases = [
        ('{"error":"failed to create pod: There are no longer any instances available"}',
         CapacityError),
        ('{"error":"api error: unauthorized (status 401)"}', ProviderAuthError),
        ('{"error":"api error: bad gateway (status 502)"}', ProviderUnavailableError),
        ("something odd", ProviderError),
    ]
    for stderr, kind in cases:
        with pytest.raises(kind):
            raise_for_error("op", 1, stderr)
    raise_for_error("op", 0, "")


def test_host_full_and_stockout_answered_500_are_not_transient() -> None:
    host_full = ('{"error":"api error: {\\"error\\":\\"start pod: There are not enough free GPUs '
                 'on the host machine to start this pod.\\",\\"status\\":500}\\n (status 500)"}')
    with pytest.raises(HostFullError):
        raise_for_error("start", 1, host_full, pod_id="p1")
    request = PodRequest(name="n", image="i", gpu_type_id="NVIDIA A40", datacenter_id="EU-RO-1",
                         cloud_type=CloudType.SECURE)
    stockout = ('{"error":"api error: {\\"error\\":\\"create pod: There are no longer any '
                'instances available\\",\\"status\\":500} (status 500)"}')
    with pytest.raises(CapacityError) as caught:
        raise_for_error("create", 1, stockout, request=request)
    assert (caught.value.gpu_type_id, caught.value.datacenter_id) == ("NVIDIA A40", "EU-RO-1")
    with pytest.raises(ProviderUnavailableError):
        raise_for_error("create", 1, '{"error":"graphql error: status 503: busy"}')


CREATE_HELP = """Usage:
  runpodctl pod create [flags]

Flags:
  -h, --help                       help for create
      --cloud-type string          cloud type (SECURE, COMMUNITY) (default "SECURE")
      --min-vcpu-count int         minimum vcpus
      --volume-in-gb int           volume size in GB (default 0)

Global Flags:
  -o, --output string   output format (json, yaml) (default "json")
"""


def test_create_flags_probe() -> None:
    assert parse_create_flags(CREATE_HELP) == {"help", "cloud-type", "min-vcpu-count",
                                               "volume-in-gb", "output"}


def test_create_args() -> None:
    request = PodRequest(name="s--1", image="img:1", gpu_type_id="NVIDIA A40",
                         datacenter_id="EU-RO-1", cloud_type=CloudType.COMMUNITY, gpu_count=2,
                         volume_gb=10, ports=("22/tcp", "8888/http"), env=(("A", "1"),),
                         min_vcpu_count=4, min_memory_gb=32, interruptible=True)
    args = create_args(request, frozenset({"min-vcpu-count"}))
    pairs = dict(zip(args[2::2], args[3::2], strict=False))
    assert args[:2] == ["pod", "create"] and pairs == {
        "--name": "s--1", "--image": "img:1", "--gpu-id": "NVIDIA A40",
        "--cloud-type": "COMMUNITY", "--data-center-ids": "EU-RO-1",
        "--container-disk-in-gb": "20", "--volume-mount-path": "/workspace",
        "--gpu-count": "2", "--volume-in-gb": "10", "--ports": "22/tcp,8888/http",
        "--env": '{"A": "1"}', "--min-vcpu-count": "4"}
    on_network_volume = create_args(
        PodRequest(name="s--2", image="i", gpu_type_id="g", datacenter_id="d",
                   cloud_type=CloudType.SECURE, network_volume_id="nv1"), frozenset())
    assert "--network-volume-id" in on_network_volume and "--volume-in-gb" not in on_network_volume
    assert "--gpu-count" not in on_network_volume and "--env" not in on_network_volume


def test_network_volume_list() -> None:
    listed = [{"dataCenterId": "EU-RO-1", "id": "nv1", "name": "data", "size": 50},
              {"name": "no id, cannot be mounted"}, {"id": "nv2"}]
    assert parse_network_volumes(listed) == (
        NetworkVolume(id="nv1", name="data", datacenter_id="EU-RO-1", size_gb=50),
        NetworkVolume(id="nv2", name=""))
    assert parse_network_volumes([]) == ()
    with pytest.raises(ProviderProtocolError):
        parse_network_volumes({"error": "not a list"})
