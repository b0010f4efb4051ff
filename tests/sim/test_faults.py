"""Each fault and quirk does what docs/simulator.md says it does."""

from __future__ import annotations

import json
import time

import pytest
import requests

from runpod_sim.control import ControlError
from tests.sim.clients import A4000, Clients, wait_for

pytestmark = pytest.mark.sim  # every test here starts the simulator

NO_INSTANCES = ("There are no longer any instances available with the requested specifications. "
                "Please refresh and try again.")
HOST_FULL = "There are not enough free GPUs on the host machine to start this pod."


def test_stockout(clients: Clients) -> None:
    clients.sim.fault("stockout", gpu=A4000, datacenter="EU-RO-1")
    done = clients.ctl("pod", "create", "--image", "i", "--gpu-id", A4000, "--data-center-ids",
                       "EU-RO-1", check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f'{{"error":"failed to create pod: {NO_INSTANCES}"}}'
    centers = clients.ctl_json("datacenter", "list")
    ro = next(c for c in centers if c["id"] == "EU-RO-1")
    assert {"gpuId": A4000, "displayName": "RTX A4000", "stockStatus": "None"} in \
        ro["gpuAvailability"]
    rest = clients.rest("POST", "/v1/pods", json={"imageName": "i", "gpuTypeIds": [A4000],
                                                 "dataCenterIds": ["EU-RO-1"]})
    assert rest.status_code == 500 and rest.json()["error"] == f"create pod: {NO_INSTANCES}"
    clients.sim.clear_faults()
    assert clients.create()


def test_preemption_exits_the_pod_and_kills_its_processes(clients: Clients) -> None:
    pod_id = clients.create()
    clients.ssh(pod_id, "echo x > /workspace/f")
    port = clients.wait_ssh(pod_id)
    clients.sim.fault("preempt", pod_id=pod_id)
    got = clients.ctl_json("pod", "get", pod_id)
    assert got["desiredStatus"] == "EXITED" and got["ssh"]["error"] == "pod not ready"
    assert "interrupted" in got["lastStatusChange"]
    assert clients.ssh_port(port, "true", check=False).returncode != 0


def test_zero_gpu_resume_and_host_full(clients: Clients) -> None:
    pod_id = clients.create()
    clients.ctl("pod", "stop", pod_id)
    clients.sim.fault("host_full", pod_id=pod_id)
    done = clients.ctl("pod", "start", pod_id, check=False)
    assert done.returncode == 1 and f"start pod: {HOST_FULL}" in done.stderr
    clients.sim.fault("zero_gpu_resume")
    resumed = clients.gql(f'mutation {{ podResume(input: {{podId: "{pod_id}", gpuCount: 1}}) '
                          '{ id desiredStatus gpuCount } }')
    assert resumed["data"]["podResume"] == {"id": pod_id, "desiredStatus": "RUNNING",
                                            "gpuCount": 0}
    done = clients.ssh(pod_id, "nvidia-smi", check=False)
    assert done.returncode == 6 and "No devices were found" in done.stdout


def test_host_full_when_the_gpu_was_re_rented(clients: Clients) -> None:
    pod_id = clients.create()
    clients.ctl("pod", "stop", pod_id)
    clients.sim.set_stock("EU-RO-1", A4000, 0)
    result = clients.gql(f'mutation {{ podResume(input: {{podId: "{pod_id}"}}) {{ id }} }}')
    assert result["errors"][0]["message"] == HOST_FULL and result["data"] == {"podResume": None}


def test_stopped_pod_removed_behind_our_back(clients: Clients) -> None:
    pod_id = clients.create()
    clients.ctl("pod", "stop", pod_id)
    assert clients.sim.fault("remove_stopped") == {"removed": [pod_id]}
    assert clients.ctl("pod", "get", pod_id, check=False).returncode == 1


def test_http_errors_are_count_limited_and_routed(clients: Clients) -> None:
    clients.sim.fault("http_error", status=429, count=2, route="/v1/pods")
    assert clients.rest("GET", "/v1/pods").status_code == 429
    assert clients.rest("GET", "/v2/pods").status_code == 200
    done = clients.ctl("pod", "list", check=False)
    assert done.returncode == 1 and "(status 429)" in done.stderr
    assert clients.rest("GET", "/v1/pods").status_code == 200
    clients.sim.fault("http_error", status=503, route="podFindAndDeployOnDemand")
    done = clients.ctl("pod", "create", "--image", "i", "--gpu-id", A4000, check=False)
    assert "graphql error: status 503" in done.stderr


def test_http_delay(clients: Clients) -> None:
    clients.sim.fault("http_delay", seconds=1.5, route="/v1/pods")
    with pytest.raises(requests.exceptions.ReadTimeout):
        clients.http.get(f"{clients.sim.url}/v1/pods", timeout=0.5)
    started = time.monotonic()
    clients.rest("GET", "/v1/pods")
    assert time.monotonic() - started < 1.0


def test_create_that_answers_5xx_still_creates_and_bills(clients: Clients) -> None:
    clients.sim.fault("create_5xx")
    done = clients.ctl("pod", "create", "--image", "i", "--gpu-id", A4000, "--name", "ghost",
                       check=False)
    assert done.returncode == 1 and "status 500" in done.stderr
    pods = clients.sim.pods()
    assert [p["name"] for p in pods] == ["ghost"] and pods[0]["desiredStatus"] == "RUNNING"
    assert clients.ctl_json("pod", "list", "--name", "ghost")[0]["name"] == "ghost"


def test_list_lag_after_create(clients: Clients) -> None:
    clients.sim.knobs(list_lag_sec=1.0)
    pod_id = clients.create()
    assert clients.ctl_json("pod", "list") == []
    assert clients.rest("GET", f"/v1/pods/{pod_id}").status_code == 200
    wait_for(lambda: clients.ctl_json("pod", "list"), timeout=5)


def test_slow_image_pull(clients: Clients) -> None:
    clients.sim.fault("slow_pull", seconds=1.0)
    pod_id = clients.create()
    time.sleep(0.4)
    assert clients.ctl_json("pod", "get", pod_id)["ssh"]["error"] == "pod not ready"
    clients.wait_ssh(pod_id)


def test_ssh_connection_drop(clients: Clients) -> None:
    pod_id = clients.create()
    port = clients.wait_ssh(pod_id)
    clients.sim.fault("ssh_drop", pod_id=pod_id, times=1)
    done = clients.ssh_port(port, "sleep 5; echo survived", check=False)
    assert done.returncode == 255 and "survived" not in done.stdout
    assert clients.ssh_port(port, "echo back").stdout == "back\n"


def test_malformed_runpodctl_output(clients: Clients) -> None:
    clients.sim.fault("runpodctl_malformed", count=1)
    done = clients.ctl("gpu", "list")
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)
    assert json.loads(clients.ctl("gpu", "list").stdout)


