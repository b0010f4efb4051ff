"""rsync over the pinned SSH endpoint: incremental pushes, pulls with excludes and delete,
modes, one multiplexed connection, and no transfer at all when the host key changed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.errors import RsyncError
from runtime.rsync import DEFAULT_STAGING_EXCLUDES, Rsync, worth_compressing
from runtime.ssh import SshSession
from tests.transport.transport_sshd import SshServer

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
    # `ssh -O exit` returns as the master goes; sshd's child for it ends a moment later.
    deadline = time.monotonic() + 5
    while sshd.connection_count() and time.monotonic() < deadline:
        time.sleep(0.05)
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


def test_a_push_compresses_what_compresses_and_sends_the_rest_as_is(
    open_session: OpenSession, tmp_path: Path
) -> None:
    session = open_session()
    session.connect()
    target = session.system_ssh_target()
    text = _tree(tmp_path / "text", {"log.csv": b"step,loss\n" + b"100,0.25\n" * 20_000})
    noise = _tree(tmp_path / "noise", {"weights.bin": os.urandom(200_000)})
    with Rsync(target) as auto, Rsync(target, compress=False) as plain, \
            Rsync(target, compress=True) as forced:
        compressed = auto.push(text, str(tmp_path / "pod-text"), delete=True)
        uncompressed = plain.push(text, str(tmp_path / "pod-text-plain"), delete=True)
        as_is = auto.push(noise, str(tmp_path / "pod-noise"), delete=True)
        forced_noise = forced.push(noise, str(tmp_path / "pod-noise-z"), delete=True)
        pulled = auto.pull(str(tmp_path / "pod-text") + "/", tmp_path / "back", delete=False)
    assert compressed.compressed and uncompressed.bytes_sent > 180_000
    assert compressed.bytes_sent < uncompressed.bytes_sent / 10
    assert not as_is.compressed and as_is.bytes_sent > 200_000
    assert forced_noise.compressed, "compress=True forces -z"
    assert pulled.compressed, "a pull cannot sample the pod's bytes: it compresses"


def test_the_compression_sample_skips_what_the_push_excludes(tmp_path: Path) -> None:
    """A project's `.git/` objects are zlib streams already: sampling them would turn
    compression off for the source code the push actually sends."""
    project = _tree(tmp_path / "project", {
        ".git/objects/aa/" + f"{i:038d}": os.urandom(20_000) for i in range(80)
    } | {"train.py": b"import torch\n" * 4_000, "cache.pyc": os.urandom(9_000)})
    assert worth_compressing(project, DEFAULT_STAGING_EXCLUDES)
    assert not worth_compressing(project / ".git")
    assert worth_compressing(tmp_path / "empty-or-missing")
    assert not worth_compressing(_tree(tmp_path / "one", {"x.bin": os.urandom(5_000)}) / "x.bin")