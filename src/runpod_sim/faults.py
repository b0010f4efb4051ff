"""Faults a test (or `runpod-sim fault ...`) switches on at run time.

Two kinds: *armed* faults wait in the state document until the thing they break happens (a
request, a resume, a create), optionally only `count` times; *immediate* faults act once, now,
on the pods (`Engine.inject` carries those out). Every kind, with its parameters:

    stockout         gpu, datacenter      the GPU type has no free units there until cleared
    http_error       status=500, count=1, route=""   answer the next matching requests with it
    http_delay       seconds, count=1, route=""      hold the next matching requests (timeouts)
    create_5xx       count=1              the create succeeds (the pod bills) but answers 500
    host_full        count=1, pod_id=""   a resume finds no free GPU on the pod's host
    zero_gpu_resume  count=1, pod_id=""   a resume succeeds with gpuCount 0 (RunPod does this)
    slow_pull        seconds              image pulls take this much longer until cleared
    ssh_drop         times=1, pod_id=""   cut the pod's open SSH connections, `times` times
    runpodctl_malformed  count=1          runpodctl prints truncated JSON (exit 0)
    restart_loop     pod_id, every_sec=1  the container restarts every so often (uptime resets)
    preempt          pod_id, kill_after_sec=5   immediate: spot reclaim, EXITED without being
                                          asked; SIGTERM to the job's processes now, SIGKILL
                                          `kill_after_sec` later (0: at once)
    remove_stopped   pod_id=""            immediate: a stopped pod vanishes behind our back
    disk_full        pod_id, size_kb=64   immediate: the pod's volume mount has no space left

`route` matches a REST path prefix (`/v1/pods`, `/v2/pods`) or a GraphQL root field name
(`podFindAndDeployOnDemand`); empty matches every RunPod API request (never `/_sim`).
"""

from __future__ import annotations

from typing import Any

ARMED = frozenset({"stockout", "http_error", "http_delay", "create_5xx", "host_full",
                   "zero_gpu_resume", "slow_pull", "ssh_drop", "runpodctl_malformed",
                   "restart_loop"})
IMMEDIATE = frozenset({"preempt", "remove_stopped", "disk_full"})
KINDS = ARMED | IMMEDIATE

_COUNTED = {"http_error": "count", "http_delay": "count", "create_5xx": "count",
            "host_full": "count", "zero_gpu_resume": "count", "ssh_drop": "times",
            "runpodctl_malformed": "count"}


def normalise(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a fault and fill in its defaults, so the state holds only complete faults."""
    if name not in KINDS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(KINDS))}")
    fault: dict[str, Any] = {"name": name, **params}
    if name in _COUNTED:
        fault[_COUNTED[name]] = int(fault.get(_COUNTED[name], 1))
    if name == "stockout" and not {"gpu", "datacenter"} <= fault.keys():
        raise ValueError("stockout needs gpu and datacenter")
    if name in {"http_error", "http_delay"}:
        fault.setdefault("route", "")
    if name == "http_error":
        fault["status"] = int(fault.get("status", 500))
    if name in {"http_delay", "slow_pull"}:
        fault["seconds"] = float(fault["seconds"])
    if name in {"restart_loop", "preempt", "disk_full"} and not fault.get("pod_id"):
        raise ValueError(f"{name} needs pod_id")
    if name == "preempt":
        fault["kill_after_sec"] = float(fault.get("kill_after_sec", 5.0))
        if fault["kill_after_sec"] < 0:
            raise ValueError("preempt kill_after_sec must be 0 or more")
    if name == "restart_loop":
        fault["every_sec"] = float(fault.get("every_sec", 1.0))
    return fault


def take(faults: list[dict[str, Any]], name: str, **match: str) -> dict[str, Any] | None:
    """Find the first armed fault of `name` whose parameters fit `match` (an absent or empty
    parameter fits anything) and use it up once; None when no such fault is armed."""
    for fault in faults:
        if fault["name"] != name:
            continue
        if any(fault.get(key) and not _fits(str(fault[key]), value) for key, value in match.items()):
            continue
        counter = _COUNTED.get(name)
        if counter is not None:
            fault[counter] -= 1
            if fault[counter] <= 0:
                faults.remove(fault)
        return dict(fault)
    return None


def _fits(wanted: str, actual: str) -> bool:
    return actual == wanted or (wanted.startswith("/") and actual.startswith(wanted))
