"""RunPod's GraphQL documents and the translation of their answers into core values.

Every document takes its inputs as GraphQL variables, never by string interpolation: a pod
name or image with a quote in it cannot change the query. Parsing is pure and tolerant of
missing fields (RunPod omits what it does not know), strict about types it relies on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.desired import PodRequest
from reconciler.observed import (
    Catalog,
    CloudType,
    GpuAvailability,
    GpuPrice,
    NetworkVolume,
    ObservedPod,
    PodStatus,
    SshEndpoint,
    StockStatus,
)

POD_FIELDS = """
  id name desiredStatus imageName costPerHr gpuCount podType
  containerDiskInGb volumeInGb volumeMountPath networkVolumeId ports
  machine { gpuTypeId dataCenterId secureCloud location podHostId }
  runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } }
"""

LIST_PODS = "query listPods { myself { pods { " + POD_FIELDS + " } } }"
GET_POD = "query getPod($input: PodFilter!) { pod(input: $input) { " + POD_FIELDS + " } }"
CREATE_ON_DEMAND = (
    "mutation createPod($input: PodFindAndDeployOnDemandInput!) "
    "{ podFindAndDeployOnDemand(input: $input) { " + POD_FIELDS + " } }"
)
CREATE_SPOT = (
    "mutation createSpotPod($input: PodRentInterruptableInput!) "
    "{ podRentInterruptable(input: $input) { " + POD_FIELDS + " } }"
)
RESUME_POD = (
    "mutation resumePod($input: PodResumeInput!) { podResume(input: $input) { "
    + POD_FIELDS + " } }"
)
STOP_POD = "mutation stopPod($input: PodStopInput!) { podStop(input: $input) { id desiredStatus } }"
TERMINATE_POD = "mutation terminatePod($input: PodTerminateInput!) { podTerminate(input: $input) }"
SPOT_PRICE = (
    "query spotPrice($input: GpuTypeFilter) "
    "{ gpuTypes(input: $input) { id secureSpotPrice communitySpotPrice } }"
)
NETWORK_VOLUMES = "query networkVolumes { myself { networkVolumes { id name size dataCenterId } } }"


def snapshot_document(*, with_catalog: bool, with_network_volumes: bool) -> str:
    """Pods, and on request the catalog and the network volumes, as one document: GraphQL
    answers several root fields in one round trip."""
    volumes = " networkVolumes { id name size dataCenterId }" if with_network_volumes else ""
    catalog = ""
    if with_catalog:
        catalog = (
            " gpuTypes { id displayName memoryInGb securePrice communityPrice secureSpotPrice"
            " communitySpotPrice }"
            " dataCenters { id name location gpuAvailability { gpuTypeId stockStatus } }"
        )
    return "query snapshot { myself { pods { " + POD_FIELDS + " }" + volumes + " }" + catalog + " }"


CATALOG = """
query catalog {
  gpuTypes { id displayName memoryInGb securePrice communityPrice secureSpotPrice communitySpotPrice }
  dataCenters { id name location gpuAvailability { gpuTypeId stockStatus } }
}
"""


def create_input(request: PodRequest) -> dict[str, Any]:
    """The `input` variable of podFindAndDeployOnDemand / podRentInterruptable."""
    body: dict[str, Any] = {
        "name": request.name,
        "imageName": request.image,
        "gpuTypeId": request.gpu_type_id,
        "gpuCount": request.gpu_count,
        "cloudType": request.cloud_type.value,
        "dataCenterId": request.datacenter_id,
        "containerDiskInGb": request.container_disk_gb,
        "volumeInGb": request.volume_gb,
        "volumeMountPath": request.volume_mount_path,
        "ports": ",".join(request.ports),
        "env": [{"key": key, "value": value} for key, value in request.env],
        "startSsh": True,
        "supportPublicIp": True,
    }
    if request.network_volume_id:
        body["networkVolumeId"] = request.network_volume_id
    if request.min_vcpu_count:
        body["minVcpuCount"] = request.min_vcpu_count
    if request.min_memory_gb:
        body["minMemoryInGb"] = request.min_memory_gb
    if request.interruptible and request.bid_per_gpu is not None:
        body["bidPerGpu"] = request.bid_per_gpu
    return body


def parse_spot_price(
    data: Mapping[str, Any], gpu_type_id: str, cloud_type: CloudType
) -> float | None:
    """The $/GPU/hr a spot pod of that GPU costs in that cloud, from a SPOT_PRICE answer."""
    for gpu in data.get("gpuTypes") or ():
        if isinstance(gpu, Mapping) and gpu.get("id") == gpu_type_id:
            key = "secureSpotPrice" if cloud_type is CloudType.SECURE else "communitySpotPrice"
            return _float(gpu.get(key))
    return None


def parse_pod(raw: Mapping[str, Any]) -> ObservedPod:
    """A GraphQL `Pod` object as the core's ObservedPod."""
    machine = raw.get("machine") or {}
    runtime = raw.get("runtime")
    ssh = None
    uptime = None
    if isinstance(runtime, Mapping):
        uptime = _float(runtime.get("uptimeInSeconds"))
        for port in runtime.get("ports") or ():
            if (
                isinstance(port, Mapping)
                and port.get("privatePort") == 22
                and port.get("isIpPublic")
                and str(port.get("type", "tcp")).lower() == "tcp"
                and port.get("ip")
                and isinstance(port.get("publicPort"), int)
            ):
                ssh = SshEndpoint(host=str(port["ip"]), port=int(port["publicPort"]))
                break
    secure = machine.get("secureCloud") if isinstance(machine, Mapping) else None
    ports_field = raw.get("ports")
    ports: tuple[str, ...]
    if isinstance(ports_field, str):
        ports = tuple(p.strip() for p in ports_field.split(",") if p.strip())
    elif isinstance(ports_field, list):
        ports = tuple(str(p) for p in ports_field)
    else:
        ports = ()
    pod_type = raw.get("podType")
    return ObservedPod(
        pod_id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        status=PodStatus.parse(raw.get("desiredStatus")),
        image=_str(raw.get("imageName")),
        gpu_type_id=_str(machine.get("gpuTypeId")) if isinstance(machine, Mapping) else None,
        gpu_count=_int(raw.get("gpuCount")),
        datacenter_id=_str(machine.get("dataCenterId")) if isinstance(machine, Mapping) else None,
        cloud_type=None if secure is None else (CloudType.SECURE if secure else CloudType.COMMUNITY),
        interruptible=None if pod_type is None else str(pod_type).upper() == "INTERRUPTABLE",
        cost_per_hr=_float(raw.get("costPerHr")),
        container_disk_gb=_int(raw.get("containerDiskInGb")),
        volume_gb=_int(raw.get("volumeInGb")),
        volume_mount_path=_str(raw.get("volumeMountPath")),
        network_volume_id=_str(raw.get("networkVolumeId")),
        ports=ports,
        container_up=isinstance(runtime, Mapping),
        uptime_sec=uptime,
        ssh=ssh,
    )


