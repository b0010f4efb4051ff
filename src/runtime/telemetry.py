"""A run's telemetry: the metrics sampler behind metrics.jsonl and the start/end snapshots.

Telemetry describes a job; it must never end one. So nothing here raises into the executor
for a telemetry failure: a lost SSH round trip is counted and reported through a `warn`
callback, a command missing on the pod leaves out its keys or its file, and the run goes on.

Every remote round trip is a *batch*: one `RemoteShell.run` whose script runs each probe
(`nvidia-smi`, `top`, `free`, `df`, ...) under its own `timeout` and prints a marker line with
the probe's exit status after its output. A sample therefore costs one round trip instead of
four, and a hung `nvidia-smi` (a GPU fallen off the bus) costs only the GPU columns, not the
row.

Secrets: every byte written to the run dir passes through the run's `Redactor`
(`reconciler.redaction`), which replaces each secret value wherever it occurs, and hides the
value of any environment variable or JSON key whose name looks secret (`*TOKEN*`, `*KEY*`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from reconciler.observed import ObservedPod
from reconciler.redaction import MARKER, Redactor
from reconciler.spec import Telemetry
from runtime.clock import Clock
from runtime.errors import TransportError
from runtime.rundir import MetricsLog, Sample
from runtime.telemetry_parsers import parse_df, parse_free, parse_nvidia_smi, parse_top

__all__ = [
    "REDACTED",
    "CommandShell",
    "MetricsSampler",
    "SnapshotPhase",
    "Warn",
    "capture_snapshots",
]

logger = logging.getLogger(__name__)

REDACTED = MARKER
"""What a secret value is replaced with (the one marker of `reconciler.redaction`)."""

SnapshotPhase = Literal["start", "end"]
Warn = Callable[[str], None]
"""Where telemetry reports what it could not capture; the default logs a WARNING."""

_GPU_QUERY = (
    "nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total,temperature.gpu,"
    "ecc.errors.uncorrected.volatile.total --format=csv,noheader,nounits"
)
_STOP_TIMEOUT_SEC = 10.0

_MARK = "__RUNPOD_TELEMETRY__"
_SECTION_END = re.compile(rf"\n{_MARK} (\w+) (\d+)\n")
# Each probe runs under coreutils `timeout` when the pod has it (every mainstream image does).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LIMIT_FUNCTION = (
    '_rpd_limit() { if command -v timeout >/dev/null 2>&1; then timeout -k 2 "$@"; '
    'else shift; "$@"; fi; }'
)


class CommandShell(Protocol):
    """The part of `runtime.phases.RemoteShell` telemetry uses: any RemoteShell fits."""

    def run(
        self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False
    ) -> Any:
        """Run `command`; the result has `exit_status`, `stdout`, `stderr`."""
        ...


def _log_warning(message: str) -> None:
    logger.warning("%s", message)


# --------------------------------------------------------------------------------------------
# Batches: several probes, one round trip


@dataclass(frozen=True, slots=True)
class _Probe:
    name: str
    """A word (`\\w+`): it is printed in the marker line that ends the probe's output."""
    command: str
    timeout_sec: float


@dataclass(frozen=True, slots=True)
class _Output:
    text: str
    exit_status: int

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


_NO_OUTPUT = _Output(text="", exit_status=-1)
"""A probe whose marker never came back (the script was cut short)."""


def _batch_script(probes: Sequence[_Probe]) -> str:
    lines = [_LIMIT_FUNCTION]
    for probe in probes:
        lines.append(
            f"_rpd_limit {probe.timeout_sec:g} bash -c {shlex.quote(probe.command)} 2>/dev/null; "
            f"printf '\\n{_MARK} %s %d\\n' {probe.name} $?"
        )
    return "\n".join(lines) + "\n"


def _batch_timeout(probes: Sequence[_Probe]) -> float:
    """Long enough for every probe to hit its own limit and be killed, plus a margin."""
    return sum(probe.timeout_sec + 2.0 for probe in probes) + 5.0


