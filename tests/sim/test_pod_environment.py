"""Inside a pod: the container's environment, the pod's own runpodctl and its pod-scoped key,
and a spot reclaim's SIGTERM-then-SIGKILL, as RunPod documents them (issue 12)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.sim.clients import Clients, wait_for

pytestmark = pytest.mark.sim

READ_CONTAINER_ENV = "tr '\\0' '\\n' < /proc/1/environ"
"""What a script run over SSH does to find the pod's id and key (they are PID 1's, not its own)."""

EXPORT_POD_CREDENTIALS = (
    f"export $({READ_CONTAINER_ENV} | grep -E '^RUNPOD_(POD_ID|API_KEY)=')"
)


def container_env(clients: Clients, pod_id: str) -> dict[str, str]:
    lines = clients.ssh(pod_id, READ_CONTAINER_ENV).stdout.splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_the_pod_id_and_a_pod_scoped_key_are_in_the_container_env_not_the_ssh_session(
    clients: Clients,
) -> None:
    pod_id = clients.create("--env", '{"MY_SETTING": "from the create"}', name="envtest")
    env = container_env(clients, pod_id)
    assert env["MY_SETTING"] == "from the create"
    assert env["RUNPOD_POD_ID"] == pod_id
    assert env["RUNPOD_API_KEY"] and env["RUNPOD_API_KEY"] != clients.sim.api_key
    assert env["RUNPOD_PUBLIC_IP"] == "127.0.0.1"
    assert env["RUNPOD_TCP_PORT_22"] == str(clients.wait_ssh(pod_id))
    assert not [name for name in env if name.startswith("RUNPOD_SIM")], "simulator internals leak"
    session = clients.ssh(pod_id, "env").stdout
    assert "RUNPOD_POD_ID" not in session and "RUNPOD_API_KEY" not in session
    assert "MY_SETTING" not in session
    assert clients.ssh(pod_id, "command -v runpodctl").stdout.strip() == \
        "/run/runpod-sim-pod/bin/runpodctl"


def test_a_pod_stops_itself_with_its_own_runpodctl_and_stops_billing_gpu_time(
    clients: Clients,
) -> None:
    pod_id = clients.create()
    clients.ssh(pod_id, "echo kept > /workspace/result")
    # The stop ends the container, and with it this SSH session: its exit status is moot.
    clients.ssh(pod_id, f'{EXPORT_POD_CREDENTIALS} && runpodctl pod stop "$RUNPOD_POD_ID"',
                check=False)
    pod = clients.ctl_json("pod", "get", pod_id)
    assert pod["desiredStatus"] == "EXITED"
    assert pod["lastStatusChange"].startswith("Exited by user: ")

    clients.sim.clock(freeze=True)
    before = clients.sim.billing()["pods"][pod_id]
    clients.sim.clock(advance=3600)
    after = clients.sim.billing()["pods"][pod_id]
    assert after["compute_usd"] == before["compute_usd"]
    assert after["stopped_seconds"] == pytest.approx(before["stopped_seconds"] + 3600)
    clients.sim.clock(unfreeze=True)

    # The resume RunPod may give a stopped pod whose GPU was rented meanwhile: zero GPUs,
    # no compute, but /workspace is there to read.
    clients.sim.fault("zero_gpu_resume", pod_id=pod_id)
    clients.ctl("pod", "start", pod_id)
    assert clients.ssh(pod_id, "cat /workspace/result").stdout == "kept\n"
    assert clients.ssh(pod_id, "nvidia-smi", check=False).returncode == 6
    assert clients.sim.pod(pod_id)["costPerHr"] == 0  # type: ignore[index]


def test_a_pod_scoped_key_cannot_act_on_another_pod_nor_the_account(clients: Clients) -> None:
    mine, other = clients.create(name="mine"), clients.create(name="other")
    refused = clients.ssh(mine, f"{EXPORT_POD_CREDENTIALS} && runpodctl pod stop {other}",
                          check=False)
    assert refused.returncode == 1
    assert "status 403" in refused.stderr and f"scoped to pod {mine}" in refused.stderr
    for command in ("pod list", f"pod delete {other}", f"pod get {other}"):
        done = clients.ssh(mine, f"{EXPORT_POD_CREDENTIALS} && runpodctl {command}", check=False)
        assert done.returncode == 1 and "status 403" in done.stderr, command
    assert clients.sim.pod(other)["desiredStatus"] == "RUNNING"  # type: ignore[index]

    key = container_env(clients, mine)["RUNPOD_API_KEY"]
    pod_key = requests.Session()
    pod_key.headers["Authorization"] = f"Bearer {key}"
    url = clients.sim.url
    stop_other = pod_key.post(f"{url}/graphql", json={
        "query": "mutation($id: String!) { podStop(input: {podId: $id}) { id } }",
        "variables": {"id": other}}, timeout=30).json()
    assert stop_other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert stop_other["data"] == {"podStop": None}
    assert pod_key.post(f"{url}/graphql", json={"query": "{ myself { id } }"},
                        timeout=30).status_code == 403
    assert pod_key.post(f"{url}/v2/pods/{other}/action", json={"action": "stop"},
                        timeout=30).status_code == 403
    assert pod_key.post(f"{url}/v1/pods", json={"imageName": "x"}, timeout=30).status_code == 403
    assert pod_key.get(f"{url}/_sim/status", timeout=30).status_code == 401
    assert clients.sim.pod(other)["desiredStatus"] == "RUNNING"  # type: ignore[index]

    own = pod_key.post(f"{url}/graphql", json={
        "query": f'{{ pod(input: {{podId: "{mine}"}}) {{ id desiredStatus }} }}'}, timeout=30)
    assert own.json()["data"]["pod"] == {"id": mine, "desiredStatus": "RUNNING"}
    stopped = pod_key.post(f"{url}/v1/pods/{mine}/stop", timeout=30)
    assert stopped.status_code == 200 and stopped.json()["desiredStatus"] == "EXITED"


JOB_THAT_TRAPS_TERM = """\
trap 'echo "TERM received" >> /workspace/term-flag' TERM
echo started > /workspace/started
while true; do sleep 0.1; done
"""


def test_a_spot_reclaim_sends_sigterm_then_sigkill(clients: Clients) -> None:
    pod_id = clients.create(name="spot")
    clients.ssh(pod_id, f"cat > /workspace/job.sh <<'EOF'\n{JOB_THAT_TRAPS_TERM}EOF\n"
                        "setsid nohup bash /workspace/job.sh > /dev/null 2>&1 < /dev/null &")
    wait_for(lambda: clients.ssh(pod_id, "cat /workspace/started", check=False).returncode == 0)

    clients.sim.fault("preempt", pod_id=pod_id, kill_after_sec=1)
    pod = clients.ctl_json("pod", "get", pod_id)
    assert pod["desiredStatus"] == "EXITED" and "spot instance interrupted" in pod["lastStatusChange"]
    # The SIGKILL ends the container: the simulator no longer holds a process for it.
    wait_for(lambda: clients.sim.pod(pod_id)["sshdPid"] is None)  # type: ignore[index]

    clients.ctl("pod", "start", pod_id)
    # The TERM handler ran (an instant kill would have left no flag), once, and the job is
    # gone: the container disk was wiped, the volume kept what the handler wrote.
    assert clients.ssh(pod_id, "cat /workspace/term-flag").stdout == "TERM received\n"
    assert clients.ssh(pod_id, "pgrep -f /workspace/job.sh", check=False).returncode == 1


def test_a_reclaim_with_no_grace_kills_at_once(clients: Clients) -> None:
    pod_id = clients.create(name="spot0")
    clients.ssh(pod_id, f"cat > /workspace/job.sh <<'EOF'\n{JOB_THAT_TRAPS_TERM}EOF\n"
                        "setsid nohup bash /workspace/job.sh > /dev/null 2>&1 < /dev/null &")
    wait_for(lambda: clients.ssh(pod_id, "cat /workspace/started", check=False).returncode == 0)
    clients.sim.fault("preempt", pod_id=pod_id, kill_after_sec=0)
    assert clients.sim.pod(pod_id)["sshdPid"] is None  # type: ignore[index]
    clients.ctl("pod", "start", pod_id)
    assert clients.ssh(pod_id, "ls /workspace").stdout.split() == ["job.sh", "started"]


def test_a_reclaim_fault_refuses_a_negative_grace(clients: Clients) -> None:
    pod_id = clients.create(name="spotbad")
    from runpod_sim.control import ControlError

    with pytest.raises(ControlError, match="kill_after_sec"):
        clients.sim.fault("preempt", pod_id=pod_id, kill_after_sec=-1)
    assert json.loads(clients.ctl("pod", "get", pod_id).stdout)["desiredStatus"] == "RUNNING"
