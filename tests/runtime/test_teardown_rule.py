"""The teardown rule (`phases.verify_artifacts`): before a delete, every required artifact is here
with the size the pod reports and, under a few MB, the same sha256. The pod's side runs in a
local bash exactly as it would over SSH; "local" and "remote" are two directories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime import phases
from runtime.rundir import ArtifactPull, ArtifactStatus


class LocalBash:
    """`phases.RemoteShell.run` over a local bash."""

    def run(self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False) -> Any:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout, check=False)
        return SimpleNamespace(exit_status=done.returncode, stdout=done.stdout, stderr=done.stderr)


def _ctx() -> Any:
    return SimpleNamespace(shell=LocalBash())


def _pull(remote: Path | str, local: Path, *, excludes: tuple[str, ...] = (), required: bool = True) -> ArtifactPull:
    return ArtifactPull(label="out", remote_path=str(remote), local_path=str(local), required=required,
                        excludes=excludes, status=ArtifactStatus.SUCCESS)


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    remote = tmp_path / "pod" / "out"
    (remote / "ckpt").mkdir(parents=True)
    (remote / "result.txt").write_text("payload\n")
    (remote / "ckpt" / "step1.bin").write_bytes(b"\0" * 1000)
    local = tmp_path / "run" / "out"
    shutil.copytree(remote, local)
    return remote, local


def test_a_complete_pull_passes(trees: tuple[Path, Path]) -> None:
    remote, local = trees
    assert phases.verify_artifacts(_ctx(), [_pull(f"{remote}/", local)]) == []


def test_a_directory_without_a_slash_lands_inside_the_local_dir(trees: tuple[Path, Path], tmp_path: Path) -> None:
    remote, _ = trees
    into = tmp_path / "into"
    shutil.copytree(remote, into / "out")
    assert phases.verify_artifacts(_ctx(), [_pull(remote, into)]) == []


def test_a_missing_file_is_named(trees: tuple[Path, Path]) -> None:
    remote, local = trees
    (local / "ckpt" / "step1.bin").unlink()
    problems = phases.verify_artifacts(_ctx(), [_pull(f"{remote}/", local)])
    assert problems == [f"out: {remote}/ckpt/step1.bin (missing locally)"]


def test_a_short_file_is_named_with_both_sizes(trees: tuple[Path, Path]) -> None:
    remote, local = trees
    (local / "ckpt" / "step1.bin").write_bytes(b"\0" * 10)
    [problem] = phases.verify_artifacts(_ctx(), [_pull(f"{remote}/", local)])
    assert "step1.bin (10 bytes here, 1000 on the pod)" in problem


def test_same_size_other_bytes_is_caught_by_the_checksum(trees: tuple[Path, Path]) -> None:
    remote, local = trees
    (local / "result.txt").write_text("PAYLOAD\n")
    [problem] = phases.verify_artifacts(_ctx(), [_pull(f"{remote}/", local)])
    assert problem.endswith("result.txt (sha256 differs)")


def test_a_single_file_artifact(trees: tuple[Path, Path], tmp_path: Path) -> None:
    remote, _ = trees
    local = tmp_path / "single"
    local.mkdir()
    (local / "result.txt").write_text("payload\n")
    assert phases.verify_artifacts(_ctx(), [_pull(remote / "result.txt", local)]) == []
    (local / "result.txt").write_text("pay\n")
    assert len(phases.verify_artifacts(_ctx(), [_pull(remote / "result.txt", local)])) == 1


def test_excluded_optional_and_vanished_paths_are_not_required(trees: tuple[Path, Path]) -> None:
    remote, local = trees
    shutil.rmtree(local / "ckpt")
    assert phases.verify_artifacts(_ctx(), [_pull(f"{remote}/", local, excludes=("ckpt/",))]) == []
    assert phases.verify_artifacts(_ctx(), [_pull(f"{remote}/", local, required=False)]) == []
    assert phases.verify_artifacts(_ctx(), [_pull(f"{remote}/nothing/", local)]) == []
