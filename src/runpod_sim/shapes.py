"""A pod as each interface spells it: GraphQL, REST v1 and REST v2 disagree on names and shapes
(env as `["K=V"]` or `{K: V}`, ports as a string or a list, timestamps Go-style or ISO), and the
simulator reproduces each as the reference records it."""

from __future__ import annotations

from typing import Any

from runpod_sim import catalog
from runpod_sim.engine import go_time, iso_time
from runpod_sim.store import EXITED, RUNNING, PodRecord

PUBLIC_IP = "127.0.0.1"


def _runtime_ports(pod: PodRecord) -> list[dict[str, Any]]:
    entries = []
    for spec in pod.ports:
        number, _, kind = spec.partition("/")
        if kind == "tcp" and number == "22" and pod.ssh_port is not None:
            entries.append({"ip": PUBLIC_IP, "isIpPublic": True, "privatePort": 22,
                            "publicPort": pod.ssh_port, "type": "tcp"})
        elif number.isdigit():
            entries.append({"ip": "100.65.0.2", "isIpPublic": False,
                            "privatePort": int(number), "publicPort": int(number),
                            "type": kind or "tcp"})
    return entries


def _runtime(pod: PodRecord, now: float) -> dict[str, Any] | None:
    if pod.desired_status != RUNNING or pod.container_up_at is None:
        return None
    return {
        "uptimeInSeconds": int(now - pod.container_up_at),
        "ports": _runtime_ports(pod),
        "gpus": [{"id": f"GPU-{pod.id[:8]}-{i:04d}-sim", "gpuUtilPercent": 0,
                  "memoryUtilPercent": 0} for i in range(pod.gpu_count)],
        "container": {"cpuPercent": 0, "memoryPercent": 1},
    }


def _display_name(pod: PodRecord) -> str:
    gpu = catalog.GPU_BY_ID.get(pod.gpu_type_id)
    return gpu.display_name if gpu else pod.gpu_type_id


def graphql_pod(pod: PodRecord, now: float) -> dict[str, Any]:
    dc = catalog.DATA_CENTER_BY_ID[pod.data_center_id]
    return {
        "id": pod.id, "name": pod.name, "desiredStatus": pod.desired_status,
        "imageName": pod.image_name, "costPerHr": pod.cost_per_hr,
        "adjustedCostPerHr": pod.cost_per_hr, "gpuCount": pod.gpu_count,
        "vcpuCount": pod.vcpu_count, "memoryInGb": pod.memory_gb,
        "containerDiskInGb": pod.container_disk_gb, "volumeInGb": pod.volume_gb,
        "volumeMountPath": pod.volume_mount_path, "dockerArgs": pod.docker_args,
        "dockerId": None, "env": [f"{k}={v}" for k, v in pod.env.items()],
        "machineId": pod.machine_id,
        "podType": "INTERRUPTABLE" if pod.interruptible else "RESERVED",
        "port": None, "ports": ",".join(pod.ports),
        "lastStatusChange": pod.last_status_change,
        "uptimeSeconds": 0,  # RunPod's top-level field is always 0; see runtime.uptimeInSeconds
        "createdAt": go_time(pod.created_at), "lastStartedAt": go_time(pod.last_started_at),
        "templateId": pod.template_id, "networkVolumeId": pod.network_volume_id,
        "machine": {
            "gpuDisplayName": _display_name(pod), "location": dc.location,
            "podHostId": pod.pod_host_id, "gpuTypeId": pod.gpu_type_id,
            "dataCenterId": pod.data_center_id, "secureCloud": pod.cloud_type == "SECURE",
        },
        "runtime": _runtime(pod, now),
    }


