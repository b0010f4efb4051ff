"""Clients of the simulator as the outside world has them: the runpodctl command, raw HTTP to
GraphQL and REST, and the system ssh. No simulator internals are used."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from runpod_sim.testing import Simulator

A4000 = "NVIDIA RTX A4000"


class Clients:
    """runpodctl, GraphQL, REST v1/v2 and ssh against one simulator."""

    def __init__(self, sim: Simulator, key: Path | None) -> None:
        self.sim = sim
        self.key = key
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {sim.api_key}"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["runpodctl", *args], env=self.sim.env, check=False, capture_output=True,
                              text=True, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def ctl_json(self, *args: str) -> Any:
        return json.loads(self.ctl(*args).stdout)

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"{self.sim.url}/graphql",
                                  json={"query": query, "variables": variables or {}}, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def rest(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.sim.url}{path}", timeout=30, **kwargs)

    def create(self, *extra: str, name: str = "t", volume_gb: int = 5) -> str:
        pod = self.ctl_json("pod", "create", "--image", "runpod/base:1", "--gpu-id", A4000,
                            "--ports", "22/tcp", "--name", name, "--volume-in-gb",
                            str(volume_gb), *extra)
        return str(pod["id"])

    def wait_ssh(self, pod_id: str, timeout: float = 15) -> int:
        """Wait until the pod's sshd accepts our key; returns its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.sim.pod(pod_id)
            if pod and pod["sshPort"] and self.ssh_port(pod["sshPort"], "true",
                                                        check=False).returncode == 0:
                return int(pod["sshPort"])
            time.sleep(0.05)
        raise AssertionError(f"pod {pod_id} never answered ssh: {self.sim.pod(pod_id)}")

    def ssh_argv(self, port: int) -> list[str]:
        assert self.key is not None
        return ["ssh", "-i", str(self.key), "-p", str(port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def ssh_port(self, port: int, command: str,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.ssh_argv(port), "root@127.0.0.1", command],
                              check=False, capture_output=True, text=True, timeout=30)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def ssh(self, pod_id: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.ssh_port(self.wait_ssh(pod_id), command, check=check)


@pytest.fixture
def clients(runpod_sim: Simulator, sim_ssh_key: Path) -> Clients:
    return Clients(runpod_sim, sim_ssh_key)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
