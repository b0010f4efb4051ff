"""capture_snapshots on a real local shell: files, flags, redaction, failures that stay local."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.observed import ObservedPod, PodStatus, SshEndpoint
from reconciler.spec import Telemetry
from runtime.errors import SshError
from runtime.telemetry import REDACTED, SnapshotPhase, capture_snapshots
from tests.telemetry.telemetry_shell import BROKEN_NVIDIA_SMI, FakeBin, LocalResult, LocalShell

POD = ObservedPod(
    pod_id="pod-abc123",
    name="rd-hello",
    status=PodStatus.RUNNING,
    image="runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
    gpu_type_id="NVIDIA RTX A4000",
    gpu_count=1,
    cost_per_hr=0.17,
    ssh=SshEndpoint(host="203.0.113.7", port=22022),
)
END_FILES = {
    "nvidia_smi_end.txt",
    "pod_describe_end.json",
    "dmesg_tail.txt",
    "pip_freeze.txt",
    "remote_env.json",
}


ALL_ON = Telemetry()


def capture(
    shell: Any, run_dir: Path, phase: SnapshotPhase, spec: Telemetry = ALL_ON, **options: Any
) -> tuple[str, ...]:
    options.setdefault("pod", POD)
    options.setdefault("secrets_to_redact", ())
    return capture_snapshots(shell, run_dir, phase=phase, telemetry_spec=spec, **options)


def listing(run_dir: Path) -> set[str]:
    return {path.name for path in run_dir.iterdir()}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def test_start_writes_nvidia_smi_and_pod_describe_in_one_round_trip(
    shell: LocalShell, run_dir: Path
) -> None:
    written = capture(shell, run_dir, "start")

    assert written == ("nvidia_smi_start.txt", "pod_describe_start.json")
    assert listing(run_dir) == set(written)
    assert len(shell.commands) == 1
    assert "NVIDIA RTX A4000" in (run_dir / "nvidia_smi_start.txt").read_text()
    describe = json.loads((run_dir / "pod_describe_start.json").read_text())
    assert describe["pod_id"] == "pod-abc123" and describe["status"] == "RUNNING"
    assert describe["ssh"] == {"host": "203.0.113.7", "port": 22022}
    assert describe["cost_per_hr"] == 0.17


def test_end_writes_every_file_in_one_round_trip(shell: LocalShell, run_dir: Path) -> None:
    written = capture(shell, run_dir, "end", pod_raw={"id": "pod-abc123", "costPerHr": 0.17})

    assert set(written) == END_FILES == listing(run_dir)
    assert len(shell.commands) == 1
    remote_env = json.loads((run_dir / "remote_env.json").read_text())
    local_uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=True).stdout
    assert remote_env["remote_uname"] == local_uname.strip()
    assert remote_env["remote_python_version"].startswith("Python 3.")
    assert remote_env["environment"]["HOME"] == str(Path.home())
    local_freeze = subprocess.run(
        ["python3", "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        env=shell.env,
        check=True,
    ).stdout
    assert (run_dir / "pip_freeze.txt").read_text() == local_freeze
    assert len((run_dir / "dmesg_tail.txt").read_text().splitlines()) <= 200
    describe = json.loads((run_dir / "pod_describe_end.json").read_text())
    assert describe["provider_response"] == {"id": "pod-abc123", "costPerHr": 0.17}


FLAG_FILES = {
    "capture_nvidia_smi": {"nvidia_smi_end.txt"},
    "capture_dmesg": {"dmesg_tail.txt"},
    "capture_pod_describe": {"pod_describe_end.json"},
    "capture_remote_env": {"pip_freeze.txt", "remote_env.json"},
}


@pytest.mark.parametrize("flag", sorted(FLAG_FILES))
@pytest.mark.usefixtures("fast_python")
def test_each_capture_flag_turns_off_exactly_its_files(
    shell: LocalShell, run_dir: Path, flag: str
) -> None:
    written = capture(shell, run_dir, "end", Telemetry.model_validate({flag: False}))

    assert set(written) == END_FILES - FLAG_FILES[flag] == listing(run_dir)


def test_disabled_telemetry_runs_nothing_and_writes_nothing(
    shell: LocalShell, run_dir: Path
) -> None:
    assert capture(shell, run_dir, "end", Telemetry(enabled=False)) == ()
    assert shell.commands == [] and listing(run_dir) == set()


def test_only_local_files_need_no_remote_command(shell: LocalShell, run_dir: Path) -> None:
    spec = Telemetry(capture_nvidia_smi=False, capture_dmesg=False, capture_remote_env=False)

    assert capture(shell, run_dir, "end", spec) == ("pod_describe_end.json",)
    assert shell.commands == []


SECRET = "hf_Zq9sEcReT-v4lue/with'quote\"and$dollar"
OTHER_SECRET = "wandb-0ther-s3cret"


@pytest.mark.usefixtures("fast_python")
def test_a_planted_secret_never_reaches_any_file(
    make_shell: Callable[..., LocalShell], fake_bin: FakeBin, run_dir: Path
) -> None:
    shell = make_shell(
        HF_TOKEN=SECRET,  # a secret-looking name, and a listed value
        GREETING=SECRET,  # an innocent name: only the value gives it away
        WANDB_API_KEY=OTHER_SECRET,  # a secret-looking name, value not listed
        PLAIN_SETTING="visible-value",
    )
    # A kernel log line that happens to carry the secret: only the by-value scrub can catch it.
    fake_bin.add("dmesg", '#!/bin/bash\necho "[    2.0] leaked: $GREETING"\n')
    pod_raw = {
        "id": "pod-abc123",
        "env": [f"HF_TOKEN={SECRET}", "PLAIN_SETTING=visible-value"],
        "envPairs": [{"key": "WANDB_API_KEY", "value": OTHER_SECRET}],
        "envMap": {"HF_TOKEN": SECRET, "NOTE": f"token is {SECRET}"},
    }

    written = capture(shell, run_dir, "end", pod_raw=pod_raw, secrets_to_redact=[SECRET])

    assert set(written) == END_FILES
    for path in run_dir.iterdir():
        content = path.read_bytes()
        assert SECRET.encode() not in content, path.name
        assert OTHER_SECRET.encode() not in content, path.name
    environment = json.loads((run_dir / "remote_env.json").read_text())["environment"]
    assert (
        environment["HF_TOKEN"]
        == environment["GREETING"]
        == environment["WANDB_API_KEY"]
        == REDACTED
    )
    assert environment["PLAIN_SETTING"] == "visible-value"
    assert f"leaked: {REDACTED}" in (run_dir / "dmesg_tail.txt").read_text()
    describe = json.loads((run_dir / "pod_describe_end.json").read_text())["provider_response"]
    assert describe["env"] == [f"HF_TOKEN={REDACTED}", "PLAIN_SETTING=visible-value"]
    assert describe["envPairs"] == [{"key": "WANDB_API_KEY", "value": REDACTED}]
    assert describe["envMap"] == {"HF_TOKEN": REDACTED, "NOTE": f"token is {REDACTED}"}


class DeadLink:
    """A pod that cannot be reached at all."""

    def run(
        self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False
    ) -> LocalResult:
        raise SshError("cannot open a channel to 203.0.113.7:22022")


def test_a_lost_link_is_warned_and_the_local_snapshot_still_written(run_dir: Path) -> None:
    warnings: list[str] = []

    written = capture(DeadLink(), run_dir, "end", warn=warnings.append)

    assert written == ("pod_describe_end.json",)
    assert len(warnings) == 1 and "cannot open a channel" in warnings[0]


def test_an_unwritable_run_dir_is_warned_not_raised(shell: LocalShell, tmp_path: Path) -> None:
    warnings: list[str] = []

    written = capture(shell, tmp_path / "gone", "start", warn=warnings.append)

    assert written == ()
    assert len(warnings) == 2 and all("gone" in warning for warning in warnings)


@pytest.mark.usefixtures("fast_python")
def test_an_unreadable_kernel_log_is_recorded_not_raised(
    fake_bin: FakeBin, shell: LocalShell, run_dir: Path
) -> None:
    fake_bin.add(
        "dmesg",
        "#!/bin/bash\n"
        "echo 'dmesg: read kernel buffer failed: Operation not permitted' >&2\n"
        "exit 1\n",
    )

    assert "dmesg_tail.txt" in capture(shell, run_dir, "end")
    assert "Operation not permitted" in (run_dir / "dmesg_tail.txt").read_text()


def test_a_pod_without_pip_leaves_out_pip_freeze_only(
    fake_bin: FakeBin, shell: LocalShell, run_dir: Path
) -> None:
    fake_bin.add(
        "python3",
        '#!/bin/bash\n[ "$1" = --version ] && { echo "Python 3.10.12"; exit 0; }\n'
        'echo "/usr/bin/python3: No module named pip" >&2; exit 1\n',
    )
    fake_bin.add("pip", "#!/bin/bash\nexit 127\n")
    warnings: list[str] = []

    written = capture(shell, run_dir, "end", warn=warnings.append)

    assert set(written) == END_FILES - {"pip_freeze.txt"}
    assert any("pip_freeze" in warning for warning in warnings)
    assert (
        json.loads((run_dir / "remote_env.json").read_text())["remote_python_version"]
        == "Python 3.10.12"
    )


def test_a_failing_nvidia_smi_keeps_its_error_as_the_snapshot(
    fake_bin: FakeBin, shell: LocalShell, run_dir: Path
) -> None:
    fake_bin.add("nvidia-smi", BROKEN_NVIDIA_SMI)
    warnings: list[str] = []

    assert "nvidia_smi_start.txt" in capture(shell, run_dir, "start", warn=warnings.append)

    assert (
        "couldn't communicate with the NVIDIA driver"
        in (run_dir / "nvidia_smi_start.txt").read_text()
    )
    assert any("nvidia_smi exited 9" in warning for warning in warnings)


def test_no_pod_means_no_pod_describe(shell: LocalShell, run_dir: Path) -> None:
    assert capture(shell, run_dir, "start", pod=None) == ("nvidia_smi_start.txt",)
