"""RunPod's business rules over the store: create, stop, resume, terminate, and time passing.

Every interface (GraphQL, REST v1, REST v2, and through them runpodctl) calls these methods,
so the three always agree. Business failures raise `RunpodError` carrying RunPod's own message;
each interface wraps it in its own error shape.
"""

from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runpod_sim import catalog, faults
from runpod_sim.hosts import ContainerSpec, Hosts, free_loopback_port
from runpod_sim.store import (
    EXITED,
    RUNNING,
    NetworkVolume,
    PodRecord,
    State,
    Store,
    pod_scoped_key,
    random_id,
)

NO_INSTANCES = ("There are no longer any instances available with the requested specifications. "
                "Please refresh and try again.")
HOST_FULL = "There are not enough free GPUs on the host machine to start this pod."
NOT_FOUND_TO_TERMINATE = "pod not found to terminate"
SOMETHING_WRONG = "Something went wrong. Please try again later or contact support."
RECLAIM_KILL_AFTER_SEC = 5.0
"""A spot reclaim SIGKILLs the container this long after its SIGTERM (RunPod: about 5 s)."""


class RunpodError(Exception):
    """A failure RunPod reports to the client; `status` is the REST status code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CreatedButFailed(RunpodError):
    """The create_5xx quirk: the pod exists and bills, but the client is told it failed."""

    def __init__(self, pod: PodRecord) -> None:
        super().__init__(SOMETHING_WRONG, 500)
        self.pod = pod


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A pod create, whichever interface it came through."""

    image_name: str
    gpu_type_ids: tuple[str, ...]
    name: str = ""
    gpu_count: int = 1
    cloud_type: str = "SECURE"
    data_center_ids: tuple[str, ...] = ()
    container_disk_gb: int = 20
    volume_gb: int = 0
    volume_mount_path: str = "/workspace"
    ports: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    interruptible: bool = False
    network_volume_id: str | None = None
    docker_args: str = ""
    support_public_ip: bool = True
    template_id: str | None = None
    stop_after: str | None = None
    terminate_after: str | None = None


