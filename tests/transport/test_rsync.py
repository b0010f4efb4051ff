"""rsync over the pinned SSH endpoint: incremental pushes, pulls with excludes and delete,
modes, one multiplexed connection, and no transfer at all when the host key changed."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from transport_sshd import SshServer

from runtime.errors import RsyncError
from runtime.rsync import DEFAULT_STAGING_EXCLUDES, Rsync
from runtime.ssh import SshSession

OpenSession = Callable[..., SshSession]


@pytest.fixture
def rsync(open_session: OpenSession) -> Iterator[Rsync]:
    session = open_session()
    session.connect()  # pins the host key the system ssh will insist on
    with Rsync(session.system_ssh_target()) as transfer:
        yield transfer


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_push_is_incremental(rsync: Rsync, tmp_path: Path) -> None:
    source = _tree(
        tmp_path / "project",
        {
            "train.py": os.urandom(30_000),
            "data/a.bin": os.urandom(60_000),
            "data/b.bin": os.urandom(90_000),
        },
    )
    remote = tmp_path / "pod" / "workspace" / "project"

    first = rsync.push(source, str(remote), delete=True)
    assert first.files_transferred == 3
    assert first.literal_bytes == 180_000
    assert (remote / "data" / "b.bin").read_bytes() == (source / "data" / "b.bin").read_bytes()

    unchanged = rsync.push(source, str(remote), delete=True)
    assert (unchanged.files_transferred, unchanged.literal_bytes) == (0, 0)
    assert unchanged.bytes_sent < 2_000

    (source / "data" / "a.bin").write_bytes(os.urandom(40_000))
    one_changed = rsync.push(source, str(remote), delete=True)
    assert one_changed.files_transferred == 1
    assert 40_000 <= one_changed.literal_bytes < 41_000
    assert 40_000 < one_changed.bytes_sent < 45_000


def test_push_delete_keeps_excluded_files_and_chmod_sets_modes(
    rsync: Rsync, tmp_path: Path
) -> None:
    source = _tree(
        tmp_path / "src", {"keep.py": b"x", "__pycache__/m.pyc": b"c", ".git/HEAD": b"ref"}
    )
    remote = _tree(tmp_path / "pod", {"stale.py": b"old", ".git/config": b"remote-only"})
    rsync.push(source, str(remote), delete=True, excludes=DEFAULT_STAGING_EXCLUDES, chmod="F600")
    names = sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())
    assert names == [".git/config", "keep.py"]
    assert (remote / "keep.py").stat().st_mode & 0o777 == 0o600


def test_push_of_a_single_file_lands_in_the_directory(rsync: Rsync, tmp_path: Path) -> None:
    secret = _tree(tmp_path / "local", {"env": b"TOKEN=1\n"}) / "env"
    result = rsync.push(secret, str(tmp_path / "pod" / "secrets"), delete=False)
    assert result.files_transferred == 1
    assert (tmp_path / "pod" / "secrets" / "env").read_bytes() == b"TOKEN=1\n"


def test_pull_with_excludes_and_delete(rsync: Rsync, tmp_path: Path) -> None:
    remote = _tree(
        tmp_path / "pod" / "out",
        {
            "metrics.json": b"{}",
            "ckpt/model.bin": os.urandom(20_000),
            "cache/tmp.bin": b"junk",
            "run.log": b"log",
        },
    )
    local = _tree(tmp_path / "run" / "artifacts", {"stale.txt": b"from an old run"})
    result = rsync.pull(f"{remote}/", local, delete=True, excludes=["cache/", "*.log"])
    names = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert names == ["ckpt/model.bin", "metrics.json"]
    assert result.files_transferred == 2
    assert result.bytes_received > 20_000


def test_pull_creates_the_local_destination(rsync: Rsync, tmp_path: Path) -> None:
    remote_log = _tree(tmp_path / "pod", {"run.log": b"done\n"}) / "run.log"
    local = tmp_path / "artifacts" / "runpod" / "20260101T000000Z"
    rsync.pull(str(remote_log), local, delete=False)
    assert (local / "run.log").read_bytes() == b"done\n"


def test_transfers_share_one_multiplexed_connection_closed_with_rsync(
    open_session: OpenSession, sshd: SshServer, tmp_path: Path
) -> None:
    session = open_session()
    session.connect()
    target = session.system_ssh_target()
    session.close()
    source = _tree(tmp_path / "src", {"a": b"a"})
    with Rsync(target) as transfer:
        for _ in range(3):
            transfer.push(source, str(tmp_path / "pod"), delete=True)
        assert sshd.connection_count() == 1
    assert sshd.connection_count() == 0


def test_a_changed_host_key_makes_rsync_refuse(
    rsync: Rsync, sshd: SshServer, tmp_path: Path
) -> None:
    source = _tree(tmp_path / "src", {"a": b"a"})
    sshd.restart(new_host_key=True)
    with pytest.raises(RsyncError, match="host key does not match"):
        rsync.push(source, str(tmp_path / "pod"), delete=True)
    assert not (tmp_path / "pod").exists()


def test_missing_source_and_remote_errors_are_typed(rsync: Rsync, tmp_path: Path) -> None:
    with pytest.raises(RsyncError, match="does not exist"):
        rsync.push(tmp_path / "nope", str(tmp_path / "pod"), delete=True)
    with pytest.raises(RsyncError, match="No such file"):
        rsync.pull(str(tmp_path / "no-such-remote-dir") + "/", tmp_path / "local", delete=False)


def test_compression_is_on_by_default_and_can_be_turned_off(
    open_session: OpenSession, tmp_path: Path
) -> None:
    session = open_session()
    session.connect()
    target = session.system_ssh_target()
    text = _tree(tmp_path / "src", {"log.csv": b"step,loss\n" + b"100,0.25\n" * 20_000})
    with Rsync(target) as default, Rsync(target, compress=False) as plain:
        compressed = default.push(text, str(tmp_path / "pod-z"), delete=True)
        uncompressed = plain.push(text, str(tmp_path / "pod"), delete=True)
    assert uncompressed.bytes_sent > 180_000
    assert compressed.bytes_sent < uncompressed.bytes_sent / 10
