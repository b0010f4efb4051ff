"""RunpodctlProvider, read side: `runpodctl` (v2, noun-verb, JSON) via subprocess.

    pod list --all -o json                  -> list_pods
    pod get ID --include-machine -o json    -> get_pod
    datacenter list -o json, gpu list -o json -> catalog

The JSON -> value translation is in pure `parse_*` functions, which handle the REST v1 shapes
runpodctl passes through: `imageName`; `machine.gpuTypeId`/`dataCenterId` or runpodctl's
renamed `gpuId`; the `ssh` block `{ip, port}` or `{error}`; a null `runtime`; `publicIp` +
`portMappings`. Errors follow runpodctl's v2 contract (JSON `{"error": ...}` on stderr, exit 1)
and become the typed errors of `runtime.errors`. The write side comes with its own issue.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

from reconciler.desired import PodRequest
from reconciler.observed import (
    Catalog,
    CloudType,
    GpuAvailability,
    GpuPrice,
    ObservedPod,
    PodStatus,
    SshEndpoint,
    StockStatus,
)
from runtime.errors import (
    CapacityError,
    PodNotFoundError,
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailableError,
)

__all__ = ["RunpodctlProvider", "parse_catalog", "parse_error", "parse_pod", "parse_pod_list",
           "raise_for_error"]

NAME = "runpodctl"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _ssh(data: Mapping[str, Any]) -> SshEndpoint | None:
    block = data.get("ssh")
    if isinstance(block, Mapping) and _str(block.get("ip")) and _int(block.get("port")):
        return SshEndpoint(host=block["ip"], port=block["port"])
    ip = _str(data.get("publicIp"))
    mappings = data.get("portMappings")
    if ip and isinstance(mappings, Mapping):
        port = _int(mappings.get("22"))
        if port:
            return SshEndpoint(host=ip, port=port)
    runtime = data.get("runtime")
    if isinstance(runtime, Mapping):
        for entry in runtime.get("ports") or ():
            if (isinstance(entry, Mapping) and entry.get("isIpPublic")
                    and entry.get("privatePort") == 22 and _str(entry.get("ip"))
                    and _int(entry.get("publicPort"))):
                return SshEndpoint(host=entry["ip"], port=entry["publicPort"])
    return None


def parse_pod(data: Any) -> ObservedPod:
    """One pod object (REST v1 shape as runpodctl prints it) -> ObservedPod."""
    if not isinstance(data, Mapping) or not _str(data.get("id")):
        raise ProviderProtocolError("a pod without an id", excerpt=json.dumps(data)[:300],
                                    provider=NAME)
    machine = data.get("machine") if isinstance(data.get("machine"), Mapping) else {}
    assert isinstance(machine, Mapping)
    gpu = (_str(data.get("gpuTypeId")) or _str(data.get("gpuId"))
           or _str(machine.get("gpuTypeId")) or _str(machine.get("gpuId")))
    dc = _str(machine.get("dataCenterId")) or _str(data.get("dataCenterId"))
    secure = machine.get("secureCloud")
    cloud = (CloudType.SECURE if secure is True else CloudType.COMMUNITY if secure is False
             else None)
    ports = data.get("ports")
    if isinstance(ports, str):
        ports = [p.strip() for p in ports.split(",") if p.strip()]
    runtime = data.get("runtime")
    uptime = (_float(runtime.get("uptimeInSeconds")) if isinstance(runtime, Mapping)
              else None) or _float(data.get("uptimeSeconds"))
    volume = data.get("networkVolume")
    network_volume_id = _str(data.get("networkVolumeId")) or (
        _str(volume.get("id")) if isinstance(volume, Mapping) else None)
    return ObservedPod(
        pod_id=data["id"],
        name=_str(data.get("name")) or "",
        status=PodStatus.parse(data.get("desiredStatus")),
        image=_str(data.get("imageName")) or _str(data.get("image")),
        gpu_type_id=gpu,
        gpu_count=_int(data.get("gpuCount")),
        datacenter_id=dc,
        cloud_type=cloud,
        interruptible=data.get("interruptible") if isinstance(data.get("interruptible"),
                                                              bool) else None,
        cost_per_hr=_float(data.get("costPerHr")),
        container_disk_gb=_int(data.get("containerDiskInGb")),
        volume_gb=_int(data.get("volumeInGb")),
        volume_mount_path=_str(data.get("volumeMountPath")),
        network_volume_id=network_volume_id,
        ports=tuple(p for p in ports if isinstance(p, str)) if isinstance(ports, list) else (),
        container_up=isinstance(runtime, Mapping),
        uptime_sec=uptime,
        ssh=_ssh(data),
        created_at=_str(data.get("createdAt")),
    )


def parse_pod_list(data: Any) -> tuple[ObservedPod, ...]:
    if not isinstance(data, list):
        raise ProviderProtocolError("expected a JSON array of pods",
                                    excerpt=json.dumps(data)[:300], provider=NAME)
    return tuple(parse_pod(item) for item in data)


def parse_catalog(datacenters: Any, gpus: Any) -> Catalog:
    """`datacenter list` (ids + gpuAvailability) and `gpu list` (ids, names; no prices)."""
    availability = []
    dc_ids = []
    for center in datacenters if isinstance(datacenters, list) else ():
        if not isinstance(center, Mapping) or not _str(center.get("id")):
            continue
        dc_ids.append(center["id"])
        for item in center.get("gpuAvailability") or ():
            if isinstance(item, Mapping) and _str(item.get("gpuTypeId") or item.get("gpuId")):
                availability.append(GpuAvailability(
                    gpu_type_id=item.get("gpuTypeId") or item["gpuId"],
                    datacenter_id=center["id"], stock=StockStatus.parse(item.get("stockStatus"))))
    prices = []
    for gpu in gpus if isinstance(gpus, list) else ():
        if isinstance(gpu, Mapping) and _str(gpu.get("gpuId") or gpu.get("gpuTypeId")):
            prices.append(GpuPrice(gpu_type_id=gpu.get("gpuId") or gpu["gpuTypeId"],
                                   display_name=_str(gpu.get("displayName")),
                                   memory_gb=_int(gpu.get("memoryInGb"))))
    return Catalog(availability=tuple(availability), prices=tuple(prices),
                   datacenter_ids=tuple(dc_ids))


def parse_error(stderr: str) -> str:
    """The message of runpodctl's error output: the first line that is `{"error": ...}` JSON,
    else the last `{"error":"...` line taken raw (it is printf'd, not escaped), else the text."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                return data["error"]
    for line in reversed(lines):
        if line.startswith('{"error":'):
            return line[len('{"error":'):].strip('"}')
    return stderr.strip()[:500] or "runpodctl failed without a message"


def raise_for_error(operation: str, returncode: int, stderr: str, *, pod_id: str = "") -> None:
    """Map runpodctl's exit status and error message to the typed errors."""
    if returncode == 0:
        return
    message = parse_error(stderr)
    low = message.lower()
    if "not found" in low and pod_id:
        raise PodNotFoundError(pod_id, provider=NAME, operation=operation)
    if any(w in low for w in ("unauthorized", "api key", "status 401", "status 403",
                              "forbidden")):
        raise ProviderAuthError(message, provider=NAME, operation=operation)
    if any(w in low for w in ("no longer any instances", "does not have the resources")):
        raise CapacityError(message, provider=NAME)
    if any(w in low for w in ("status 5", "status 429", "timeout", "timed out",
                              "connection refused", "no such host")):
        raise ProviderUnavailableError(message, provider=NAME, operation=operation)
    raise ProviderError(message, provider=NAME, operation=operation)


class RunpodctlProvider:
    """Reads pods and the catalog through the `runpodctl` command."""

    name = NAME

    def __init__(self, executable: str = "runpodctl", *, timeout: float = 60.0,
                 env: Mapping[str, str] | None = None) -> None:
        self.executable = executable
        self.timeout = timeout
        self.env = dict(env) if env is not None else None

    def _run(self, operation: str, *args: str, pod_id: str = "") -> Any:
        argv = [self.executable, *args, "-o", "json"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                                  env=self.env, check=False)
        except subprocess.TimeoutExpired:
            raise ProviderUnavailableError(f"no answer within {self.timeout:g}s",
                                           provider=NAME, operation=operation) from None
        except OSError as exc:
            raise ProviderUnavailableError(f"cannot run {self.executable}: {exc}",
                                           provider=NAME, operation=operation) from None
        raise_for_error(operation, done.returncode, done.stderr, pod_id=pod_id)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            raise ProviderProtocolError("not JSON", excerpt=done.stdout, provider=NAME,
                                        operation=operation) from None

    def list_pods(self, *, name_prefix: str | None = None) -> tuple[ObservedPod, ...]:
        pods = parse_pod_list(self._run("pod list", "pod", "list", "--all"))
        if name_prefix:
            pods = tuple(p for p in pods if p.name.startswith(name_prefix))
        return pods

    def get_pod(self, pod_id: str) -> ObservedPod | None:
        try:
            data = self._run("pod get", "pod", "get", pod_id, "--include-machine",
                             pod_id=pod_id)
        except PodNotFoundError:
            return None
        return parse_pod(data)

    def catalog(self, *, cloud_type: CloudType | None = None) -> Catalog:
        return parse_catalog(self._run("datacenter list", "datacenter", "list"),
                             self._run("gpu list", "gpu", "list"))

    # The write side is another issue's; these keep the protocol's shape meanwhile.
    def create_pod(self, request: PodRequest) -> ObservedPod:
        raise NotImplementedError("RunpodctlProvider.create_pod: write side not built yet")

    def start_pod(self, pod_id: str, *, gpu_count: int) -> ObservedPod:
        raise NotImplementedError("RunpodctlProvider.start_pod: write side not built yet")

    def stop_pod(self, pod_id: str) -> None:
        raise NotImplementedError("RunpodctlProvider.stop_pod: write side not built yet")

    def terminate_pod(self, pod_id: str) -> None:
        raise NotImplementedError("RunpodctlProvider.terminate_pod: write side not built yet")