def go_time(ts: float | None) -> str | None:
    """Go's time.String() form that RunPod's APIs emit: `2026-06-23 23:30:13.071 +0000 UTC`."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    millis = f"{moment.microsecond // 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{millis}" if millis else "") + " +0000 UTC"


def js_date(ts: float) -> str:
    """A JavaScript Date string, as RunPod writes inside lastStatusChange."""
    return datetime.fromtimestamp(ts, UTC).strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


def iso_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Engine:
    """The simulated cloud. All methods take the store lock; `tick()` moves time along."""

    def __init__(self, home: Path, store: Store | None = None) -> None:
        self.store = store or Store(home)
        self.hosts = Hosts(home)
        self._stopping = threading.Event()
        self.api_url = ""
        """The server's base URL once it listens: the pods' runpodctl talks to it."""
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        """The RunPod API requests served since start (not the control plane), newest last:
        `{"route", "method", "fields"}` (GraphQL root fields). In memory only: for tests and
        benchmarks that count round trips; `/_sim/requests` reads and clears it."""

    @property
    def state(self) -> State:
        return self.store.state

    # ----- reads ---------------------------------------------------------------------------
    def get(self, pod_id: str) -> PodRecord | None:
        with self.store.lock:
            pod = self.state.pods.get(pod_id.lower())
            if pod is not None:
                pod.accrue(self.store.now())
            return pod

    def listed(self) -> list[PodRecord]:
        """Pods as lists show them: newest last, minus those still inside the list lag."""
        now = self.store.now()
        with self.store.lock:
            pods = [p for p in self.state.pods.values() if p.visible_from <= now]
            for pod in pods:
                pod.accrue(now)
            return sorted(pods, key=lambda p: p.created_at)

    def pod_for_key(self, key: str | None) -> PodRecord | None:
        """The pod whose pod-scoped key `key` is, if it is one."""
        if not key:
            return None
        with self.store.lock:
            return next((p for p in self.state.pods.values() if p.api_key == key), None)

    def free_gpus(self, data_center_id: str, gpu_type_id: str) -> int:
        with self.store.lock:
            if any(f["name"] == "stockout" and f["gpu"] == gpu_type_id
                   and f["datacenter"] == data_center_id for f in self.state.faults):
                return 0
            return int(self.state.stock.get(data_center_id, {}).get(gpu_type_id, 0))

    # ----- network volumes -----------------------------------------------------------------
    def create_volume(self, name: str, size: int, data_center_id: str) -> NetworkVolume:
        """A new, empty network volume in one datacenter (REST `POST /networkvolumes`)."""
        if not name:
            raise RunpodError("name is required", 400)
        if data_center_id not in catalog.DATA_CENTER_BY_ID:
            raise RunpodError(f"invalid dataCenterId: {data_center_id}", 400)
        if not 1 <= size <= 4000:
            raise RunpodError("size must be between 1 and 4000 GB", 400)
        with self.store.lock:
            volume = NetworkVolume(random_id(10), name, size, data_center_id)
            self.state.volumes.append(volume)
            self.store.save()
            return volume

    # ----- lifecycle -----------------------------------------------------------------------
    def create(self, request: CreateRequest) -> PodRecord:
        with self.store.lock:
            now = self.store.now()
            volume = None
            if request.network_volume_id:
                volume = next((v for v in self.state.volumes
                               if v.id == request.network_volume_id), None)
                if volume is None:
                    raise RunpodError(SOMETHING_WRONG, 400)
            candidates = ([volume.data_center_id] if volume is not None
                          else list(request.data_center_ids) or [dc.id for dc in catalog.DATA_CENTERS])
            placement = next(
                ((gpu, dc) for gpu in request.gpu_type_ids for dc in candidates
                 if gpu in catalog.GPU_BY_ID and self.free_gpus(dc, gpu) >= request.gpu_count),
                None,
            )
            if placement is None:
                raise RunpodError(NO_INSTANCES, 500)
            gpu_id, dc_id = placement
            gpu = catalog.GPU_BY_ID[gpu_id]
            self.state.stock[dc_id][gpu_id] -= request.gpu_count
            pod_id = random_id(14)
            pod = PodRecord(
                id=pod_id,
                name=request.name or request.image_name.split(":")[0],
                image_name=request.image_name,
                gpu_type_id=gpu_id,
                gpu_count=request.gpu_count,
                cloud_type="COMMUNITY" if request.cloud_type == "COMMUNITY" else "SECURE",
                data_center_id=dc_id,
                interruptible=request.interruptible,
                price_per_gpu=gpu.price(secure=request.cloud_type != "COMMUNITY",
                                        spot=request.interruptible),
                container_disk_gb=request.container_disk_gb,
                volume_gb=request.volume_gb,
                volume_mount_path=request.volume_mount_path or "/workspace",
                ports=list(request.ports),
                env=dict(request.env),
                machine_id=random_id(12),
                pod_host_id=f"{pod_id}-{secrets.token_hex(4)}",
                memory_gb=max(gpu.memory_gb, 31) * request.gpu_count,
                vcpu_count=8 * request.gpu_count,
                created_at=now,
                docker_args=request.docker_args,
                network_volume_id=request.network_volume_id,
                support_public_ip=request.support_public_ip,
                template_id=request.template_id,
                stop_after=request.stop_after,
                terminate_after=request.terminate_after,
                api_key=pod_scoped_key(),
                last_started_at=now,
                last_status_change=f"Rented by User: {js_date(now)}",
                visible_from=now + self.state.knobs.scaled(self.state.knobs.list_lag_sec),
            )
            pod.billing.accrued_until = now
            self._schedule_container(pod, now, pull=True)
            self.state.pods[pod_id] = pod
            broken = faults.take(self.state.faults, "create_5xx")
            self.store.save()
            if broken is not None:
                raise CreatedButFailed(pod)
            return pod

    def stop(self, pod_id: str, reason: str = "Exited by user") -> PodRecord:
        with self.store.lock:
            pod = self._require(pod_id)
            if pod.desired_status == RUNNING:
                now = self.store.now()
                pod.accrue(now)
                self._take_down(pod, release_gpus=True)
                pod.desired_status = EXITED
                pod.last_status_change = f"{reason}: {js_date(now)}"
                self.store.save()
            return pod

    def start(self, pod_id: str, gpu_count: int | None = None) -> PodRecord:
        with self.store.lock:
            pod = self._require(pod_id)
            if pod.desired_status == RUNNING:
                return pod
            now = self.store.now()
            wanted = pod.gpu_count if gpu_count is None else gpu_count
            if faults.take(self.state.faults, "zero_gpu_resume", pod_id=pod.id) is not None:
                wanted = 0
            host_full = faults.take(self.state.faults, "host_full", pod_id=pod.id) is not None
            if host_full or self.free_gpus(pod.data_center_id, pod.gpu_type_id) < wanted:
                raise RunpodError(HOST_FULL, 500)
            pod.accrue(now)
            self._finish_reclaim(pod)
            self.state.stock[pod.data_center_id][pod.gpu_type_id] -= wanted
            pod.gpu_count = wanted
            pod.desired_status = RUNNING
            pod.last_started_at = now
            pod.last_status_change = f"Rented by User: {js_date(now)}"
            self._schedule_container(pod, now, pull=False)
            self.store.save()
            return pod

    def terminate(self, pod_id: str) -> None:
        with self.store.lock:
            pod = self.state.pods.get(pod_id.lower())
            if pod is None:
                raise RunpodError(NOT_FOUND_TO_TERMINATE, 404)
            pod.accrue(self.store.now())
            if pod.desired_status == RUNNING:
                self.state.stock[pod.data_center_id][pod.gpu_type_id] += pod.gpu_count
            self.hosts.delete(pod.id, pod.ns_pid)
            self.state.closed_billing[pod.id] = pod.billing
            del self.state.pods[pod.id]
            self.store.save()

    # ----- faults that act now --------------------------------------------------------------
    def inject(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Arm a fault, or carry out an immediate one; returns what was done."""
        name = fault["name"]
        with self.store.lock:
            if name == "preempt":
                pod = self._require(fault["pod_id"])
                if pod.desired_status != RUNNING:
                    raise RunpodError(f"pod {pod.id} is not running", 400)
                now = self.store.now()
                pod.accrue(now)
                # The GPU went to whoever outbid us: it is not returned to free stock. The
                # billing stops now; the processes get SIGTERM now and SIGKILL a little later.
                kill_after = self.state.knobs.scaled(
                    float(fault.get("kill_after_sec", RECLAIM_KILL_AFTER_SEC)))
                if pod.ns_pid is not None and kill_after > 0:
                    self.hosts.terminate_processes(pod.id, pod.ns_pid)
                    self._take_down(pod, release_gpus=False, kill=False)
                    pod.reclaim_kill_at = now + kill_after
                else:
                    self._take_down(pod, release_gpus=False)
                pod.desired_status = EXITED
                pod.last_status_change = ("Exited by RunPod: spot instance interrupted: "
                                          f"{js_date(now)}")
            elif name == "remove_stopped":
                gone = [p.id for p in self.state.pods.values() if p.desired_status == EXITED
                        and fault.get("pod_id") in (None, "", p.id)]
                for pod_id in gone:
                    self.terminate(pod_id)
                return {"removed": gone}
            elif name == "disk_full":
                pod = self._require(fault["pod_id"])
                if pod.ns_pid is None:
                    raise RunpodError(f"pod {pod.id} has no running container", 400)
                self.hosts.fill_disk(pod.ns_pid, pod.volume_mount_path,
                                     int(fault.get("size_kb", 64)))
            elif name == "restart_loop":
                pod = self._require(fault["pod_id"])
                pod.restart_every_sec = float(fault["every_sec"])
            else:
                self.state.faults.append(fault)
            self.store.save()
            return fault

    def clear_faults(self) -> None:
        with self.store.lock:
            self.state.faults.clear()
            for pod in self.state.pods.values():
                pod.restart_every_sec = None
            self.store.save()

    # ----- time passing ---------------------------------------------------------------------
    def tick(self) -> None:
        """Advance every pod to where the clock says it should be."""
        with self.store.lock:
            now = self.store.now()
            changed = False
            for pod in list(self.state.pods.values()):
                if pod.reclaim_kill_at is not None and pod.reclaim_kill_at <= now:
                    self._finish_reclaim(pod)
                    changed = True
                if pod.desired_status != RUNNING:
                    continue
                changed |= self._advance(pod, now)
            if changed:
                self.store.save()

    def _advance(self, pod: PodRecord, now: float) -> bool:
        if self.state.knobs.enforce_stop_after and self._deadline_passed(pod, now):
            return True
        if pod.container_up_at is None:
            if pod.container_due_at is None or pod.container_due_at > now:
                return False
            pod.container_up_at = now
            pod.ssh_port = free_loopback_port()
            return True
        if pod.ns_pid is None:
            if pod.sshd_due_at is not None and pod.sshd_due_at <= now:
                pod.ns_pid = self.hosts.start(self._container_spec(pod))
                return True
            return False
        if not self.hosts.is_pod_process(pod.id, pod.ns_pid):
            # The container died on its own: RunPod restarts it (uptime starts again).
            self.hosts.kill(pod.id, pod.ns_pid)
            pod.ns_pid = self.hosts.start(self._container_spec(pod), wipe=False)
            pod.container_up_at = now
            return True
        if pod.restart_every_sec and now - pod.container_up_at >= pod.restart_every_sec:
            self.hosts.kill(pod.id, pod.ns_pid)
            pod.ns_pid = self.hosts.start(self._container_spec(pod), wipe=False)
            pod.container_up_at = now
            return True
        drop = faults.take(self.state.faults, "ssh_drop", pod_id=pod.id) \
            if self.hosts.session_pids(pod.ns_pid) else None
        if drop is not None:
            self.hosts.drop_sessions(pod.ns_pid)
            return True
        return False

    def _deadline_passed(self, pod: PodRecord, now: float) -> bool:
        for deadline, action in ((pod.terminate_after, "terminate"), (pod.stop_after, "stop")):
            if deadline and _parse_deadline(deadline) <= now:
                if action == "terminate":
                    self.terminate(pod.id)
                else:
                    self.stop(pod.id, reason="Exited by stopAfter")
                return True
        return False

    # ----- process lifetime -----------------------------------------------------------------
    def recover(self) -> None:
        """After a (re)start of the simulator: kill stray pod processes, respawn live ones."""
        with self.store.lock:
            live = {p.id: p.ns_pid for p in self.state.pods.values()
                    if p.ns_pid is not None and self.hosts.is_pod_process(p.id, p.ns_pid)}
            self.hosts.reap_strays({k: v for k, v in live.items() if v is not None})
            for pod in self.state.pods.values():
                if pod.id in live:
                    self.hosts.kill(pod.id, pod.ns_pid)
                pod.ns_pid = None
                self._finish_reclaim(pod)
                if pod.desired_status == RUNNING and pod.container_up_at is not None:
                    pod.sshd_due_at = self.store.now()
            self.store.save()

    def shutdown(self) -> None:
        """Kill every pod process (statuses stay: a restarted simulator brings them back)."""
        with self.store.lock:
            self.store.accrue_all()
            for pod in self.state.pods.values():
                self.hosts.kill(pod.id, pod.ns_pid)
                pod.ns_pid = None
            self.store.save()

    def run_ticker(self, interval: float = 0.05) -> None:
        while not self._stopping.wait(interval):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the ticker must outlive one bad pod
                print(f"runpod-sim: tick failed: {exc!r}", flush=True)

    def stop_ticker(self) -> None:
        self._stopping.set()

    # ----- helpers --------------------------------------------------------------------------
    def _require(self, pod_id: str) -> PodRecord:
        pod = self.state.pods.get(pod_id.lower())
        if pod is None:
            raise RunpodError("pod not found", 404)
        return pod

    def _schedule_container(self, pod: PodRecord, now: float, *, pull: bool) -> None:
        knobs = self.state.knobs
        slow = sum(f["seconds"] for f in self.state.faults if f["name"] == "slow_pull")
        pull_sec = knobs.scaled(knobs.image_pull_sec + slow) if pull else 0.0
        pod.container_due_at = now + pull_sec + knobs.scaled(knobs.boot_sec)
        pod.sshd_due_at = pod.container_due_at + knobs.scaled(knobs.sshd_delay_sec)
        pod.container_up_at = None

    def _take_down(self, pod: PodRecord, *, release_gpus: bool, kill: bool = True) -> None:
        """The container goes away (`kill=False`: a reclaim, whose kill comes later)."""
        if kill:
            self.hosts.stop(pod.id, pod.ns_pid)
            pod.ns_pid = None
        if release_gpus:
            self.state.stock[pod.data_center_id][pod.gpu_type_id] += pod.gpu_count
        pod.ssh_port = None
        pod.container_up_at = None
        pod.container_due_at = None
        pod.sshd_due_at = None

    def _finish_reclaim(self, pod: PodRecord) -> None:
        """The SIGKILL that ends a spot reclaim: every process of the pod, and its container disk."""
        if pod.reclaim_kill_at is None:
            return
        self.hosts.stop(pod.id, pod.ns_pid)
        pod.ns_pid = None
        pod.reclaim_kill_at = None

    def _container_spec(self, pod: PodRecord) -> ContainerSpec:
        keys = pod.env.get("PUBLIC_KEY") or self.state.account.pub_key
        assert pod.ssh_port is not None
        if not pod.api_key:  # a state document from before pod-scoped keys
            pod.api_key = pod_scoped_key()
        return ContainerSpec(
            pod_id=pod.id, gpu_type_id=pod.gpu_type_id, gpu_count=pod.gpu_count,
            volume_mount_path=pod.volume_mount_path,
            volume_dir=self.hosts.volume_dir(pod.id, volume_gb=pod.volume_gb,
                                             network_volume_id=pod.network_volume_id),
            authorized_keys=keys, ssh_port=pod.ssh_port,
            environment=container_environment(pod), api_url=self.api_url,
        )


def container_environment(pod: PodRecord) -> dict[str, str]:
    """PID 1's environment in the pod: the pod's own env, then the variables RunPod sets."""
    environment = dict(pod.env)
    environment.update({
        "RUNPOD_POD_ID": pod.id,
        "RUNPOD_API_KEY": pod.api_key,
        "RUNPOD_POD_HOSTNAME": pod.pod_host_id,
        "RUNPOD_GPU_COUNT": str(pod.gpu_count),
        "RUNPOD_DC_ID": pod.data_center_id,
        "RUNPOD_PUBLIC_IP": "127.0.0.1",
    })
    if pod.exposes_ssh and pod.ssh_port is not None:
        environment["RUNPOD_TCP_PORT_22"] = str(pod.ssh_port)
    return environment


def _parse_deadline(value: str) -> float:
    """stopAfter/terminateAfter as RFC 3339 (what runpodctl sends) or epoch seconds."""
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value).timestamp()

