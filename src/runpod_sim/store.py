"""The simulator's state: pods, stock, volumes, the account and the billing meter, on disk.

Everything lives in one JSON document under the simulator home, replaced atomically on every
change, so a restarted simulator finds its pods (and bills them) where it left them. The
`Store` lock serialises every read-modify-write; callers hold it through `store.lock`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runpod_sim import catalog
from runpod_sim.clock import Clock

RUNNING = "RUNNING"
EXITED = "EXITED"
TERMINATED = "TERMINATED"


@dataclass(slots=True)
class Billing:
    """Money spent by one pod so far, by kind; `accrued_until` is where the meter last read."""

    compute_usd: float = 0.0
    container_disk_usd: float = 0.0
    volume_usd: float = 0.0
    running_seconds: float = 0.0
    stopped_seconds: float = 0.0
    accrued_until: float = 0.0

    @property
    def total_usd(self) -> float:
        return self.compute_usd + self.container_disk_usd + self.volume_usd

    def to_json(self) -> dict[str, float]:
        body = dataclasses.asdict(self)
        body["total_usd"] = self.total_usd
        return body


@dataclass(slots=True)
class PodRecord:
    """One pod as the cloud knows it. Times are clock seconds; None means "not (yet)"."""

    id: str
    name: str
    image_name: str
    gpu_type_id: str
    gpu_count: int
    cloud_type: str
    data_center_id: str
    interruptible: bool
    price_per_gpu: float
    container_disk_gb: int
    volume_gb: int
    volume_mount_path: str
    ports: list[str]
    env: dict[str, str]
    machine_id: str
    pod_host_id: str
    memory_gb: int
    vcpu_count: int
    created_at: float
    desired_status: str = RUNNING
    docker_args: str = ""
    network_volume_id: str | None = None
    template_id: str | None = None
    support_public_ip: bool = True
    stop_after: str | None = None
    terminate_after: str | None = None
    last_started_at: float | None = None
    last_status_change: str = ""
    container_up_at: float | None = None
    """When the container came up (runtime non-null); reset by a container restart."""
    container_due_at: float | None = None
    """When image pull and boot will have finished, while the pod is starting."""
    sshd_due_at: float | None = None
    """When sshd is spawned; later than `container_up_at` with the sshd_delay quirk."""
    ssh_port: int | None = None
    ns_pid: int | None = None
    """Host pid of the pod's PID-namespace init (sshd); killing it ends every pod process."""
    visible_from: float = 0.0
    """List lag: lists omit the pod until this time (get by id still finds it)."""
    restart_every_sec: float | None = None
    api_key: str = ""
    """The pod-scoped key in the container's `RUNPOD_API_KEY`: it may act on this pod only."""
    reclaim_kill_at: float | None = None
    """A spot reclaim in progress: the processes got SIGTERM; SIGKILL at this time."""
    billing: Billing = field(default_factory=Billing)

    @property
    def cost_per_hr(self) -> float:
        """What RunPod reports as costPerHr: the GPUs while running, the stopped volume after."""
        if self.desired_status == RUNNING:
            return round(self.price_per_gpu * self.gpu_count, 4)
        return round(self.volume_gb * catalog.VOLUME_USD_PER_GB_MONTH_STOPPED
                     / catalog.HOURS_PER_MONTH, 4)

    @property
    def exposes_ssh(self) -> bool:
        return "22/tcp" in self.ports

    def accrue(self, now: float) -> None:
        """Move the billing meter up to `now` at the rates of the current status."""
        elapsed = max(0.0, now - self.billing.accrued_until)
        hours = elapsed / 3600.0
        meter = self.billing
        if self.desired_status == RUNNING:
            meter.compute_usd += self.price_per_gpu * self.gpu_count * hours
            meter.container_disk_usd += (self.container_disk_gb
                                         * catalog.CONTAINER_DISK_USD_PER_GB_MONTH
                                         / catalog.HOURS_PER_MONTH * hours)
            meter.volume_usd += (self.volume_gb * catalog.VOLUME_USD_PER_GB_MONTH_RUNNING
                                 / catalog.HOURS_PER_MONTH * hours)
            meter.running_seconds += elapsed
        elif self.desired_status == EXITED:
            meter.volume_usd += (self.volume_gb * catalog.VOLUME_USD_PER_GB_MONTH_STOPPED
                                 / catalog.HOURS_PER_MONTH * hours)
            meter.stopped_seconds += elapsed
        meter.accrued_until = max(meter.accrued_until, now)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PodRecord:
        return cls(**{**body, "billing": Billing(**body["billing"])})


@dataclass(slots=True)
class Account:
    id: str
    email: str
    pub_key: str
    client_balance: float
    spend_limit: float = 80.0


