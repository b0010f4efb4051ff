"""RunpodctlProvider: the `runpodctl` v2 command (noun-verb, JSON) via subprocess.

    pod list --all -o json                  -> list_pods (compact items: no datacenter, ports)
    pod get ID --include-machine -o json    -> get_pod
    pod create --name ... -o json           -> create_pod (never retried)
    pod start|stop|delete ID -o json        -> start_pod, stop_pod, terminate_pod
    datacenter list -o json, gpu list -o json -> catalog (runpodctl prints no prices)
    network-volume list -o json             -> list_network_volumes

The JSON -> value translation is in pure `parse_*` functions, which handle the shapes runpodctl
passes through: `imageName`; `machine.gpuTypeId`/`dataCenterId` or runpodctl's renamed `gpuId`;
the `ssh` block `{ip, port}` or `{error}`; a null `runtime`; `publicIp` + `portMappings`; the
create answer's GraphQL shape (ports as one string). Errors follow runpodctl's v2 contract (JSON
`{"error": ...}` on stderr, cobra usage, exit 1) and become the typed errors of `runtime.errors`
in `raise_for_error`. Transient failures (429, 5xx, timeouts) are retried with backoff for every
command but `pod create`: RunPod can answer 5xx after the pod exists and bills.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
from collections.abc import Mapping
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

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
from runtime.errors import (
    CapacityError,
    HostFullError,
    PodNotFoundError,
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailableError,
)

__all__ = ["RunpodctlProvider", "create_args", "parse_catalog", "parse_create_flags",
           "parse_error", "parse_network_volumes", "parse_pod", "parse_pod_list",
           "raise_for_error"]

NAME = "runpodctl"
_log = logging.getLogger(__name__)

_AUTH = re.compile(r"unauthori[sz]ed|api key|status 40[13]\b|forbidden", re.IGNORECASE)
_HOST_FULL = re.compile(r"not enough free GPUs on the host", re.IGNORECASE)
_CAPACITY = re.compile(
    r"no longer any instances available|no instances available|does not have the resources",
    re.IGNORECASE)
_TRANSIENT = re.compile(
    r"status:? (429|5\d\d)\b|timeout|timed out|deadline exceeded|connection refused"
    r"|connection reset|no such host|\bEOF\b", re.IGNORECASE)
_OPTIONAL_CREATE_FLAGS = ("min-vcpu-count", "min-memory-in-gb", "spot")
"""Flags some runpodctl builds lack (v2.7.2 has none of them); probed with `pod create --help`."""


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
    """One pod object (REST v1 shape, or the create's GraphQL shape) -> ObservedPod.

    `pod get` passes no `runtime` through (REST v1 has none), so a published SSH endpoint or
    public IP is what says the container is up. The top-level `uptimeSeconds` is always 0 at
    RunPod (runpodctl PR #322), so only a positive value counts as an uptime."""
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
    top_uptime = _float(data.get("uptimeSeconds"))
    uptime = (_float(runtime.get("uptimeInSeconds")) if isinstance(runtime, Mapping)
              else top_uptime if top_uptime else None)
    volume = data.get("networkVolume")
    network_volume_id = _str(data.get("networkVolumeId")) or (
        _str(volume.get("id")) if isinstance(volume, Mapping) else None)
    ssh = _ssh(data)
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
        container_up=(isinstance(runtime, Mapping) or ssh is not None
                      or _str(data.get("publicIp")) is not None),
        uptime_sec=uptime,
        ssh=ssh,
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


def parse_network_volumes(data: Any) -> tuple[NetworkVolume, ...]:
    """`network-volume list`: REST v1's `[{id, name, size, dataCenterId}]`, passed through.
    An item without an id cannot be mounted, so it is left out rather than guessed at."""
    if not isinstance(data, list):
        raise ProviderProtocolError("expected a JSON array of network volumes",
                                    excerpt=json.dumps(data)[:300], provider=NAME)
    return tuple(
        NetworkVolume(id=item["id"], name=_str(item.get("name")) or "",
                      datacenter_id=_str(item.get("dataCenterId")), size_gb=_int(item.get("size")))
        for item in data if isinstance(item, Mapping) and _str(item.get("id")))


def parse_create_flags(help_text: str) -> frozenset[str]:
    """The long flags `runpodctl pod create --help` lists (cobra's `--name type  help` rows)."""
    return frozenset(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", help_text, re.MULTILINE))


def create_args(request: PodRequest, supported: frozenset[str]) -> list[str]:
    """`pod create` arguments for one candidate. Optional flags the installed runpodctl lacks
    are left out with a warning: the pod is still made, without that constraint."""
    args = ["pod", "create", "--name", request.name, "--image", request.image,
            "--gpu-id", request.gpu_type_id, "--cloud-type", request.cloud_type.value,
            "--data-center-ids", request.datacenter_id,
            "--container-disk-in-gb", str(request.container_disk_gb),
            "--volume-mount-path", request.volume_mount_path]
    if request.gpu_count != 1:
        args += ["--gpu-count", str(request.gpu_count)]
    if request.network_volume_id:
        args += ["--network-volume-id", request.network_volume_id]
    else:
        args += ["--volume-in-gb", str(request.volume_gb)]
    if request.ports:
        args += ["--ports", ",".join(request.ports)]
    if request.env:
        args += ["--env", json.dumps(dict(request.env))]
    optional = {"min-vcpu-count": request.min_vcpu_count, "min-memory-in-gb": request.min_memory_gb,
                "spot": request.interruptible or None}
    for flag in _OPTIONAL_CREATE_FLAGS:
        value = optional[flag]
        if value is None:
            continue
        if flag not in supported:
            _log.warning("runpodctl pod create does not support --%s in the installed version; "
                         "creating %s without it", flag, request.name)
            continue
        args += [f"--{flag}"] if value is True else [f"--{flag}", str(value)]
    return args


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
            message = data.get("error") if isinstance(data, dict) else None
            if isinstance(message, str):
                return message
    for line in reversed(lines):
        if line.startswith('{"error":'):
            return line[len('{"error":'):].strip('"}')
    return stderr.strip()[:500] or "runpodctl failed without a message"


def raise_for_error(operation: str, returncode: int, stderr: str, *, pod_id: str = "",
                    request: PodRequest | None = None) -> None:
    """Map runpodctl's exit status and error message to the typed errors. The order matters:
    RunPod answers a full host and a stock-out with HTTP 500, which must not read as transient.
    A `request` (a create) puts its candidate on the CapacityError."""
    if returncode == 0:
        return
    message = parse_error(stderr)
    if "not found" in message.lower() and pod_id:
        raise PodNotFoundError(pod_id, provider=NAME, operation=operation)
    if _AUTH.search(message):
        raise ProviderAuthError(message, provider=NAME, operation=operation)
    if _HOST_FULL.search(message):
        raise HostFullError(message, provider=NAME, operation=operation)
    if _CAPACITY.search(message):
        raise CapacityError(message, provider=NAME,
                            gpu_type_id=request.gpu_type_id if request else "",
                            datacenter_id=request.datacenter_id if request else "")
    if _TRANSIENT.search(message):
        raise ProviderUnavailableError(message, provider=NAME, operation=operation)
    raise ProviderError(message, provider=NAME, operation=operation)


class RunpodctlProvider:
    """PodProvider over the `runpodctl` command (see `runtime.providers.protocol`)."""

    name = NAME

    def __init__(self, executable: str = "runpodctl", *, env: Mapping[str, str] | None = None,
                 timeout: float = 60.0, attempts: int = 5, backoff_max_sec: float = 8.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self.env = dict(env) if env is not None else None
        self.attempts = attempts
        self.backoff_max_sec = backoff_max_sec
        self.calls = 0
        """runpodctl processes started, retries and the flag probe included (benchmarks)."""
        self._create_flags: frozenset[str] | None = None

    # -- PodProvider ------------------------------------------------------------------------

    def list_pods(self, *, name_prefix: str | None = None) -> tuple[ObservedPod, ...]:
        pods = parse_pod_list(self._json("list", ["pod", "list", "--all"]))
        if name_prefix:
            pods = tuple(p for p in pods if p.name.startswith(name_prefix))
        return pods

    def get_pod(self, pod_id: str) -> ObservedPod | None:
        try:
            data = self._json("get", ["pod", "get", pod_id, "--include-machine"], pod_id=pod_id)
        except PodNotFoundError:
            return None
        return parse_pod(data)

    def create_pod(self, request: PodRequest) -> ObservedPod:
        """The create's answer names no GPU type, datacenter or cloud (its GraphQL selection
        has only display names), so those come from the request RunPod just honoured."""
        supported = self._supported_create_flags()
        pod = parse_pod(self._json("create", create_args(request, supported), retry=False,
                                   request=request))
        return dataclasses.replace(
            pod,
            gpu_type_id=pod.gpu_type_id or request.gpu_type_id,
            datacenter_id=pod.datacenter_id or request.datacenter_id,
            cloud_type=pod.cloud_type or request.cloud_type,
            interruptible=request.interruptible and "spot" in supported,
        )

    def start_pod(self, pod_id: str, *, gpu_count: int) -> ObservedPod:
        """`pod start` resumes with the pod's own GPU count (REST has no count to pass)."""
        return parse_pod(self._json("start", ["pod", "start", pod_id], pod_id=pod_id))

    def stop_pod(self, pod_id: str) -> None:
        self._json("stop", ["pod", "stop", pod_id], pod_id=pod_id)

    def terminate_pod(self, pod_id: str) -> None:
        try:
            self._json("terminate", ["pod", "delete", pod_id], pod_id=pod_id)
        except PodNotFoundError:
            return

    def catalog(self, *, cloud_type: CloudType | None = None) -> Catalog:
        listed = parse_catalog(self._json("catalog", ["datacenter", "list"]),
                               self._json("catalog", ["gpu", "list"]))
        return self._with_live_prices(listed, cloud_type)

    def _with_live_prices(self, listed: Catalog, cloud_type: CloudType | None) -> Catalog:
        """runpodctl lists no prices, RunPod's GraphQL does: with RUNPOD_API_KEY in the
        environment, ask it once so that the plan's cost is the real one. Without the key, or
        when that call fails, the plan falls back to the stack's assumed rate and says so."""
        env = self.env if self.env is not None else dict(os.environ)
        if not env.get("RUNPOD_API_KEY"):
            return listed
        from runtime.providers.api import ApiProvider, ApiSettings

        self.calls += 1
        try:
            priced = ApiProvider(ApiSettings.from_env(env)).catalog(cloud_type=cloud_type)
        except ProviderError as error:
            _log.warning("live GPU prices unavailable (%s); using the assumed rate", error)
            return listed
        by_id = {price.gpu_type_id: price for price in priced.prices}
        prices = tuple(
            dataclasses.replace(by_id[p.gpu_type_id], display_name=p.display_name or
                                by_id[p.gpu_type_id].display_name,
                                memory_gb=p.memory_gb or by_id[p.gpu_type_id].memory_gb)
            if p.gpu_type_id in by_id else p
            for p in listed.prices)
        return dataclasses.replace(listed, prices=prices)

    def list_network_volumes(self) -> tuple[NetworkVolume, ...]:
        return parse_network_volumes(self._json("network_volumes", ["network-volume", "list"]))

    # -- subprocess -------------------------------------------------------------------------

    def _supported_create_flags(self) -> frozenset[str]:
        if self._create_flags is None:
            self._create_flags = parse_create_flags(
                self._execute("create", ["pod", "create", "--help"]))
        return self._create_flags

    def _json(self, operation: str, args: list[str], *, pod_id: str = "", retry: bool = True,
              request: PodRequest | None = None) -> Any:
        """Run `runpodctl ARGS -o json` and parse stdout; transient failures are retried
        unless `retry` is False (a create)."""
        def once() -> str:
            return self._execute(operation, [*args, "-o", "json"], pod_id=pod_id,
                                 request=request)

        if retry:
            stdout = Retrying(
                retry=retry_if_exception_type(ProviderUnavailableError),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.25, max=self.backoff_max_sec),
                reraise=True,
            )(once)
        else:
            stdout = once()
        try:
            return json.loads(stdout)
        except json.JSONDecodeError:
            raise ProviderProtocolError("runpodctl printed something that is not JSON",
                                        excerpt=stdout, provider=NAME,
                                        operation=operation) from None

    def _execute(self, operation: str, args: list[str], *, pod_id: str = "",
                 request: PodRequest | None = None) -> str:
        """One runpodctl process; its stdout, or the typed error for its failure."""
        self.calls += 1
        try:
            done = subprocess.run([self.executable, *args], capture_output=True, text=True,
                                  timeout=self.timeout, env=self.env, check=False)
        except subprocess.TimeoutExpired:
            raise ProviderUnavailableError(f"no answer within {self.timeout:g}s",
                                           provider=NAME, operation=operation) from None
        except OSError as exc:
            raise ProviderUnavailableError(f"cannot run {self.executable}: {exc.strerror}",
                                           provider=NAME, operation=operation) from None
        raise_for_error(operation, done.returncode, self._redacted(done.stderr),
                        pod_id=pod_id, request=request)
        return self._redacted(done.stdout)

    def _redacted(self, text: str) -> str:
        """The text without the API key, should runpodctl ever echo it."""
        from reconciler.redaction import Redactor

        return Redactor.of([(os.environ if self.env is None else self.env).get("RUNPOD_API_KEY")]).text(text)
