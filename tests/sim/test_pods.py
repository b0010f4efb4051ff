"""Pods are real hosts: RunPod's survival matrix, rsync, nvidia-smi, loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from conftest import Clients, wait_for


def test_survival_matrix(clients: Clients) -> None:
    pod_id = clients.create()
    clients.ssh(pod_id, "echo vol > /workspace/keep; echo c > /root/gone; echo t > /tmp/gone")
    clients.ctl("pod", "stop", pod_id)
    clients.ctl("pod", "start", pod_id)
    listing = clients.ssh(pod_id, "cat /workspace/keep; ls /root; ls /tmp").stdout
    assert listing.split() == ["vol"]
    pod_dir = clients.sim.home / "pods" / pod_id
    assert (pod_dir / "volume" / "keep").exists()
    clients.ctl("pod", "delete", pod_id)
    assert not pod_dir.exists()


def test_pods_do_not_see_each_others_workspace(clients: Clients) -> None:
    first, second = clients.create(name="a"), clients.create(name="b")
    clients.ssh(first, "echo a > /workspace/mine")
    assert clients.ssh(second, "ls -A /workspace").stdout == ""


def test_rsync_push_and_pull(clients: Clients, tmp_path: Path) -> None:
    pod_id = clients.create()
    port = clients.wait_ssh(pod_id)
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.txt").write_text("payload\n")
    shell = " ".join(clients.ssh_argv(port))
    subprocess.run(["rsync", "-az", "-e", shell, f"{source}/", "root@127.0.0.1:/workspace/in/"],
                   check=True, capture_output=True, timeout=30)
    clients.ssh_port(port, "cp /workspace/in/sub/data.txt /workspace/out.txt")
    back = tmp_path / "back"
    subprocess.run(["rsync", "-az", "-e", shell, "root@127.0.0.1:/workspace/out.txt", str(back)],
                   check=True, capture_output=True, timeout=30)
    assert back.read_text() == "payload\n"


def test_nvidia_smi_prints_parseable_output(clients: Clients) -> None:
    pod_id = clients.create("--gpu-count", "2")
    csv = clients.ssh(pod_id, "nvidia-smi --query-gpu=index,name,memory.total,utilization.gpu "
                              "--format=csv,noheader,nounits").stdout
    assert csv.splitlines() == ["0, NVIDIA RTX A4000, 16376, 0", "1, NVIDIA RTX A4000, 16376, 0"]
    table = clients.ssh(pod_id, "nvidia-smi").stdout
    assert "NVIDIA-SMI" in table and "CUDA Version" in table and table.count("RTX A4000") == 2


def test_sshd_listens_on_loopback_only(clients: Clients) -> None:
    pod_id = clients.create()
    port = clients.wait_ssh(pod_id)
    listeners = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listeners if line.split()[3] == "0A"]
    assert f"0100007F:{port:04X}" in local
    assert not any(address.endswith(f":{port:04X}") and address != f"0100007F:{port:04X}"
                   for address in local)
    outward = socket.gethostbyname(socket.gethostname())
    if not outward.startswith("127."):
        with socket.socket() as sock:
            sock.settimeout(1)
            assert sock.connect_ex((outward, port)) != 0


def test_stop_kills_every_pod_process_and_resume_brings_a_new_host_key(clients: Clients) -> None:
    pod_id = clients.create()
    port = clients.wait_ssh(pod_id)
    first_key = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"],
                               check=False, capture_output=True, text=True).stdout.split()[-1]
    token = str(1000 + os.getpid() % 8000)
    clients.ssh_port(port, f"(nohup sleep {token} >/dev/null 2>&1 &)")
    clients.ctl("pod", "stop", pod_id)
    ps = subprocess.run(["ps", "-eo", "args"], check=False, capture_output=True, text=True).stdout
    assert f"sleep {token}" not in ps
    clients.ctl("pod", "start", pod_id)
    port = clients.wait_ssh(pod_id)
    second_key = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"],
                                check=False, capture_output=True, text=True).stdout.split()[-1]
    assert first_key != second_key


def test_create_wait_returns_once_ssh_banner_answers(clients: Clients) -> None:
    clients.sim.knobs(sshd_delay_sec=0.5)
    pod_id = clients.create("--wait", "--wait-timeout", "20")
    pod = clients.sim.pod(pod_id)
    assert pod is not None
    with socket.create_connection(("127.0.0.1", pod["sshPort"]), timeout=2) as sock:
        assert sock.recv(8).startswith(b"SSH-")


def test_running_with_ports_before_sshd_answers(clients: Clients) -> None:
    clients.sim.knobs(sshd_delay_sec=3)
    pod_id = clients.create()
    got = wait_for(lambda: (p := clients.ctl_json("pod", "get", pod_id))["ssh"].get("port") and p)
    assert got["desiredStatus"] == "RUNNING"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", got["ssh"]["port"])) != 0
    clients.wait_ssh(pod_id)


def test_a_restarted_simulator_brings_running_pods_back(clients: Clients) -> None:
    from runpod_sim.testing import Simulator

    pod_id = clients.create()
    clients.ssh(pod_id, "echo kept > /workspace/f")
    clients.sim.stop()
    assert subprocess.run(["pgrep", "-f", str(clients.sim.home / "pods")],
                          check=False, capture_output=True).returncode == 1
    clients.sim = Simulator.start(clients.sim.home)
    assert clients.ssh(pod_id, "cat /workspace/f").stdout == "kept\n"


def test_stopping_a_killed_server_still_kills_its_pods(clients: Clients) -> None:
    """A server killed before it could stop its pods (SIGKILL after a hung shutdown, a crash)
    leaves `unshare`/sshd processes behind; `down` finds them by their home and kills them."""
    import signal

    pod_id = clients.create()
    clients.wait_ssh(pod_id)
    marker = f"{clients.sim.home.absolute()}/pods/".encode()

    def pod_processes() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    assert pod_processes(), "the running pod is a process of this home"
    os.kill(clients.sim.info.pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{clients.sim.info.pid}/cmdline").exists()
             or not Path(f"/proc/{clients.sim.info.pid}/cmdline").read_bytes(), 10)
    assert pod_processes(), "killing the server alone leaves the pod running"
    clients.sim.stop()
    wait_for(lambda: not pod_processes(), 10)