@dataclass(frozen=True, slots=True)
class NetworkVolume:
    id: str
    name: str
    size: int
    data_center_id: str


@dataclass(slots=True)
class Knobs:
    """Timings and opt-in behaviours, changeable at run time (all delays scale by time_scale)."""

    time_scale: float = 1.0
    image_pull_sec: float = 0.3
    boot_sec: float = 0.3
    sshd_delay_sec: float = 0.0
    """RUNNING with port 22 published this long before sshd answers (RunPod does this)."""
    list_lag_sec: float = 0.0
    """A new pod is missing from lists for this long after create."""
    enforce_stop_after: bool = False
    """RunPod accepts stopAfter/terminateAfter and ignores them; opt in to enforce them."""

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name: f.type for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(unknown)}; known: {', '.join(names)}")
        for name, value in changes.items():
            current = getattr(self, name)
            setattr(self, name, bool(value) if isinstance(current, bool) else float(value))


@dataclass(slots=True)
class State:
    api_key: str
    account: Account
    stock: dict[str, dict[str, int]]
    """Free GPUs per datacenter per GPU type."""
    pods: dict[str, PodRecord] = field(default_factory=dict)
    volumes: list[NetworkVolume] = field(default_factory=list)
    knobs: Knobs = field(default_factory=Knobs)
    faults: list[dict[str, Any]] = field(default_factory=list)
    closed_billing: dict[str, Billing] = field(default_factory=dict)
    """The final meter of every terminated pod, so totals never shrink."""
    clock: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> State:
        return cls(
            api_key=body["api_key"],
            account=Account(**body["account"]),
            stock=body["stock"],
            pods={pid: PodRecord.from_json(p) for pid, p in body["pods"].items()},
            volumes=[NetworkVolume(**v) for v in body["volumes"]],
            knobs=Knobs(**body["knobs"]),
            faults=body["faults"],
            closed_billing={pid: Billing(**b) for pid, b in body["closed_billing"].items()},
            clock=body.get("clock", {}),
        )

    @classmethod
    def fresh(cls) -> State:
        return cls(
            api_key="rpa_SIM" + secrets.token_hex(16).upper(),
            account=Account(id="user_" + random_id(24), email="sim@runpod.local", pub_key="",
                            client_balance=100.0),
            stock={dc.id: dict(dc.initial_stock) for dc in catalog.DATA_CENTERS},
            volumes=[
                NetworkVolume(random_id(10), "sim-volume-ro", 50, "EU-RO-1"),
                NetworkVolume(random_id(10), "sim-volume-il", 100, "US-IL-1"),
            ],
        )


_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyz0123456789"


def pod_scoped_key() -> str:
    """A fresh pod-scoped API key (same shape as an account key, different prefix)."""
    return "rpa_POD" + secrets.token_hex(16).upper()


def random_id(length: int) -> str:
    """Lowercase alphanumerics, as RunPod's pod, machine and volume ids are."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


class Store:
    """The state document and its file: `with store.lock:` then mutate `store.state`, `save()`."""

    def __init__(self, home: Path, clock: Clock | None = None) -> None:
        self.home = home
        self.path = home / "state.json"
        self.lock = threading.RLock()
        if self.path.exists():
            self.state = State.from_json(json.loads(self.path.read_text()))
        else:
            home.mkdir(parents=True, exist_ok=True)
            self.state = State.fresh()
        self.clock = clock or Clock(
            offset=float(self.state.clock.get("offset") or 0.0),
            frozen_at=self.state.clock.get("frozen_at"),
        )
        self.save()

    def now(self) -> float:
        return self.clock.now()

    def save(self) -> None:
        """Replace the file atomically (write, fsync, rename): a crash leaves old or new, never half."""
        with self.lock:
            self.state.clock = self.clock.to_json()
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            with tmp.open("w") as fh:
                json.dump(self.state.to_json(), fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def accrue_all(self) -> None:
        now = self.now()
        with self.lock:
            for pod in self.state.pods.values():
                pod.accrue(now)

    def billing_report(self) -> dict[str, Any]:
        """Per-pod meters (live and terminated) and the totals, in dollars."""
        with self.lock:
            self.accrue_all()
            pods = {pid: {**p.billing.to_json(), "desiredStatus": p.desired_status,
                          "costPerHr": p.cost_per_hr}
                    for pid, p in self.state.pods.items()}
            closed = {pid: {**b.to_json(), "desiredStatus": TERMINATED}
                      for pid, b in self.state.closed_billing.items()}
            every = {**closed, **pods}
            return {
                "pods": every,
                "total_usd": sum(b["total_usd"] for b in every.values()),
                "current_spend_per_hr": sum(p.cost_per_hr for p in self.state.pods.values()),
            }
