"""How the executor tells a person what is happening, without printing anything itself.

The executor calls the hooks of a `Reporter`; what they show is the view's business: plain
timestamped lines (pipes, CI logs), a live rich view on a TTY, or nothing (`--quiet`). Every
hook has a no-op default, so a view implements only what it shows.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from reconciler.redaction import Redactor


@dataclass(frozen=True, slots=True)
class PodSelected:
    """The run has its pod: created (as soon as the provider answered), resumed or reused."""

    pod_id: str
    gpu_type_id: str | None = None
    datacenter_id: str | None = None
    how: str = "created"
    """created | resumed | reused"""


class Reporter:
    """No-op base: subclass and override what you show.

    The hooks are the typed events a view needs (a phase started or finished, the pod
    selected, a heartbeat, a log line, the cost): a view never reads the run's files back."""

    def phase_started(self, phase: str, detail: str = "") -> None:
        """A phase of the apply began (provision, wait_ssh, setup, stage, ..., lifecycle)."""

    def phase_finished(self, phase: str, seconds: float, ok: bool = True) -> None:
        """The phase ended after `seconds`."""

    def waiting(self, what: str, elapsed_sec: float, detail: str = "") -> None:
        """A heartbeat while waiting for something outside our control."""

    def log_line(self, line: str) -> None:
        """One line of the job's log, as it streams in."""

    def pod_selected(self, pod: PodSelected) -> None:
        """The pod the run is on (again after a failover replaced it)."""

    def cost(self, spent_usd: float, hourly_usd: float | None) -> None:
        """The running cost of the pod so far."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


class PlainReporter(Reporter):
    """Timestamped lines on a stream: what a CI log or a pipe wants."""

    def __init__(self, stream: TextIO | None = None, *, show_log: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._show_log = show_log
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with self._lock:
            self._stream.write(f"[{stamp}] {text}\n")
            self._stream.flush()

    def phase_started(self, phase: str, detail: str = "") -> None:
        self._write(f"{phase}: started{' - ' + detail if detail else ''}")

    def phase_finished(self, phase: str, seconds: float, ok: bool = True) -> None:
        self._write(f"{phase}: {'done' if ok else 'FAILED'} in {seconds:.1f}s")

    def waiting(self, what: str, elapsed_sec: float, detail: str = "") -> None:
        self._write(f"waiting for {what} ({elapsed_sec:.0f}s){' - ' + detail if detail else ''}")

    def log_line(self, line: str) -> None:
        if self._show_log:
            self._write(f"| {line}")

    def info(self, message: str) -> None:
        self._write(message)

    def warning(self, message: str) -> None:
        self._write(f"warning: {message}")


class QuietReporter(Reporter):
    """`--quiet`: warnings only."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr

    def warning(self, message: str) -> None:
        self._stream.write(f"warning: {message}\n")
        self._stream.flush()


class RedactingReporter(Reporter):
    """Every text a view is given passes the run's `Redactor` first: the one place where the
    terminal (plain lines, the live view, the streamed job log) meets the redaction boundary."""

    def __init__(self, inner: Reporter, redactor: Redactor) -> None:
        self.inner = inner
        self._redact = redactor.text

    def phase_started(self, phase: str, detail: str = "") -> None:
        self.inner.phase_started(phase, self._redact(detail))

    def phase_finished(self, phase: str, seconds: float, ok: bool = True) -> None:
        self.inner.phase_finished(phase, seconds, ok)

    def waiting(self, what: str, elapsed_sec: float, detail: str = "") -> None:
        self.inner.waiting(self._redact(what), elapsed_sec, self._redact(detail))

    def log_line(self, line: str) -> None:
        self.inner.log_line(self._redact(line))

    def pod_selected(self, pod: PodSelected) -> None:
        self.inner.pod_selected(pod)

    def cost(self, spent_usd: float, hourly_usd: float | None) -> None:
        self.inner.cost(spent_usd, hourly_usd)

    def info(self, message: str) -> None:
        self.inner.info(self._redact(message))

    def warning(self, message: str) -> None:
        self.inner.warning(self._redact(message))