def test_container_restart_loop_resets_uptime(clients: Clients) -> None:
    pod_id = clients.create()
    clients.wait_ssh(pod_id)
    clients.sim.fault("restart_loop", pod_id=pod_id, every_sec=0.5)
    first = clients.sim.pod(pod_id)
    time.sleep(1.2)
    assert first is not None
    wait_for(lambda: (p := clients.sim.pod(pod_id)) and p["sshdPid"] != first["sshdPid"])
    clients.sim.clear_faults()
    assert clients.ssh(pod_id, "echo up").stdout == "up\n"


def test_disk_full(clients: Clients) -> None:
    pod_id = clients.create()
    clients.wait_ssh(pod_id)
    clients.sim.fault("disk_full", pod_id=pod_id, size_kb=64)
    done = clients.ssh(pod_id, "head -c 200000 /dev/zero > /workspace/big", check=False)
    assert done.returncode != 0 and "No space left on device" in done.stderr


def test_stop_after_is_ignored_unless_enforced(clients: Clients) -> None:
    past = "2020-01-01T00:00:00Z"
    ignored = clients.create("--stop-after", past, name="ignored")
    time.sleep(0.3)
    assert clients.sim.pod(ignored)["desiredStatus"] == "RUNNING"  # type: ignore[index]
    clients.sim.knobs(enforce_stop_after=True)
    wait_for(lambda: clients.sim.pod(ignored)["desiredStatus"] == "EXITED")  # type: ignore[index]


def test_unknown_fault_is_refused(clients: Clients) -> None:
    with pytest.raises(ControlError, match="unknown fault"):
        clients.sim.fault("meteor")