def rest_v1_pod(pod: PodRecord, now: float, *, include_machine: bool = False,
                include_network_volume: bool = False,
                volumes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    gpu = catalog.GPU_BY_ID.get(pod.gpu_type_id)
    dc = catalog.DATA_CENTER_BY_ID[pod.data_center_id]
    up = pod.desired_status == RUNNING and pod.container_up_at is not None
    machine: dict[str, Any] = {"gpuTypeId": pod.gpu_type_id, "dataCenterId": pod.data_center_id}
    if include_machine:
        machine.update({"gpuType": {"id": pod.gpu_type_id, "displayName": _display_name(pod)},
                        "location": dc.location, "secureCloud": pod.cloud_type == "SECURE",
                        "supportPublicIp": pod.support_public_ip,
                        "podHostId": pod.pod_host_id})
    body: dict[str, Any] = {
        "id": pod.id, "name": pod.name, "desiredStatus": pod.desired_status,
        "imageName": pod.image_name, "image": pod.image_name, "env": dict(pod.env),
        "gpuTypeId": pod.gpu_type_id, "gpuCount": pod.gpu_count, "ports": list(pod.ports),
        "portMappings": ({"22": pod.ssh_port} if up and pod.exposes_ssh and pod.ssh_port else {}),
        "publicIp": PUBLIC_IP if up else "",
        "costPerHr": pod.cost_per_hr, "adjustedCostPerHr": pod.cost_per_hr,
        "gpu": None if gpu is None else {
            "id": gpu.id, "count": pod.gpu_count, "displayName": gpu.display_name,
            "securePrice": gpu.secure_price, "communityPrice": gpu.community_price},
        "machineId": pod.machine_id, "machine": machine,
        "memoryInGb": pod.memory_gb, "vcpuCount": pod.vcpu_count,
        "containerDiskInGb": pod.container_disk_gb, "volumeInGb": pod.volume_gb,
        "volumeMountPath": pod.volume_mount_path, "interruptible": pod.interruptible,
        "locked": False, "createdAt": go_time(pod.created_at),
        "lastStartedAt": go_time(pod.last_started_at),
        "lastStatusChange": pod.last_status_change,
        "networkVolumeId": pod.network_volume_id, "templateId": pod.template_id,
    }
    if include_network_volume and pod.network_volume_id and volumes:
        body["networkVolume"] = volumes.get(pod.network_volume_id)
    return body


def v2_status(pod: PodRecord) -> str:
    """REST v2's status: the pull and boot phase shows as PROVISIONING."""
    if pod.desired_status == EXITED:
        return "EXITED"
    return "RUNNING" if pod.container_up_at is not None else "PROVISIONING"


def rest_v2_pod(pod: PodRecord, now: float) -> dict[str, Any]:
    status = v2_status(pod)
    direct = None
    if status == "RUNNING" and pod.exposes_ssh and pod.ssh_port is not None:
        direct = {"host": PUBLIC_IP, "port": pod.ssh_port, "username": "root",
                  "command": f"ssh root@{PUBLIC_IP} -p {pod.ssh_port}"}
    return {
        "id": pod.id, "name": pod.name, "status": status, "image": pod.image_name,
        "gpu": {"id": pod.gpu_type_id, "count": pod.gpu_count, "displayName": _display_name(pod)},
        "cloud": pod.cloud_type, "dataCenterId": pod.data_center_id,
        "interruptible": pod.interruptible,
        "cost": pod.cost_per_hr if status != "EXITED" else 0.0,
        "costPerHr": pod.cost_per_hr,
        "containerDiskInGb": pod.container_disk_gb, "volumeInGb": pod.volume_gb,
        "volumeMountPath": pod.volume_mount_path, "networkVolumeId": pod.network_volume_id,
        "ports": list(pod.ports), "env": dict(pod.env),
        "createdAt": iso_time(pod.created_at), "lastStartedAt": iso_time(pod.last_started_at),
        "lastStatusChange": pod.last_status_change,
        "uptimeSeconds": int(now - pod.container_up_at) if pod.container_up_at else 0,
        "actions": ["stop", "restart", "terminate"] if pod.desired_status == RUNNING
        else ["start", "terminate"],
        "ssh": {"direct": direct,
                "proxy": {"host": "ssh.runpod.io", "port": 22, "username": pod.pod_host_id,
                          "command": f"ssh {pod.pod_host_id}@ssh.runpod.io"}},
    }
