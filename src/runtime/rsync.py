"""Staging pushes and artifact pulls with the system `rsync`, over the session's pinned SSH.

`rsync -a --no-owner --no-group --no-perms --omit-dir-times`: contents and modification times
(what makes the next transfer incremental), but not the local uid/gid, modes or directory
times, which mean nothing on the pod and would only cause spurious changes. `--stats` gives the
`TransferResult` figures.

The `ssh` under rsync checks the host key against the same pin as the paramiko session (a
one-line known_hosts file, `StrictHostKeyChecking=yes`), and runs in batch mode: it fails
instead of prompting or trusting. With `multiplex` (the default) the first transfer starts an
OpenSSH ControlMaster and later transfers reuse its connection for `control_persist_sec`,
saving a handshake each; `close()` ends it.

`compress` (`-z`) is "auto" by default, because measuring said so (docs/transport.md): rsync
3.2+ negotiates zstd, cheap enough that even on loopback, where bandwidth is free, text went
twice as fast (ssh's cipher is the bottleneck); but incompressible data (weights, archives,
datasets) went 8-25% slower and no byte fewer. So a push samples its source first (up to 4 MiB
from up to 64 files, compressed at zlib level 1, a few milliseconds) and compresses only what
compresses; a pull, whose bytes cannot be sampled from here, compresses. `True`/`False` force it.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from reconciler.spec import DEFAULT_STAGING_EXCLUDES
from runtime.clock import Clock, SystemClock
from runtime.errors import RsyncError
from runtime.hostkeys import write_known_hosts
from runtime.ssh import SystemSshTarget

__all__ = ["DEFAULT_STAGING_EXCLUDES", "Rsync", "TransferResult", "worth_compressing"]

logger = logging.getLogger(__name__)

_BASE_FLAGS = ("-a", "--no-owner", "--no-group", "--no-perms", "--omit-dir-times", "--stats")
_ERROR_TAIL_CHARS = 1500


@dataclass(frozen=True, slots=True)
class TransferResult:
    """What one rsync run moved. `literal_bytes` is file data sent as-is (not matched by the
    delta algorithm): about zero for an unchanged tree, about a changed file's size."""

    bytes_sent: int
    bytes_received: int
    files_transferred: int
    literal_bytes: int
    duration_sec: float
    compressed: bool = False
    """Whether rsync compressed the stream (`-z`)."""


class Rsync:
    """rsync to and from one pod. Use as a context manager, or call `close()`, so the
    multiplexing master ends with it."""

    def __init__(
        self,
        target: SystemSshTarget,
        *,
        compress: bool | Literal["auto"] = "auto",
        multiplex: bool = True,
        control_persist_sec: int = 60,
        io_timeout_sec: int = 120,
        clock: Clock | None = None,
    ) -> None:
        self._target = target
        self._compress = compress
        self._io_timeout = io_timeout_sec
        self._clock = clock or SystemClock()
        self._multiplex = multiplex
        self._control_persist = control_persist_sec
        # A private, short directory (a unix socket path must stay under ~100 bytes) for the
        # pinned known_hosts file and the multiplexing socket.
        self._private_dir: Path | None = Path(tempfile.mkdtemp(prefix="rpd-rsync-"))
        self._known_hosts = write_known_hosts(
            self._private_dir / "known_hosts", target.endpoint, target.host_key
        )

    def push(
        self,
        local_src: Path,
        remote_dest: str,
        *,
        delete: bool,
        excludes: Sequence[str] = (),
        chmod: str | None = None,
        timeout_sec: float = 3600,
    ) -> TransferResult:
        """Make `remote_dest` (a directory, created if missing) hold `local_src`: a directory's
        contents, or a single file.

        `delete` removes remote files that are not in `local_src` (excluded ones are kept).
        `chmod` is an rsync `--chmod` spec (e.g. `"F600,D700"`); it turns on `--perms` so the
        mode holds for files that already exist on the pod too.
        """
        if not local_src.exists():
            raise RsyncError(f"rsync push: {local_src} does not exist")
        source = f"{local_src}/" if local_src.is_dir() else str(local_src)
        extra = ["--rsync-path", f"mkdir -p {shlex.quote(remote_dest)} && rsync"]
        if chmod is not None:
            extra += ["--perms", f"--chmod={chmod}"]
        destination = f"{self._target.login}:{remote_dest.rstrip('/')}/"
        compress = (self._compress if self._compress != "auto"
                    else worth_compressing(local_src, excludes))
        return self._run("push", source, destination, excludes, delete, extra, timeout_sec,
                         compress=compress)

    def pull(
        self,
        remote_src: str,
        local_dest: Path,
        *,
        delete: bool,
        excludes: Sequence[str] = (),
        timeout_sec: float = 1800,
    ) -> TransferResult:
        """Copy `remote_src` into the local directory `local_dest` (created if missing).

        rsync's own rule applies to `remote_src`: a trailing `/` copies a directory's
        contents, without it the directory itself; a file lands inside `local_dest`.
        """
        local_dest.mkdir(parents=True, exist_ok=True)
        source = f"{self._target.login}:{remote_src}"
        return self._run("pull", source, f"{local_dest}/", excludes, delete, [], timeout_sec,
                         compress=self._compress is not False)

    def close(self) -> None:
        """End the multiplexing master, if one was started, and remove the private files."""
        if self._private_dir is None:
            return
        if any(path.is_socket() for path in self._private_dir.iterdir()):
            subprocess.run(
                [*self._ssh_argv(), "-O", "exit", self._target.login],
                capture_output=True,
                timeout=10,
                check=False,
            )
        shutil.rmtree(self._private_dir, ignore_errors=True)
        self._private_dir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _ssh_argv(self) -> list[str]:
        if self._private_dir is None:
            raise RsyncError("this Rsync was closed")
        argv = self._target.ssh_argv(self._known_hosts)
        if self._multiplex:
            argv += [
                "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self._private_dir}/%C",
                "-o", f"ControlPersist={self._control_persist}",
            ]  # fmt: skip
        return argv

    def _run(
        self,
        direction: str,
        source: str,
        destination: str,
        excludes: Sequence[str],
        delete: bool,
        extra: list[str],
        timeout_sec: float,
        *,
        compress: bool,
    ) -> TransferResult:
        argv = ["rsync", *_BASE_FLAGS, f"--timeout={self._io_timeout}"]
        if compress:
            argv.append("-z")
        if delete:
            argv.append("--delete")
        argv += [f"--exclude={pattern}" for pattern in excludes]
        argv += ["-e", shlex.join(self._ssh_argv()), *extra, source, destination]
        logger.debug("rsync %s: %s", direction, shlex.join(argv))
        started = self._clock.monotonic()
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_sec, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RsyncError(
                f"rsync {direction} {source} -> {destination} timed out after {timeout_sec:.0f}s"
            ) from exc
        except OSError as exc:
            raise RsyncError(f"rsync {direction} could not start: {exc}") from exc
        duration = self._clock.monotonic() - started
        if completed.returncode != 0:
            raise RsyncError(
                f"rsync {direction} {source} -> {destination} failed (exit {completed.returncode}"
                f"{_explain(completed.returncode, completed.stderr)}):\n"
                f"{completed.stderr[-_ERROR_TAIL_CHARS:].strip()}"
            )
        return _parse_stats(completed.stdout, duration, compressed=compress)


