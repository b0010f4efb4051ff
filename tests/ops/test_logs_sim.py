"""`logs` tails the run log of the stack's current pod over SSH, trusting only the host key
pinned for the pod's current boot (as apply pins it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.observed import ObservedPod
from runpod_deploy.api import Stack
from runtime.errors import SshError
from runtime.executor import hostkeys_path_for
from runtime.hostkeys import HostKeyPins
from runtime.ops import stream_pod_log
from runtime.ssh import SshSession
from tests.ops.ops_account import Account

pytestmark = pytest.mark.sim  # every test here starts the simulator

LOG = "/workspace/job.log"


def pinned_pod_with_log(account: Account, key: Path, stack: Stack) -> ObservedPod:
    """What apply leaves behind: a running pod, its first host key pinned as `<id>#1`, the
    pin recorded in the state, and a run log on the pod."""
    pod = account.pod(stack.pod_prefix + "1")
    deadline = time.monotonic() + 30
    while pod.ssh is None and time.monotonic() < deadline:
        time.sleep(0.05)
        pod = account.provider.get_pod(pod.pod_id) or pod
    assert pod.ssh is not None
    pin_id = f"{pod.pod_id}#1"
    with SshSession(pod.ssh, key_path=key, pins=HostKeyPins(hostkeys_path_for(stack.state_path)),
                    pin_id=pin_id) as session:
        session.wait_until_ready(timeout_sec=30)
        session.run(f"printf 'step 1\\nstep 2\\nstep 3\\n' > {LOG}")
    account.record(stack, pod, pins=(pin_id,))
    return pod


def test_logs_no_follow_prints_the_last_lines(account: Account, sim_ssh_key: Path) -> None:
    stack = account.stack()
    pinned_pod_with_log(account, sim_ssh_key, stack)
    code, out, err = account.run("logs", "--config", stack.config_path, "--lines", "2",
                                 "--no-follow", "--ssh-key", sim_ssh_key)
    assert (code, out) == (0, "step 2\nstep 3\n"), err


def test_logs_follow_delivers_appended_lines(account: Account, sim_ssh_key: Path) -> None:
    stack = account.stack()
    pod = pinned_pod_with_log(account, sim_ssh_key, stack)
    seen: list[str] = []
    follower = threading.Thread(target=stream_pod_log, kwargs={
        "state_path": stack.state_path, "identity": stack.identity, "provider": account.provider,
        "key_path": sim_ssh_key, "log_path": LOG, "lines": 1, "follow": True,
        "on_line": seen.append, "should_stop": lambda: "DONE" in seen})
    follower.start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:  # the history first, then the appends
        time.sleep(0.02)
    assert pod.ssh is not None
    with SshSession(pod.ssh, key_path=sim_ssh_key,
                    pins=HostKeyPins(hostkeys_path_for(stack.state_path)),
                    pin_id=f"{pod.pod_id}#1", allow_new_host_key=False) as session:
        session.run(f"echo 'step 4' >> {LOG}; echo DONE >> {LOG}")
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert seen == ["step 3", "step 4", "DONE"]


def test_logs_refuses_a_pod_without_a_pin(account: Account, sim_ssh_key: Path) -> None:
    stack = account.stack()
    account.record(stack, account.pod(stack.pod_prefix + "1"))
    with pytest.raises(SshError, match="no host key is pinned"):
        stream_pod_log(state_path=stack.state_path, identity=stack.identity,
                       provider=account.provider, key_path=sim_ssh_key, log_path=LOG, lines=5,
                       follow=False, on_line=print)
