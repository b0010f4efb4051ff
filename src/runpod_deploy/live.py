"""The live terminal view of `apply`: a rich display on stderr that the executor's hooks keep up
to date.

What it shows, redrawn a few times a second: the stack and its pod, a checklist of the phases
(a spinner on the one running, the seconds each took), the running cost and the elapsed time,
and the last lines of the job's log. Warnings and notes are printed above the live area so they
stay in the scrollback; when the view stops, its final state stays on the screen.

This module imports only the standard library at import time: rich is imported when a
`RichReporter` is made, so choosing a view (`use_live_view`) costs nothing.

Threads: the hooks may be called from any thread (the log streams on its own). Each hook only
changes the view's state under the view's lock; drawing (rich's refresh thread, or a line
printed above the view) reads that state under the same lock. Nothing is printed and no other
lock is taken while the view's lock is held, so it cannot take part in a deadlock with rich's.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self, TextIO

from runtime.reporter import PodSelected, Reporter

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.text import Text

    from reconciler.plan import Plan

__all__ = ["RichReporter", "use_live_view"]

_POD_STEPS = ("resume", "adopt", "noop")
"""Plan steps that run the job on a pod that already exists (its id is in the plan)."""


def use_live_view(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when `stream` is a terminal a live view can redraw: a TTY, not a CI job (`CI`
    set), not `TERM=dumb`. Anything else (pipes, files, CI logs) gets plain lines."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
    if not tty:
        return False
    if env.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    return env.get("TERM", "") != "dumb"


@dataclass
class _Row:
    """One phase of the checklist."""

    name: str
    depth: int = 0
    status: str = "pending"  # pending | running | done | failed
    detail: str = ""
    note: str = ""  # the latest heartbeat while the phase waits on something
    started: float = 0.0
    seconds: float = 0.0
    runs: int = 0
    spinner: Spinner | None = None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _usd(amount: float) -> str:
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


def _manifest_cost(path: Path) -> tuple[float, float | None] | None:
    """(estimated_cost_usd, gpu_price_per_hour_usd) from a run's manifest, when it has them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    spent = data.get("estimated_cost_usd") if isinstance(data, dict) else None
    if not isinstance(spent, int | float):
        return None
    hourly = data.get("gpu_price_per_hour_usd")
    return float(spent), float(hourly) if isinstance(hourly, int | float) else None


class _View:
    """What rich draws: the state is read at drawing time, not when rich asked for the
    renderable, so a line printed above the live area redraws the view as it is now."""

    def __init__(self, render: Callable[[], RenderableType]) -> None:
        self._render = render

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._render()


