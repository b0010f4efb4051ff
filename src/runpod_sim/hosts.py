"""Pods as real hosts: one OpenSSH `sshd` per running pod, in its own mount and PID namespaces.

Layout under the simulator home, per pod:

    pods/<id>/volume/      the pod's volume disk, mounted at its volumeMountPath (/workspace);
                           survives stop and start, deleted with the pod
    pods/<id>/container/   the container disk, recreated at every container start, wiped on stop:
        root/ tmp/         mounted over /root and /tmp
        run/               mounted at /run/runpod-sim-pod: sshd_config, fresh host keys,
                           bin/nvidia-smi, gpus.json and bin/runpodctl (talks to the simulator)
    pods/<id>/sshd.log     sshd's own log (on the host side, not part of the pod)

`unshare --mount --pid --fork --kill-child` gives each pod a private mount table (the bind mounts
above are visible only inside) and a PID namespace whose init is a shell that starts sshd and
waits for it (reaping orphaned jobs meanwhile): killing that one process kills every process of
the pod, so a stop leaves nothing running. The init's environment is the container's
(`RUNPOD_POD_ID`, the pod-scoped `RUNPOD_API_KEY`, the pod's own env...), readable inside the pod
at `/proc/1/environ` as on RunPod; sshd does not hand it on to SSH sessions (nor does RunPod's).
The pod otherwise sees the host's filesystem (its ssh, rsync, bash, python): this is isolation of
paths, not a sandbox.
The mountpoints themselves (/workspace, /run/runpod-sim-pod) are created on the host as empty
directories when missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from runpod_sim import catalog

SSHD = "/usr/sbin/sshd"
POD_RUN_DIR = "/run/runpod-sim-pod"
_POD_MARKER_ENV = "RUNPOD_SIM_POD_DIR"
_RECLAIMED = "reclaimed"
"""Written into the pod's run dir when a reclaim's SIGTERM goes out: the init waits for the kill."""
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostError(RuntimeError):
    """A pod's container could not be started."""


