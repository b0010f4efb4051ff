"""A real local shell for the telemetry tests, and fake pod tools put first on its PATH.

`LocalShell` is a `RemoteShell.run` that runs each command under `bash -c` on this machine
(as `SshSession` does on a pod), so `top`, `free`, `df`, `dmesg`, `uname`, `env` and pip are
the real ones. Only what this machine lacks or what a test must control is faked, as scripts
in a bin dir placed first on PATH: `nvidia-smi` printing the real output formats of an
NVIDIA RTX A4000, and, per test, a failing tool.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtime.errors import RemoteCommandError, SshError

GPU_QUERY_FIELDS = (
    "utilization.gpu,memory.used,memory.total,temperature.gpu,ecc.errors.uncorrected.volatile.total"
)

# `nvidia-smi --query-gpu=<GPU_QUERY_FIELDS> --format=csv,noheader,nounits` on a busy A4000.
FAKE_NVIDIA_SMI = f"""#!/bin/bash
query=""; format=""
for arg in "$@"; do
  case "$arg" in
    --query-gpu=*) query="${{arg#--query-gpu=}}" ;;
    --format=*) format="${{arg#--format=}}" ;;
  esac
done
if [ -n "$query" ]; then
  if [ "$query" != "{GPU_QUERY_FIELDS}" ] || [ "$format" != "csv,noheader,nounits" ]; then
    echo "unexpected query: $query / $format" >&2; exit 2
  fi
  echo "87, 12034, 16376, 64, 0"
  exit 0
fi
cat <<'TABLE'
Wed May 13 12:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.127.05             Driver Version: 550.127.05     CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA RTX A4000               On  |   00000000:41:00.0 Off |                  Off |
| 41%   64C    P2             98W /  140W |   12034MiB /  16376MiB |     87%      Default |
|                                         |                        |                  N/A |
+-----------------------------------------+------------------------+----------------------+

+-----------------------------------------------------------------------------------------+
| Processes:                                                                              |
|  GPU   GI   CI        PID   Type   Process name                              GPU Memory |
|        ID   ID                                                               Usage      |
|=========================================================================================|
|    0   N/A  N/A      4242      C   python3                                     12028MiB |
+-----------------------------------------------------------------------------------------+
TABLE
"""

# A quick stand-in for the pod's python3, where a real `pip freeze` (1-2 s) proves nothing.
FAKE_PYTHON3 = """#!/bin/bash
case "$*" in
  --version) echo "Python 3.11.9" ;;
  "-m pip freeze") printf 'numpy==1.26.4\\ntorch==2.4.0\\n' ;;
  *) echo "fake python3: unexpected arguments: $*" >&2; exit 2 ;;
esac
"""

BROKEN_NVIDIA_SMI = """#!/bin/bash
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
exit 9
"""


@dataclass(frozen=True, slots=True)
class LocalResult:
    exit_status: int
    stdout: str
    stderr: str


@dataclass
class LocalShell:
    """`RemoteShell.run` on this machine; `commands` records every command it was given."""

    env: Mapping[str, str]
    commands: list[str] = field(default_factory=list)

    def run(
        self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False
    ) -> LocalResult:
        self.commands.append(command)
        try:
            completed = subprocess.run(
                ["bash", "-c", command], capture_output=True, timeout=timeout, env=dict(self.env),
                check=False,  # the exit status is the result; `check` is ours, below
            )
        except subprocess.TimeoutExpired:
            raise SshError(f"remote command timed out after {timeout}s") from None
        result = LocalResult(
            completed.returncode,
            completed.stdout.decode("utf-8", "replace"),
            completed.stderr.decode("utf-8", "replace"),
        )
        if check and result.exit_status != 0:
            raise RemoteCommandError(command, result.exit_status, result.stderr[-500:])
        return result


@dataclass
class FakeBin:
    """A directory of executables that shadow the real tools for one test."""

    path: Path

    def add(self, name: str, script: str) -> None:
        tool = self.path / name
        tool.write_text(script)
        tool.chmod(0o755)


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Poll until `condition()` holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.02)
