"""capture-env: git state and the lockfile hash, captured without ever failing a run."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

import pytest

from runtime.gitmeta import capture_deploy_metadata

ALL_KEYS = {
    "local_git_sha",
    "local_git_dirty",
    "local_git_branch",
    "payload_lockfile",
    "payload_lockfile_sha256",
}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "exp/fast")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "requirements.txt").write_text("torch\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "init")
    return tmp_path


def test_a_clean_repo_reports_its_commit_branch_and_uv_lock(repo: Path) -> None:
    metadata = capture_deploy_metadata(repo)
    assert metadata.present_fields() == {
        "local_git_sha": git(repo, "rev-parse", "HEAD"),
        "local_git_dirty": False,
        "local_git_branch": "exp/fast",
        "payload_lockfile": "uv.lock",
        "payload_lockfile_sha256": hashlib.sha256(b"version = 1\n").hexdigest(),
    }


def test_an_uncommitted_change_makes_the_tree_dirty(repo: Path) -> None:
    (repo / "train.py").write_text("print('new')\n")
    assert capture_deploy_metadata(repo).local_git_dirty is True


def test_requirements_txt_is_the_fallback_lockfile(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    metadata = capture_deploy_metadata(tmp_path, capture_git=False)
    assert metadata.payload_lockfile == "requirements.txt"
    assert metadata.payload_lockfile_sha256 == hashlib.sha256(b"numpy\n").hexdigest()


def test_not_a_repo_and_no_lockfile_is_all_nulls_and_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    metadata = capture_deploy_metadata(tmp_path)
    assert metadata.present_fields() == dict.fromkeys(ALL_KEYS)
    # Outside git is not a fault (issue 12 item 7): no warning, a DEBUG line at most.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Most projects have no lockfile: that is said at INFO, not as a warning on every apply.
    lockfile_records = [r for r in caplog.records if "no lockfile" in r.getMessage()]
    assert [r.levelno for r in lockfile_records] == [logging.INFO]


def test_git_missing_from_path_is_nulls_not_an_exception(
    repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("PATH", str(repo / "no-bin-here"))
    metadata = capture_deploy_metadata(repo)
    assert metadata.local_git_sha is None and metadata.payload_lockfile == "uv.lock"
    assert "git is not on PATH" in caplog.text


def test_a_hung_git_times_out_to_nulls(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path_factory.mktemp("bin")
    fake_git = bin_dir / "git"
    fake_git.write_text("#!/bin/sh\nexec sleep 30\n")
    fake_git.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    metadata = capture_deploy_metadata(repo, git_timeout_sec=0.2)
    assert metadata.local_git_sha is None and metadata.local_git_dirty is None


def test_switched_off_groups_leave_their_keys_out(repo: Path) -> None:
    assert set(capture_deploy_metadata(repo, capture_git=False).present_fields()) == {
        "payload_lockfile",
        "payload_lockfile_sha256",
    }
    assert (
        capture_deploy_metadata(repo, capture_git=False, capture_lockfile=False).present_fields()
        == {}
    )