def require_loopback(host: str) -> str:
    """Refuse any address but loopback: the simulator must never listen on a real network."""
    if host == "localhost" or ipaddress.ip_address(host).is_loopback:
        return host
    raise ValueError(f"runpod-sim binds only loopback addresses, not {host!r}")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_prerequisites() -> list[str]:
    """What the host lacks to run pods, each with how to get it; empty when all is there."""
    problems = []
    if os.geteuid() != 0:
        problems.append("root is needed (mount and PID namespaces for each pod)")
    if not Path(SSHD).exists():
        problems.append(f"{SSHD} is missing: apt-get install openssh-server")
    for tool, package in (("rsync", "rsync"), ("ssh-keygen", "openssh-client"),
                          ("unshare", "util-linux"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing: apt-get install {package}")
    return problems


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What a container start needs to know about its pod."""

    pod_id: str
    gpu_type_id: str
    gpu_count: int
    volume_mount_path: str
    volume_dir: Path
    authorized_keys: str
    ssh_port: int
    environment: dict[str, str] = field(default_factory=dict)
    """The container's environment (PID 1's): what RunPod sets plus the pod's own env."""
    api_url: str = ""
    """The simulator's base URL, baked into the pod's runpodctl as RunPod's are built in."""


class Hosts:
    """Starts, stops and inspects pod containers under `<home>/pods`."""

    def __init__(self, home: Path) -> None:
        self.root = home / "pods"
        self.volumes_root = home / "volumes"
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def pod_dir(self, pod_id: str) -> Path:
        return self.root / pod_id

    def volume_dir(self, pod_id: str, *, volume_gb: int, network_volume_id: str | None) -> Path:
        """Where the pod's volume mount lives: a network volume, its own volume disk, or
        (with neither, as on RunPod) a directory of the container disk."""
        if network_volume_id:
            return self.volumes_root / network_volume_id
        if volume_gb > 0:
            return self.pod_dir(pod_id) / "volume"
        return self.pod_dir(pod_id) / "container" / "volume"

    def start(self, spec: ContainerSpec, *, wipe: bool = True) -> int:
        """Start the container and return its namespace init pid. A fresh start (`wipe`) gets an
        empty container disk and so new sshd host keys; a restart in place keeps both."""
        container = self.pod_dir(spec.pod_id) / "container"
        if wipe:
            shutil.rmtree(container, ignore_errors=True)
        root, tmp, run = container / "root", container / "tmp", container / "run"
        for directory in (root / ".ssh", tmp, run / "bin", spec.volume_dir):
            directory.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        (root / ".ssh").chmod(0o700)
        tmp.chmod(0o1777)
        keys = root / ".ssh" / "authorized_keys"
        keys.write_text(spec.authorized_keys.strip() + "\n")
        keys.chmod(0o600)
        if not (run / "ssh_host_ed25519_key").exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{spec.pod_id}",
                            "-f", str(run / "ssh_host_ed25519_key")], check=True)
        (run / "sshd_config").write_text(_sshd_config(spec.ssh_port))
        self._install_nvidia_smi(run / "bin", spec)
        self._install_runpodctl(run / "bin", spec.api_url)
        for mountpoint in (spec.volume_mount_path, POD_RUN_DIR, "/run/sshd"):
            Path(mountpoint).mkdir(parents=True, exist_ok=True)
        script = " && ".join([
            f"mount --bind {run} {POD_RUN_DIR}",
            f"mount --bind {spec.volume_dir} {spec.volume_mount_path}",
            f"mount --bind {root} /root",
            f"mount --bind {tmp} /tmp",
            # Not `exec`: sshd rewrites its own environ (setproctitle), so PID 1 stays a shell
            # whose /proc/1/environ is the container's; `wait` also reaps orphaned jobs. In a
            # reclaim sshd gets SIGTERM like the rest, and the init outlives it till the kill.
            (f"{{ {SSHD} -D -e -f {POD_RUN_DIR}/sshd_config & wait $!; "
             f"while [ -e {POD_RUN_DIR}/{_RECLAIMED} ]; do sleep 0.1; done; }}"),
        ])
        log = (self.pod_dir(spec.pod_id) / "sshd.log").open("ab")
        # The marker names the pod on the host side (`unshare`'s environ), not in the container.
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
             "--mount-proc", "env", "-u", _POD_MARKER_ENV, "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**spec.environment, "PATH": _DEFAULT_PATH,
                 _POD_MARKER_ENV: str(self.pod_dir(spec.pod_id))},
        )
        log.close()
        ns_pid = _wait_for_child(proc.pid)
        if ns_pid is None:
            proc.kill()
            proc.wait()
            raise HostError(f"container of pod {spec.pod_id} did not start; see its sshd.log")
        self._children[ns_pid] = proc
        return ns_pid

    def stop(self, pod_id: str, ns_pid: int | None) -> None:
        """Kill every process of the pod (its PID namespace) and wipe the container disk."""
        self.kill(pod_id, ns_pid)
        shutil.rmtree(self.pod_dir(pod_id) / "container", ignore_errors=True)

    def kill(self, pod_id: str, ns_pid: int | None) -> None:
        """Kill the pod's processes, keeping its disks (a container restart)."""
        if ns_pid is None:
            return
        proc = self._children.pop(ns_pid, None)
        # Our own child is surely the pod; a pid from a previous run may have been reused.
        if proc is not None or self.is_pod_process(pod_id, ns_pid):
            try:
                os.kill(ns_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None:
            proc.wait(timeout=10)
        else:
            _wait_gone(ns_pid)

    def delete(self, pod_id: str, ns_pid: int | None) -> None:
        self.stop(pod_id, ns_pid)
        shutil.rmtree(self.pod_dir(pod_id), ignore_errors=True)

    def is_pod_process(self, pod_id: str, pid: int) -> bool:
        """Whether `pid` is still this pod's namespace init (pids get reused after restarts).
        sshd overwrites its own environ (setproctitle), so the marker is read from its parent,
        the `unshare` that waits for it."""
        proc = self._children.get(pid)
        if proc is not None:
            return proc.poll() is None
        parent = _parent_pid(pid)
        return parent is not None and _marker(parent) == str(self.pod_dir(pod_id))

    def reap_strays(self, live: dict[str, int]) -> None:
        """Kill pod processes of this home that the store does not know as live (after a crash)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            marker = _marker(int(entry.name))
            if marker is None or not marker.startswith(f"{self.root}/"):
                continue
            try:
                children = (entry / "task" / entry.name / "children").read_text().split()
            except OSError:
                continue
            pod_id = Path(marker).name
            for child in map(int, children):
                if live.get(pod_id) != child:
                    os.kill(child, signal.SIGKILL)

    def session_pids(self, ns_pid: int) -> list[int]:
        """Host pids of the pod's SSH session processes (every sshd in its namespace but the
        listening one, init's child)."""
        return [pid for pid in self._namespace_pids(ns_pid)
                if _comm(pid) == "sshd" and _parent_pid(pid) != ns_pid]

    def terminate_processes(self, pod_id: str, ns_pid: int) -> int:
        """SIGTERM every process of the pod but its init, as a reclaim does; the init stays
        (without sshd) until the kill that follows (`stop`). Returns how many were signalled."""
        (self.pod_dir(pod_id) / "container" / "run" / _RECLAIMED).touch()
        signalled = 0
        for pid in self._namespace_pids(ns_pid):
            try:
                os.kill(pid, signal.SIGTERM)
                signalled += 1
            except ProcessLookupError:
                pass
        return signalled

    def _namespace_pids(self, ns_pid: int) -> list[int]:
        """Host pids of every process in the PID namespace of `ns_pid`, but that init."""
        try:
            namespace = os.readlink(f"/proc/{ns_pid}/ns/pid")
        except OSError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == ns_pid:
                continue
            try:
                if os.readlink(entry / "ns" / "pid") == namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def drop_sessions(self, ns_pid: int) -> int:
        """Cut every open SSH connection of the pod, as a network blip would. Returns how many."""
        pids = self.session_pids(ns_pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def fill_disk(self, ns_pid: int, mount_path: str, size_kb: int) -> None:
        """Replace the pod's volume mount by a tiny tmpfs seeded with what fits of its files."""
        staging = f"{POD_RUN_DIR}/full-disk"
        script = (f"mkdir -p {staging} && mount -t tmpfs -o size={size_kb}k sim-full {staging} && "
                  f"(cp -a {mount_path}/. {staging}/ 2>/dev/null; "
                  f"dd if=/dev/zero of={staging}/.runpod-sim-filler bs=4k 2>/dev/null; "
                  f"mount --move {staging} {mount_path})")
        subprocess.run(["nsenter", "-t", str(ns_pid), "-m", "sh", "-c", script], check=True,
                       capture_output=True)

    def _install_nvidia_smi(self, bin_dir: Path, spec: ContainerSpec) -> None:
        gpu = catalog.GPU_BY_ID.get(spec.gpu_type_id)
        gpus = [] if gpu is None else [
            {"index": i, "name": gpu.id, "uuid": f"GPU-{spec.pod_id[:8]}-{i:04d}-sim",
             "bus_id": f"00000000:{i + 1:02X}:00.0", "count": spec.gpu_count,
             "memory_mib": gpu.memory_gb * 1024 - 8, "power_watts": gpu.power_watts}
            for i in range(spec.gpu_count)
        ]
        (bin_dir / "gpus.json").write_text(json.dumps(gpus))
        script = bin_dir / "nvidia-smi"
        shutil.copyfile(Path(__file__).with_name("pod_nvidia_smi.py"), script)
        script.chmod(0o755)

    def _install_runpodctl(self, bin_dir: Path, api_url: str) -> None:
        """runpodctl on the pod's PATH, as every RunPod pod has it: ours (stdlib only, run by
        the pod's python3 as the fake nvidia-smi is), pointed at the simulator by default; the
        key comes from the caller's environment, as on RunPod."""
        shutil.copyfile(Path(__file__).with_name("runpodctl.py"), bin_dir / "runpodctl.py")
        lines = ["#!/bin/sh"]
        if api_url:
            lines += [f': "${{RUNPOD_API_URL:={api_url}/v1}}"',
                      f': "${{RUNPOD_GRAPHQL_URL:={api_url}/graphql}}"',
                      "export RUNPOD_API_URL RUNPOD_GRAPHQL_URL"]
        lines.append(f'exec /usr/bin/env python3 {POD_RUN_DIR}/bin/runpodctl.py "$@"')
        shim = bin_dir / "runpodctl"
        shim.write_text("\n".join(lines) + "\n")
        shim.chmod(0o755)


def _sshd_config(port: int) -> str:
    """Key-only root login on loopback, like an official image's sshd (without PAM)."""
    return "\n".join([
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {POD_RUN_DIR}/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PidFile none",
        "PrintMotd no",
        "MaxStartups 100:30:200",
        "Subsystem sftp internal-sftp",
        f"SetEnv PATH={POD_RUN_DIR}/bin:{_DEFAULT_PATH}",
        "",
    ])


def _wait_for_child(pid: int, timeout: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        if children:
            return int(children[0])
        time.sleep(0.005)
    return None


def _parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _marker(pid: int) -> str | None:
    """The pod directory an `unshare` of ours was started for, if `pid` is one."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = f"{_POD_MARKER_ENV}=".encode()
    return next((e[len(prefix):].decode() for e in environ if e.startswith(prefix)), None)


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.01)


def ssh_banner(port: int, timeout: float = 1.0) -> bool:
    """Whether something on loopback:`port` answers with an SSH identification string."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False
