"""Finding a running simulator and talking to its control plane (stdlib only: cheap to import).

A running simulator is described by `<home>/sim.json`; `env_for` turns that into the variables
RunPod's clients read. The runpodctl shim lives in `<home>/bin` and is only on PATH where a
caller puts it there.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def default_home() -> Path:
    return Path(os.environ.get("RUNPOD_SIM_HOME") or Path.home() / ".cache" / "runpod-sim")


@dataclass(frozen=True, slots=True)
class SimInfo:
    """What `<home>/sim.json` says about a running simulator."""

    home: Path
    url: str
    port: int
    pid: int
    api_key: str

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def runpodctl(self) -> Path:
        return self.bin_dir / "runpodctl"

    @classmethod
    def read(cls, home: Path) -> SimInfo | None:
        try:
            body = json.loads((home / "sim.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return cls(home=home, url=body["url"], port=int(body["port"]), pid=int(body["pid"]),
                   api_key=body["api_key"])

    def write(self) -> None:
        path = self.home / "sim.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": self.url, "port": self.port, "pid": self.pid,
                                   "api_key": self.api_key, "home": str(self.home),
                                   "bin": str(self.bin_dir)}, indent=2))
        os.replace(tmp, path)

    def is_alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:
            control(self, "GET", "/_sim/status", timeout=2)
        except OSError:
            return False
        return True


def env_for(info: SimInfo, *, path: str | None = None) -> dict[str, str]:
    """The variables that point RunPod clients (runpodctl, runpod-python, ours) at `info`.
    `path` is the PATH to extend with the simulator's bin dir (None: this process's PATH)."""
    base_path = os.environ.get("PATH", "") if path is None else path
    return {
        "RUNPOD_API_KEY": info.api_key,
        "RUNPOD_API_URL": f"{info.url}/v1",
        "RUNPOD_GRAPHQL_URL": f"{info.url}/graphql",
        "RUNPOD_API_BASE_URL": info.url,
        "RUNPOD_REST_V2_URL": f"{info.url}/v2",
        "RUNPOD_SIM_HOME": str(info.home),
        "PATH": f"{info.bin_dir}{os.pathsep}{base_path}" if base_path else str(info.bin_dir),
    }


def control(info: SimInfo, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = 30) -> Any:
    """Call the `/_sim` control plane; raises ControlError with the server's message."""
    request = urllib.request.Request(
        info.url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {info.api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except (json.JSONDecodeError, AttributeError):
            pass
        raise ControlError(f"{method} {path}: {detail}") from None


class ControlError(RuntimeError):
    """The simulator refused a control request (unknown fault, bad knob, ...)."""


def write_runpodctl_shim(bin_dir: Path) -> Path:
    """A tiny executable that runs our runpodctl with this interpreter (never a user's PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "runpodctl"
    tmp = shim.with_suffix(".tmp")
    tmp.write_text(f"#!/bin/sh\nexec {sys.executable} -m runpod_sim.runpodctl \"$@\"\n")
    tmp.chmod(0o755)
    os.replace(tmp, shim)
    return shim