class RichReporter(Reporter):
    """The live view. Use it as a context manager (or `start()` / `stop()`); the first phase
    starts it if nothing did. Before that, warnings and notes are printed as plain lines (the
    API reports a stack's load warnings before the plan is shown and confirmed) and the other
    hooks only update what the view will show.

    `console` defaults to a rich Console on stderr. `show_plan(plan)` (before the run) fills
    in the stack, the pod it reuses, the cost cap and the phases to come;
    the pod's id, GPU and datacenter come with the `pod_selected` hook as soon as the pod is
    created (the view reads no file of the run while it runs).
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        stack: str = "",
        log_lines: int = 10,
        refresh_per_second: float = 8.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = console if console is not None else Console(stderr=True)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stack = stack
        self._pod = ""
        self._pod_new = False
        self._gpu = ""
        self._endpoint = ""
        self._rows: list[_Row] = []
        self._running: list[str] = []
        self._log: deque[str] = deque(maxlen=max(1, log_lines))
        self._log_total = 0
        self._spent: float | None = None
        self._hourly: float | None = None
        self._cap: float | None = None
        self._estimated = False
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._warnings = 0
        self._live: Live = Live(
            console=self._console,
            get_renderable=lambda: _View(self._render),
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stdout=False,  # stdout may be a pipe (`--print-run-dir`, `--json`)
            redirect_stderr=True,  # stray stderr (logging) goes above the live area
            vertical_overflow="ellipsis",  # `stop()` draws the last frame in full
        )

    # -- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started_at is not None:
                return
            self._started_at = self._monotonic()
        self._live.start(refresh=True)

    def stop(self, manifest: Path | None = None) -> None:
        """Draw the final state (it stays on screen) and give the terminal back. With the
        run's `manifest`, the cost shown is the run's estimate from it (price x wall time)."""
        final_cost = _manifest_cost(manifest) if manifest is not None else None
        with self._lock:
            if self._started_at is None or self._stopped_at is not None:
                return
            self._stopped_at = self._monotonic()
            if final_cost is not None:
                self._spent, self._hourly = final_cost
                self._estimated = True
        self._live.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def refresh(self) -> None:
        """Draw now, rather than at the next tick of the refresh thread."""
        if self._live.is_started:
            self._live.refresh()

    def _ensure_started(self) -> None:
        if self._started_at is None:
            self.start()

    # -- what the CLI knows before the run ------------------------------------------------------

    def show_plan(self, plan: Plan) -> None:
        """The stack's name, the pod the plan reuses (or that it creates one), the cost cap,
        and the phases the plan will run, shown as pending until they start."""
        with self._lock:
            self._stack = plan.stack.name
            for step in plan.steps:
                if step.kind.value in _POD_STEPS and step.pod_id:
                    self._pod, self._pod_new = step.pod_id, False
                elif step.kind.value in ("create", "replace"):
                    self._pod, self._pod_new = "", True
            self._cap = plan.cost.cap_usd
            self._seed("provision", 0)
            self._seed("wait_ssh", 1)
            for entry in plan.phases:
                if entry.runs:
                    self._seed(entry.phase.value, 0)

    # -- the executor's hooks -------------------------------------------------------------------

    def phase_started(self, phase: str, detail: str = "") -> None:
        from rich.spinner import Spinner

        self._ensure_started()
        with self._lock:
            outer = [name for name in self._running if name != phase]
            row = self._row(phase, depth=len(outer))
            row.depth = len(outer)
            row.status, row.started, row.note = "running", self._monotonic(), ""
            row.runs += 1
            row.spinner = Spinner("dots", style="cyan")
            if detail:
                row.detail = detail
                if phase == "wait_ssh":
                    self._endpoint = detail
            if phase in self._running:
                self._running.remove(phase)
            self._running.append(phase)

    def phase_finished(self, phase: str, seconds: float, ok: bool = True) -> None:
        with self._lock:
            row = self._row(phase, depth=len(self._running))
            row.runs = max(row.runs, 1)
            row.seconds += seconds
            row.status, row.note, row.spinner = ("done" if ok else "failed"), "", None
            if phase in self._running:
                self._running.remove(phase)

    def waiting(self, what: str, elapsed_sec: float, detail: str = "") -> None:
        with self._lock:
            if self._running:
                row = self._row(self._running[-1], depth=0)
                extra = f" - {detail}" if detail else ""
                row.note = f"waiting for {what} ({elapsed_sec:.0f}s){extra}"

    def pod_selected(self, pod: PodSelected) -> None:
        with self._lock:
            self._pod, self._pod_new = pod.pod_id, False
            if pod.gpu_type_id:
                where = f" @ {pod.datacenter_id}" if pod.datacenter_id else ""
                self._gpu = f"{pod.gpu_type_id}{where}"

    def log_line(self, line: str) -> None:
        with self._lock:
            self._log.append(line.rstrip("\n").rsplit("\r", 1)[-1])
            self._log_total += 1

    def cost(self, spent_usd: float, hourly_usd: float | None) -> None:
        with self._lock:
            self._spent = spent_usd
            if hourly_usd is not None:
                self._hourly = hourly_usd

    def info(self, message: str) -> None:
        self._above(message, "", "dim")

    def warning(self, message: str) -> None:
        with self._lock:
            self._warnings += 1
        self._above(message, "warning: ", "yellow")

    # -- internals ------------------------------------------------------------------------------

    def _above(self, message: str, label: str, style: str) -> None:
        """Print a line above the live area (never under the view's lock, see the module doc)."""
        from rich.text import Text

        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        line = Text.assemble((f"[{stamp}] ", "dim"), (label, f"bold {style}"), (message, style))
        self._console.print(line, soft_wrap=True)

    def _seed(self, name: str, depth: int) -> None:
        if all(row.name != name for row in self._rows):
            self._rows.append(_Row(name=name, depth=depth))

    def _row(self, name: str, *, depth: int) -> _Row:
        """The row of `name`; a phase seen for the first time goes after its parent's rows
        (when it runs inside another phase) or at the end."""
        for row in self._rows:
            if row.name == name:
                return row
        row = _Row(name=name, depth=depth)
        index = len(self._rows)
        if self._running:
            current = self._running[-1]
            parent = next((i for i, r in enumerate(self._rows) if r.name == current), None)
            if parent is not None:
                index, depth = parent + 1, self._rows[parent].depth
                while index < len(self._rows) and self._rows[index].depth > depth:
                    index += 1
        self._rows.insert(index, row)
        return row

    def _render(self) -> RenderableType:
        """The live area as the state is now (called whenever rich draws it)."""
        from rich.console import Group
        from rich.rule import Rule
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            now = self._stopped_at if self._stopped_at is not None else self._monotonic()
            final = self._stopped_at is not None
            elapsed = now - self._started_at if self._started_at is not None else 0.0

            header = Text.assemble(("stack ", "dim"), (self._stack or "?", "bold"))
            pod = self._pod or ("new, being created" if self._pod_new else "-")
            header.append("  pod ", "dim")
            header.append(pod, "bold" if self._pod else "dim")
            if self._gpu:
                header.append(f"  {self._gpu}", "")
            if self._endpoint:
                header.append(f"  ssh {self._endpoint}", "dim")

            phases = Table.grid(padding=(0, 1))
            phases.add_column(width=1, no_wrap=True)
            phases.add_column(no_wrap=True)
            phases.add_column(justify="right", no_wrap=True)
            phases.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            for row in self._rows:
                phases.add_row(*self._row_cells(row, now, final))

            money = Text()
            if self._spent is not None:
                money.append(_usd(self._spent), "bold")
                money.append(" spent (estimate)" if self._estimated else " spent", "dim")
                if self._cap is not None:
                    money.append(f" of a {_usd(self._cap)} cap", "dim")
            else:
                money.append("cost not measured yet", "dim")
                if self._cap is not None:
                    money.append(f" (cap {_usd(self._cap)})", "dim")
            if self._hourly is not None:
                money.append(" · ", "dim")
                money.append(f"${self._hourly:.2f}/hr")
            money.append(" · elapsed ", "dim")
            money.append(_clock(elapsed))
            if self._warnings:
                money.append(" · ", "dim")
                plural = "s" if self._warnings > 1 else ""
                money.append(f"{self._warnings} warning{plural}", "yellow")

            parts: list[RenderableType] = [header, phases, money]
            if self._log_total:
                room = self._console.height - len(self._rows) - 4
                shown = list(self._log)[-max(3, min(len(self._log), room)):]
                title = Text(f"job log: last {len(shown)} of {self._log_total} lines", "dim")
                parts.append(Rule(title, align="left", style="dim"))
                parts.extend(self._log_text(line) for line in shown)
        return Group(*parts)

    @staticmethod
    def _log_text(line: str) -> Text:
        from rich.text import Text

        return Text.from_ansi(line, no_wrap=True, overflow="ellipsis")  # colours kept, no markup

    @staticmethod
    def _row_cells(row: _Row, now: float, final: bool) -> tuple[RenderableType, ...]:
        from rich.text import Text

        name = Text("  " * row.depth + row.name)
        detail = Text(row.note or row.detail, style="yellow" if row.note else "dim")
        times = f" x{row.runs}" if row.runs > 1 else ""
        icon: RenderableType
        if row.status == "running" and not final and row.spinner is not None:
            icon, took = row.spinner, Text(_duration(row.seconds + now - row.started) + times)
            name.stylize("bold")
        elif row.status == "running":
            icon, took = Text("!", "bold yellow"), Text("interrupted", "yellow")
        elif row.status == "done":
            icon, took = Text("✓", "green"), Text(_duration(row.seconds) + times)
        elif row.status == "failed":
            icon, took = Text("✗", "bold red"), Text(_duration(row.seconds) + times, "red")
            name.stylize("red")
        else:
            icon = Text("-" if final else "·", "dim")
            took = Text("skipped" if final else "", "dim")
            name.stylize("dim")
        return icon, name, took, detail