def _split_outputs(stdout: str) -> dict[str, _Output]:
    """Cut a batch's stdout at the marker lines into each probe's output and exit status.

    The script prints a newline before each marker, so each piece is exactly what its probe
    printed; whatever follows the last marker is not a probe's and is dropped.
    """
    pieces = _SECTION_END.split(stdout)
    return {
        pieces[index + 1]: _Output(text=pieces[index], exit_status=int(pieces[index + 2]))
        for index in range(0, len(pieces) - 2, 3)
    }


def _run_batch(shell: CommandShell, probes: Sequence[_Probe]) -> dict[str, _Output]:
    """One round trip for all `probes`. Raises what the shell raises (TransportError, OSError)."""
    result = shell.run(_batch_script(probes), timeout=_batch_timeout(probes), check=False)
    return _split_outputs(str(result.stdout or ""))


# --------------------------------------------------------------------------------------------
# The metrics sampler

_SAMPLE_PARSERS: dict[str, Callable[[str], Sample | None]] = {
    "gpu": parse_nvidia_smi,
    "cpu": parse_top,
    "memory": parse_free,
    "disk": parse_df,
}


def _sample_probes(workspace_path: str, capture_gpu: bool) -> tuple[_Probe, ...]:
    probes = (
        _Probe("gpu", _GPU_QUERY, 10.0),
        # LC_ALL=C: a pod with a German locale would print "12,5 us", which parse_top cannot read.
        _Probe("cpu", "LC_ALL=C top -b -n1 | head -5", 10.0),
        _Probe("memory", "LC_ALL=C free -m", 5.0),
        _Probe("disk", f"LC_ALL=C df -B1 {shlex.quote(workspace_path)}", 10.0),
    )
    return probes if capture_gpu else probes[1:]


