"""The on-pod self-stop of `runtime.jobscripts` against a simulated pod: when the job ends and no
client finishes the run within the grace period, the pod stops itself with its own runpodctl and
key (read from the container's environment), and the GPU meter stops (issue 12, item 4)."""

from __future__ import annotations

import pytest

from runtime import jobscripts
from tests.sim.clients import Clients, wait_for

pytestmark = pytest.mark.sim

CONTROL = "/root/.runpod-deploy/control/run-1"
LOG = "/workspace/runs/run-1/job.log"
SCRIPT = "/workspace/runs/run-1/job.sh"
EXIT_CODE = "/workspace/runs/run-1/exit_code"


def launch(clients: Clients, pod_id: str, body: str, **options: object) -> None:
    clients.ssh(pod_id, f"mkdir -p /workspace/runs/run-1 && cat > {SCRIPT} <<'EOF'\n{body}EOF")
    clients.ssh(pod_id, jobscripts.launch_command(script_path=SCRIPT, log_path=LOG,
                                                  control_dir=CONTROL, **options))  # type: ignore[arg-type]


def test_an_unwatched_pod_stops_itself_after_the_grace_period(clients: Clients) -> None:
    pod_id = clients.create(name="unwatched")
    launch(clients, pod_id, 'echo "attempt=$RUNPOD_DEPLOY_ATTEMPT"\nexit 4\n', attempt=2,
           self_stop_after_sec=1, self_stop_poll_sec=0.2, durable_exit_code_path=EXIT_CODE)
    wait_for(lambda: clients.sim.pod(pod_id)["desiredStatus"] == "EXITED",  # type: ignore[index]
             timeout=60)
    assert clients.ctl_json("pod", "get", pod_id)["lastStatusChange"].startswith("Exited by user")

    clients.sim.clock(freeze=True)
    before = clients.sim.billing()["pods"][pod_id]["compute_usd"]
    clients.sim.clock(advance=3600)
    assert clients.sim.billing()["pods"][pod_id]["compute_usd"] == before
    clients.sim.clock(unfreeze=True)

    # Stopped, not deleted: a later client resumes it and finds the run's log on the volume.
    clients.ctl("pod", "start", pod_id)
    log = clients.ssh(pod_id, f"cat {LOG}").stdout.splitlines()
    assert log[0] == "attempt=2"
    assert log[1].startswith(f"{jobscripts.SELF_STOP_MARKER} the job ended and no client "
                             f"finished the run within 1s; stopping pod {pod_id}")
    assert clients.sim.api_key not in "\n".join(log)
    # The stop wiped the control dir with the container disk; the volume kept the exit code.
    assert clients.ssh(pod_id, f"ls {CONTROL}", check=False).returncode != 0
    status = clients.ssh(pod_id, jobscripts.status_command(
        control_dir=CONTROL, durable_exit_code_path=EXIT_CODE)).stdout
    assert jobscripts.parse_status(status) == ("exited", 4)


def test_a_client_that_finishes_the_run_in_time_keeps_the_pod(clients: Clients) -> None:
    pod_id = clients.create(name="watched")
    launch(clients, pod_id, "echo done\n", self_stop_after_sec=60, self_stop_poll_sec=0.2)
    wait_for(lambda: jobscripts.parse_status(
        clients.ssh(pod_id, jobscripts.status_command(control_dir=CONTROL)).stdout)[0] == "exited")
    clients.ssh(pod_id, jobscripts.mark_finished_command(control_dir=CONTROL))
    # The waiter stands down once it sees the marker: then nothing is left to stop the pod.
    wait_for(lambda: clients.ssh(pod_id, f"kill -0 $(cat {CONTROL}/self_stop.pid)",
                                 check=False).returncode != 0, timeout=30)
    assert clients.sim.pod(pod_id)["desiredStatus"] == "RUNNING"  # type: ignore[index]
    assert clients.ssh(pod_id, f"cat {LOG}").stdout == "done\n"
