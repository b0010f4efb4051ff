"""A Python handle on a simulator, for tests and scripts: start one, point clients at it,
break it, read its bills, stop it.

    sim = Simulator.start(tmp_path / "sim", image_pull_sec=0.05)
    subprocess.run([sim.runpodctl, "pod", "list"], env=sim.env)
    sim.fault("stockout", gpu="NVIDIA A40", datacenter="EU-RO-1")
    sim.stop()

Each handle runs its own server process on its own free port with its own home, so tests can
run in parallel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runpod_sim import cli
from runpod_sim.control import SimInfo, control, env_for

FAST_KNOBS: dict[str, Any] = {"image_pull_sec": 0.05, "boot_sec": 0.05}
"""Timings that keep a test's pod boot well under a second."""


@dataclass(frozen=True, slots=True)
class Simulator:
    """A running simulator (a separate process); all methods talk to it over HTTP."""

    info: SimInfo

    @classmethod
    def start(cls, home: Path, **knobs: Any) -> Simulator:
        """Start a simulator in `home` with the given knobs (see `Knobs`), or attach to the
        one already running there."""
        info = cli.up(Path(home).resolve(), knobs)
        sim = cls(info)
        if knobs:
            sim.knobs(**knobs)
        return sim

    @property
    def url(self) -> str:
        return self.info.url

    @property
    def api_key(self) -> str:
        return self.info.api_key

    @property
    def home(self) -> Path:
        return self.info.home

    @property
    def runpodctl(self) -> str:
        return str(self.info.runpodctl)

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus the variables that point RunPod clients here (PATH gains bin/)."""
        return {**os.environ, **env_for(self.info)}

    def fault(self, name: str, **params: Any) -> dict[str, Any]:
        """Arm a fault or carry out an immediate one (see `runpod_sim.faults`)."""
        return dict(control(self.info, "POST", "/_sim/faults", {"name": name, **params}))

    def clear_faults(self) -> None:
        control(self.info, "DELETE", "/_sim/faults")

    def faults(self) -> list[dict[str, Any]]:
        return list(control(self.info, "GET", "/_sim/faults")["faults"])

    def knobs(self, **changes: Any) -> dict[str, Any]:
        """Change knobs (none: just read them); returns all knobs."""
        return dict(control(self.info, "POST" if changes else "GET", "/_sim/knobs",
                            changes or None))

    def status(self) -> dict[str, Any]:
        return dict(control(self.info, "GET", "/_sim/status"))

    def pods(self) -> list[dict[str, Any]]:
        """Every pod the cloud holds (ignoring list lag), with status, ssh port and billing."""
        return list(self.status()["pods"])

    def pod(self, pod_id: str) -> dict[str, Any] | None:
        return next((p for p in self.pods() if p["id"] == pod_id), None)

    def requests(self, *, clear: bool = False) -> list[dict[str, Any]]:
        """The RunPod API requests served so far (`route`, `method`, GraphQL root `fields`),
        oldest first; `clear=True` empties the log after reading it."""
        return list(control(self.info, "DELETE" if clear else "GET", "/_sim/requests")["requests"])

    def billing(self) -> dict[str, Any]:
        """`{"pods": {id: meter}, "total_usd": ..., "current_spend_per_hr": ...}`."""
        return dict(control(self.info, "GET", "/_sim/billing"))

    def clock(self, *, freeze: bool = False, advance: float = 0.0,
              unfreeze: bool = False) -> dict[str, Any]:
        """Freeze the simulator's clock, move it forward, or let it run again."""
        return dict(control(self.info, "POST", "/_sim/clock",
                            {"freeze": freeze, "advance": advance, "unfreeze": unfreeze}))

    def set_stock(self, datacenter: str, gpu: str, count: int) -> None:
        control(self.info, "POST", "/_sim/stock",
                {"datacenter": datacenter, "gpu": gpu, "count": count})

    def create_network_volume(self, name: str, datacenter_id: str,
                              size_gb: int = 10) -> dict[str, Any]:
        """Create a network volume through the REST API (`POST /v1/networkvolumes`), as a user
        would in the console; returns `{id, name, size, dataCenterId}`."""
        return dict(control(self.info, "POST", "/v1/networkvolumes",
                            {"name": name, "size": size_gb, "dataCenterId": datacenter_id}))

    def add_pubkey(self, pub: str) -> None:
        """Append a public key to the account's pubKey (what pods put in authorized_keys)."""
        control(self.info, "POST", "/_sim/account", {"addPubKey": pub})

    def stop(self) -> None:
        """Stop the server and kill every pod process (the home stays for inspection)."""
        cli.down(self.home)