class MetricsSampler:
    """Appends a row to metrics.jsonl every `interval_sec`, from `start()` until `stop()`.

    Runs on a daemon thread so that a hung SSH command can never keep the process alive. It
    samples first, then waits: the launch row lands at once. The interval runs from the start
    of one sample to the start of the next. A sample that fails as a whole (transport error) is
    counted in `failures` and writes no row; a probe that fails leaves out only its keys. No
    row is written once `stop()` has been called.
    """

    def __init__(
        self,
        shell: CommandShell,
        metrics_log: MetricsLog,
        *,
        interval_sec: float,
        clock: Clock,
        workspace_path: str = "/workspace",
        capture_gpu: bool = True,
        warn: Warn = _log_warning,
    ) -> None:
        if interval_sec <= 0:
            raise ValueError(f"interval_sec must be positive, got {interval_sec}")
        self._shell = shell
        self._metrics_log = metrics_log
        self._interval_sec = interval_sec
        self._clock = clock
        self._warn = warn
        self._probes = _sample_probes(workspace_path, capture_gpu)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples_written = 0
        self._failures = 0
        self._in_failure_streak = False
        self._probes_warned: set[str] = set()

    @property
    def samples_written(self) -> int:
        return self._samples_written

    @property
    def failures(self) -> int:
        """Samples lost because the round trip to the pod failed."""
        return self._failures

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a MetricsSampler can be started only once")
        self._thread = threading.Thread(target=self._loop, name="telemetry-metrics", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Stop sampling without waiting: no row is written from now on, and a sample in
        flight ends on its own while the caller goes on (pulling, say). `stop()` then joins."""
        self._stopping.set()

    def stop(self, timeout: float = _STOP_TIMEOUT_SEC) -> bool:
        """Stop sampling; True if the thread ended within `timeout`, else it is abandoned.

        The wait between samples is interrupted at once; only a remote command in flight can
        hold the thread, and a hung one is left behind (it is a daemon) with a warning.
        """
        self._stopping.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._warn(
                f"metrics sampler did not stop within {timeout:g}s (a remote command is "
                "hanging); abandoning it"
            )
            return False
        return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            began = self._clock.monotonic()
            self._sample_once()
            elapsed = self._clock.monotonic() - began
            self._stopping.wait(max(0.0, self._interval_sec - elapsed))

    def _sample_once(self) -> None:
        try:
            outputs = _run_batch(self._shell, self._probes)
        except (TransportError, OSError) as error:
            self._failures += 1
            if not self._in_failure_streak:
                self._warn(f"metrics sample failed, will keep trying: {error}")
            self._in_failure_streak = True
            return
        self._in_failure_streak = False
        if self._stopping.is_set():
            return
        self._metrics_log.record(*(self._parse(probe, outputs) for probe in self._probes))
        self._samples_written += 1

    def _parse(self, probe: _Probe, outputs: Mapping[str, _Output]) -> Sample | None:
        output = outputs.get(probe.name, _NO_OUTPUT)
        sample = _SAMPLE_PARSERS[probe.name](output.text) if output.ok else None
        if sample is None and probe.name not in self._probes_warned:
            self._probes_warned.add(probe.name)
            self._warn(
                f"metrics: `{probe.command}` gave no usable output (exit {output.exit_status}); "
                f"its columns are left out"
            )
        return sample


# --------------------------------------------------------------------------------------------
# Start and end snapshots


def capture_snapshots(
    shell: CommandShell,
    run_dir: Path,
    *,
    phase: SnapshotPhase,
    telemetry_spec: Telemetry,
    pod: ObservedPod | None,
    secrets_to_redact: Sequence[str] = (),
    redactor: Redactor | None = None,
    pod_raw: Mapping[str, Any] | None = None,
    warn: Warn = _log_warning,
) -> tuple[str, ...]:
    """Write the `phase` snapshot files into `run_dir`; returns the basenames written.

    start: `nvidia_smi_start.txt`, `pod_describe_start.json`. end: the same with `_end`, plus
    `dmesg_tail.txt`, `pip_freeze.txt` and `remote_env.json`. Each file follows its `capture_*`
    flag, and nothing is captured when `enabled` is off. All remote files come from one round
    trip; `pod_describe_*.json` is `pod` (and the provider's `pod_raw` answer, if given) as
    observed, with no remote call. Files are written atomically and redacted; a failure is
    reported through `warn` and leaves that file out, never raises.
    """
    if phase not in ("start", "end"):
        raise ValueError(f"phase must be 'start' or 'end', got {phase!r}")
    if not telemetry_spec.enabled:
        return ()
    redactor = (redactor or Redactor()).with_values(secrets_to_redact)
    files: dict[str, str] = {}
    probes = _snapshot_probes(phase, telemetry_spec)
    if probes:
        try:
            outputs = _run_batch(shell, probes)
        except (TransportError, OSError) as error:
            warn(f"{phase} snapshot: cannot run the capture commands on the pod: {error}")
        else:
            files.update(_remote_files(phase, probes, outputs, redactor, warn))
    if telemetry_spec.capture_pod_describe and (pod is not None or pod_raw is not None):
        files[f"pod_describe_{phase}.json"] = _to_json(redactor.env_tree(_describe(pod, pod_raw)))
    return tuple(
        name
        for name, text in files.items()
        if _write_file(run_dir / name, redactor.text(text), warn)
    )


def _snapshot_probes(phase: SnapshotPhase, spec: Telemetry) -> tuple[_Probe, ...]:
    probes: list[_Probe] = []
    if spec.capture_nvidia_smi:
        # stderr too: "couldn't communicate with the NVIDIA driver" is the finding worth keeping.
        probes.append(_Probe("nvidia_smi", "nvidia-smi 2>&1", 30.0))
    if phase == "end" and spec.capture_dmesg:
        # Unprivileged containers may not read the kernel log; the file then says so.
        probes.append(_Probe("dmesg", "dmesg 2>&1 | tail -n 200", 15.0))
    if phase == "end" and spec.capture_remote_env:
        probes += [
            _Probe(
                "pip_freeze", "python3 -m pip freeze 2>/dev/null || pip freeze 2>/dev/null", 120.0
            ),
            _Probe("uname", "uname -a", 10.0),
            _Probe(
                "python_version",
                "if command -v python3 >/dev/null; then python3 --version 2>&1; "
                "else python --version 2>&1; fi",
                10.0,
            ),
            # The container's own variables (what RunPod set) and the SSH session's (what the
            # job was launched with); NUL-separated so that multi-line values stay whole.
            _Probe("environment", "cat /proc/1/environ 2>/dev/null; env -0", 10.0),
        ]
    return tuple(probes)


_TEXT_FILES = {
    "nvidia_smi": "nvidia_smi_{phase}.txt",
    "dmesg": "dmesg_tail.txt",
    "pip_freeze": "pip_freeze.txt",
}
_REMOTE_ENV_PROBES = ("uname", "python_version", "environment")


def _remote_files(
    phase: SnapshotPhase,
    probes: Sequence[_Probe],
    outputs: Mapping[str, _Output],
    redactor: Redactor,
    warn: Warn,
) -> dict[str, str]:
    """The files the probes that ran produce; a probe's failure is reported, not raised.

    A text probe that failed but printed something is still written: a driver error from
    `nvidia-smi` is exactly what an end snapshot is for.
    """
    files: dict[str, str] = {}
    names = {probe.name for probe in probes}
    for name, filename in _TEXT_FILES.items():
        if name not in names:
            continue
        output = outputs.get(name, _NO_OUTPUT)
        if not output.ok:
            warn(f"{phase} snapshot: {name} exited {output.exit_status} on the pod")
        if output.ok or output.text.strip():
            files[filename.format(phase=phase)] = output.text
    if names.issuperset(_REMOTE_ENV_PROBES):
        files["remote_env.json"] = _to_json(_remote_env(outputs, redactor))
    return files


def _remote_env(outputs: Mapping[str, _Output], redactor: Redactor) -> dict[str, Any]:
    """The original's `{remote_uname, remote_python_version}` plus the pod's variables."""

    def first_line(name: str) -> str | None:
        output = outputs.get(name, _NO_OUTPUT)
        return output.text.strip() if output.ok and output.text.strip() else None

    payload: dict[str, Any] = {
        "remote_uname": first_line("uname"),
        "remote_python_version": first_line("python_version"),
    }
    environment = outputs.get("environment", _NO_OUTPUT)
    if environment.ok:
        payload["environment"] = redactor.environment(_parse_environment(environment.text))
    return payload


def _parse_environment(text: str) -> dict[str, str]:
    """`NAME=value` records separated by NULs; later ones win, malformed ones are skipped."""
    variables: dict[str, str] = {}
    for record in text.split("\0"):
        name, sep, value = record.partition("=")
        if sep and _ENV_NAME.fullmatch(name):
            variables[name] = value
    return dict(sorted(variables.items()))


def _describe(pod: ObservedPod | None, pod_raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pod as observed (ObservedPod's fields) plus, if given, the provider's own answer."""
    payload: dict[str, Any] = dataclasses.asdict(pod) if pod is not None else {}
    if pod_raw is not None:
        payload["provider_response"] = dict(pod_raw)
    return payload


def _to_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"


def _write_file(path: Path, text: str, warn: Warn) -> bool:
    """Write atomically (temp file in the same dir, fsync, rename): a reader never sees half."""
    try:
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        warn(f"cannot write {path.name} in {path.parent}: {error.strerror or error}")
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except OSError as error:
        Path(temp_name).unlink(missing_ok=True)
        warn(f"cannot write {path}: {error.strerror or error}")
        return False
    return True