def parse_network_volumes(data: Mapping[str, Any]) -> tuple[NetworkVolume, ...]:
    """`myself.networkVolumes` as values; a volume without an id cannot be mounted, so it is
    left out."""
    myself = data.get("myself")
    volumes = myself.get("networkVolumes") if isinstance(myself, Mapping) else None
    return tuple(
        NetworkVolume(
            id=str(volume["id"]),
            name=_str(volume.get("name")) or "",
            datacenter_id=_str(volume.get("dataCenterId")),
            size_gb=_int(volume.get("size")),
        )
        for volume in volumes or ()
        if isinstance(volume, Mapping) and _str(volume.get("id"))
    )


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """`gpuTypes` and `dataCenters` as one Catalog."""
    prices = tuple(
        GpuPrice(
            gpu_type_id=str(gpu["id"]),
            display_name=_str(gpu.get("displayName")),
            memory_gb=_int(gpu.get("memoryInGb")),
            secure_price=_float(gpu.get("securePrice")),
            community_price=_float(gpu.get("communityPrice")),
            secure_spot_price=_float(gpu.get("secureSpotPrice")),
            community_spot_price=_float(gpu.get("communitySpotPrice")),
        )
        for gpu in data.get("gpuTypes") or ()
        if isinstance(gpu, Mapping) and gpu.get("id")
    )
    availability: list[GpuAvailability] = []
    datacenter_ids: list[str] = []
    for datacenter in data.get("dataCenters") or ():
        if not isinstance(datacenter, Mapping) or not datacenter.get("id"):
            continue
        datacenter_ids.append(str(datacenter["id"]))
        for entry in datacenter.get("gpuAvailability") or ():
            if isinstance(entry, Mapping) and entry.get("gpuTypeId"):
                availability.append(
                    GpuAvailability(
                        gpu_type_id=str(entry["gpuTypeId"]),
                        datacenter_id=str(datacenter["id"]),
                        stock=StockStatus.parse(entry.get("stockStatus")),
                    )
                )
    return Catalog(
        availability=tuple(availability), prices=prices, datacenter_ids=tuple(datacenter_ids)
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None