_SAMPLE_FILES = 64
_SAMPLE_BYTES_PER_FILE = 64 * 1024
_SAMPLE_BYTES = 4 * 1024 * 1024
_COMPRESSIBLE_BELOW = 0.9
"""Compress when a zlib level-1 sample shrinks to under this fraction of its size."""


def worth_compressing(source: Path, excludes: Sequence[str] = ()) -> bool:
    """Whether `-z` would pay for `source`: the first 64 KiB of up to 64 of its files (in
    sorted directory order, skipping what `excludes` leaves out, 4 MiB at most) compressed at
    zlib level 1 must shrink by 10%. Zstd at rsync's level does at least as well as zlib level 1,
    so a sample that does not shrink here will not shrink in the stream. Unreadable files are
    skipped; a source with nothing to sample compresses (there is then nothing to lose)."""
    import zlib

    taken = raw = packed = 0
    for path in _sample_paths(source, excludes):
        if taken >= _SAMPLE_FILES or raw >= _SAMPLE_BYTES:
            break
        try:
            with open(path, "rb") as handle:
                chunk = handle.read(_SAMPLE_BYTES_PER_FILE)
        except OSError:
            continue
        if not chunk:
            continue
        taken += 1
        raw += len(chunk)
        packed += len(zlib.compress(chunk, 1))
    return raw == 0 or packed < raw * _COMPRESSIBLE_BELOW


def _sample_paths(source: Path, excludes: Sequence[str]) -> Iterator[Path]:
    """The files a push of `source` sends, as far as a name match of the exclude patterns
    tells (`dir/` patterns prune directories, others skip files; a leading `**/` is ignored)."""
    import fnmatch
    import os

    if not source.is_dir():
        yield source
        return
    patterns = [pattern.removeprefix("**/") for pattern in excludes]
    dir_patterns = [pattern.rstrip("/") for pattern in patterns if pattern.endswith("/")]
    file_patterns = [pattern for pattern in patterns if not pattern.endswith("/")]
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in dir_patterns))
        for name in sorted(names):
            if not any(fnmatch.fnmatch(name, p) for p in file_patterns):
                yield Path(root) / name


def _explain(returncode: int, stderr: str) -> str:
    if "Host key verification failed" in stderr or "HOST IDENTIFICATION HAS CHANGED" in stderr:
        return ", the pod's host key does not match the pinned one"
    if returncode == 255:
        return ", SSH connection failed"
    if returncode in (23, 24):
        return ", some files could not be transferred"
    if returncode == 30:
        return ", I/O timeout"
    return ""


_STAT_FIELDS = {
    "files_transferred": re.compile(
        r"^Number of (?:regular )?files transferred: ([\d,]+)", re.MULTILINE
    ),
    "literal_bytes": re.compile(r"^Literal data: ([\d,]+)", re.MULTILINE),
    "bytes_sent": re.compile(r"^Total bytes sent: ([\d,]+)", re.MULTILINE),
    "bytes_received": re.compile(r"^Total bytes received: ([\d,]+)", re.MULTILINE),
}


def _parse_stats(stdout: str, duration_sec: float, *, compressed: bool) -> TransferResult:
    """Read rsync's `--stats` block (numbers may carry thousands separators)."""
    values: dict[str, int] = {}
    for name, pattern in _STAT_FIELDS.items():
        match = pattern.search(stdout)
        if match is None:
            raise RsyncError(f"rsync printed no '{name}' statistic:\n{stdout[-_ERROR_TAIL_CHARS:]}")
        values[name] = int(match.group(1).replace(",", ""))
    return TransferResult(duration_sec=duration_sec, compressed=compressed, **values)
