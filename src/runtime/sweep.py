"""The sweep driver: run every point of a sweep as its own stack instance, a few at a time.

Why threads in this process rather than one `runpod-deploy run` process per point: a point's
apply spends its time waiting (on the provider, on SSH, on the job), so threads cost nothing
while they wait, and the per-point start-up of a CLI process (imports, ~0.3 s) is not paid for
every point and every retry. Each point gets its own `Reporter` (`PointReporter`), which only
records into that point's row, so the lines of two points never interleave mid-line: the view
(`SweepView`) draws the rows from the main thread.

Each point is carried out by a `PointRunner` (the CLI's is the public `apply_stack` with the
point's variables). `--detach` is the same runner asking for a detached apply (a point
ends `detached`, its worst case still reserved against the fleet cap); `--attach` is a runner
over `attach_stack`, started from the rows of the `SweepRecord` (a point already final is
reported, not run). The record is written (atomically) to `<state dir>/sweeps/<sweep id>.json`,
and to a shared backend's `sweeps/<sweep id>.json`, whenever a point changes: another process,
or another machine, finds every point's identity, state file and run dirs in it.

Ctrl-C (or SIGTERM, which the CLI turns into one) in the main thread stops launching, then
raises `KeyboardInterrupt` inside each running apply (`PyThreadState_SetAsyncExc`), where the
executor treats it as it treats a Ctrl-C of `apply`: `on_failure`, journaled, a manifest. The
driver waits for every point to finish that, so every pod is accounted for when it returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.diagnostics import RunpodDeployError
from reconciler.sweep import FleetBudget, SweepPoint, is_transient
from runtime.reporter import PodSelected, Reporter

if TYPE_CHECKING:
    from reconciler.plan import Plan
    from runtime.backends import StateBackend
    from runtime.outcome import ApplyResult

__all__ = [
    "FINAL_STATUSES",
    "PointControl",
    "PointReporter",
    "PointRow",
    "PointRunner",
    "PointStatus",
    "SweepDriver",
    "SweepOptions",
    "SweepRecord",
    "SweepResult",
    "SweepView",
    "find_sweep_record",
    "new_sweep_id",
    "read_sweep_record",
    "rows_of_record",
    "sweep_record_key",
    "sweep_record_path",
    "sweeps_dir",
]


class PointStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOT_RUN = "not_run"
    INTERRUPTED = "interrupted"
    DETACHED = "detached"
    """`sweep --detach`: launched; the pod supervises the job; `sweep --attach` collects it."""


FINAL_STATUSES = frozenset({PointStatus.SUCCEEDED, PointStatus.FAILED, PointStatus.NOT_RUN,
                            PointStatus.INTERRUPTED})
_SPENDING = frozenset({PointStatus.RUNNING, PointStatus.DETACHED})
"""Points whose pod may still spend up to their worst case: a detached job runs on, unwatched."""


@dataclass(frozen=True)
class PointRow:
    """What is known of one point now: a row of the live table, the summary and the record."""

    point: SweepPoint
    status: PointStatus = PointStatus.PENDING
    phase: str = ""
    pod_id: str | None = None
    gpu: str | None = None
    started_at: float | None = None
    """`time.monotonic()` when its first attempt began (for the elapsed column)."""
    finished_at: float | None = None
    attempts: int = 0
    outcome: str | None = None
    """The last attempt's `RunOutcome` value (or why it did not run)."""
    detail: str = ""
    run_dir: str | None = None
    run_dirs: tuple[str, ...] = ()
    state_path: str | None = None
    stack_key: str | None = None
    spent_usd: float = 0.0
    """Finished attempts' cost plus the running attempt's spend so far."""
    worst_case_usd: float = 0.0
    """The running attempt's worst case (its plan's), reserved against the fleet cap."""

    def elapsed(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or now) - self.started_at


class SweepRecord:
    """The sweep as a file: `<state dir>/sweeps/<sweep id>.json`, rewritten atomically; with a
    shared state backend also `sweeps/<sweep id>.json` there, so that `sweep --status/--attach`
    work from another machine of the team."""

    def __init__(self, path: Path, header: Mapping[str, Any],
                 backend: StateBackend | None = None) -> None:
        self.path = path
        self.header = dict(header)
        self.backend = backend
        self.backend_error: str | None = None
        """Why the last copy to the backend failed (the local file is still written)."""

    def write(self, rows: Sequence[PointRow]) -> None:
        body = {**self.header, "points": [_row_json(r) for r in rows]}
        if self.backend is not None:
            from runtime.backends import BackendError

            try:
                self.backend.put(sweep_record_key(self.path.stem),
                                 (json.dumps(body, indent=2) + "\n").encode("utf-8"))
                self.backend_error = None
            except (BackendError, OSError) as exc:
                self.backend_error = str(exc)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _row_json(row: PointRow) -> dict[str, Any]:
    return {
        "index": row.point.index,
        "label": row.point.label,
        "variables": row.point.as_dict(),
        "status": row.status.value,
        "outcome": row.outcome,
        "attempts": row.attempts,
        "detail": row.detail,
        "run_dir": row.run_dir,
        "run_dirs": list(row.run_dirs),
        "state_path": row.state_path,
        "stack_key": row.stack_key,
        "pod_id": row.pod_id,
        "cost_usd": round(row.spent_usd, 4),
    }


def sweeps_dir(env: Mapping[str, str]) -> Path:
    """Where sweep records live: `$RUNPOD_DEPLOY_STATE_DIR/sweeps` (default
    `~/.local/state/runpod-deploy/sweeps`), beside the stacks' state files."""
    base = env.get("RUNPOD_DEPLOY_STATE_DIR") or os.path.join(
        env.get("HOME") or str(Path.home()), ".local", "state", "runpod-deploy")
    return Path(os.path.expanduser(base)) / "sweeps"


def sweep_record_path(env: Mapping[str, str], sweep_id: str) -> Path:
    return sweeps_dir(env) / f"{sweep_id}.json"


def sweep_record_key(sweep_id: str) -> str:
    """The sweep record's key under a shared state backend."""
    return f"sweeps/{sweep_id}.json"


def read_sweep_record(path: Path) -> dict[str, Any]:
    """A sweep record as written (for `--status`/`--attach` in another process)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{path} is not a sweep record")
    return data


def find_sweep_record(env: Mapping[str, str], sweep_id: str,
                      backend: StateBackend | None) -> dict[str, Any] | None:
    """The record of `sweep_id`: from the shared backend when one is in use (the team's copy),
    else (or when the backend has none) the local file; None when neither has it."""
    if backend is not None:
        found = backend.read(sweep_record_key(sweep_id))
        if found is not None:
            data = json.loads(found.data.decode("utf-8"))
            if isinstance(data, dict):
                return data
    path = sweep_record_path(env, sweep_id)
    return read_sweep_record(path) if path.is_file() else None


def rows_of_record(record: Mapping[str, Any]) -> tuple[PointRow, ...]:
    """The points of a written record as rows (what `--status` and `--attach` start from)."""
    rows = []
    for item in record.get("points", []):
        variables = tuple((str(k), str(v)) for k, v in dict(item.get("variables") or {}).items())
        rows.append(PointRow(
            point=SweepPoint(index=int(item["index"]), variables=variables),
            status=PointStatus(item.get("status") or "pending"),
            pod_id=item.get("pod_id"), attempts=int(item.get("attempts") or 0),
            outcome=item.get("outcome"), detail=str(item.get("detail") or ""),
            run_dir=item.get("run_dir"), run_dirs=tuple(item.get("run_dirs") or ()),
            state_path=item.get("state_path"), stack_key=item.get("stack_key"),
            spent_usd=float(item.get("cost_usd") or 0.0)))
    return tuple(rows)


def new_sweep_id(now: datetime | None = None) -> str:
    """`sw-20261206T142000Z-3fa9c1`: sortable by start, unique across machines."""
    moment = now or datetime.now(UTC)
    return f"sw-{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SweepOptions:
    max_parallel: int = 1
    retry: int = 0
    """Further attempts of a point after a transient failure."""
    cost_cap_usd: float | None = None
    retry_delay_sec: float = 0.0


class PointControl(Protocol):
    """What a runner tells the driver while a point's attempt runs."""

    def admit(self, plan: Plan) -> bool:
        """The plan of the attempt is made (under the instance's lock): may it start?"""
        ...

    def run_dir(self, path: Path) -> None:
        """The attempt's run dir exists (the run is about to start)."""
        ...


PointRunner = Callable[[SweepPoint, Reporter, PointControl], "ApplyResult | None"]
"""Carry out one attempt of a point; None when `admit` said no (nothing was created)."""


class SweepView(Protocol):
    def update(self, rows: Sequence[PointRow]) -> None:
        """The rows changed (called from the main thread, a few times a second at most)."""

    def note(self, message: str) -> None:
        """A line worth keeping (a warning, the budget stop, the interrupt)."""


@dataclass(frozen=True)
class SweepResult:
    sweep_id: str
    rows: tuple[PointRow, ...]
    interrupted: bool
    budget_stop: str | None
    record_path: Path

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        ok = (PointStatus.SUCCEEDED, PointStatus.DETACHED)
        return 0 if all(r.status in ok for r in self.rows) else 1

    @property
    def total_usd(self) -> float:
        return sum(r.spent_usd for r in self.rows)


class PointReporter(Reporter):
    """The executor's hooks for one point: they update that point's row, nothing else."""

    def __init__(self, driver: SweepDriver, index: int) -> None:
        self._driver = driver
        self._index = index
        self.base_usd = 0.0
        """What the point's earlier attempts cost; the executor reports this attempt's spend."""

    def start_attempt(self, base_usd: float) -> None:
        self.base_usd = base_usd

    def phase_started(self, phase: str, detail: str = "") -> None:
        self._driver.change(self._index, phase=phase)

    def pod_selected(self, pod: PodSelected) -> None:
        self._driver.change(self._index, pod_id=pod.pod_id, gpu=pod.gpu_type_id)

    def cost(self, spent_usd: float, hourly_usd: float | None) -> None:
        self._driver.change(self._index, spent_usd=self.base_usd + spent_usd)

    def warning(self, message: str) -> None:
        row = self._driver.row(self._index)
        self._driver.note(f"point {row.point.index} ({row.point.label}): warning: {message}")


class SweepDriver:
    """Runs the points: at most `max_parallel` at once, retries of transient failures, the fleet
    cap, Ctrl-C. The rows are the one shared state, changed under one lock."""

    def __init__(self, points: Sequence[SweepPoint], *, runner: PointRunner, options: SweepOptions,
                 record: SweepRecord, sweep_id: str, view: SweepView | None = None,
                 refresh_sec: float = 0.25, rows: Sequence[PointRow] | None = None) -> None:
        """`rows`: where the points stand (`--attach` starts from the record); a point already
        in a final status is reported as it is, not run."""
        if options.max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.sweep_id = sweep_id
        self.options = options
        self.runner = runner
        self.record = record
        self.view = view
        self.budget = FleetBudget(options.cost_cap_usd)
        self._rows = list(rows) if rows is not None else [PointRow(point=p) for p in points]
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._dirty = True
        self._stop = threading.Event()
        self._budget_stop: str | None = None
        self._in_apply: dict[int, int] = {}
        """point index -> thread id, while that point's runner runs (Ctrl-C goes there)."""
        self._refresh_sec = refresh_sec
        self._notes: list[str] = []

    # ----- the rows ------------------------------------------------------------------------
    def row(self, index: int) -> PointRow:
        with self._lock:
            return self._rows[index - 1]

    def rows(self) -> tuple[PointRow, ...]:
        with self._lock:
            return tuple(self._rows)

    def change(self, index: int, **changes: Any) -> None:
        with self._lock:
            self._rows[index - 1] = replace(self._rows[index - 1], **changes)
            self._dirty = True
            self._wake.notify_all()

    def note(self, message: str) -> None:
        with self._lock:
            self._notes.append(message)
            self._wake.notify_all()

    # ----- the fleet budget ----------------------------------------------------------------
    def _admit(self, index: int, plan: Plan) -> bool:
        """Under the driver's lock, so two points cannot both take the last of the cap."""
        worst = float(plan.cost.worst_case_usd)
        with self._lock:
            if self._stop.is_set():
                return False
            spent = sum(r.spent_usd for r in self._rows)
            reserve = sum(max(r.worst_case_usd - r.spent_usd, 0.0) for r in self._rows
                          if r.status in _SPENDING and r.point.index != index)
            if not self.budget.allows(spent_usd=spent, running_reserve_usd=reserve,
                                      next_worst_usd=worst):
                if self._budget_stop is None:
                    self._budget_stop = self.budget.explain(
                        spent_usd=spent, running_reserve_usd=reserve, next_worst_usd=worst)
                return False
            current = self._rows[index - 1]
            self._rows[index - 1] = replace(current, worst_case_usd=current.spent_usd + worst)
            self._dirty = True
            return True

    # ----- one point -------------------------------------------------------------------------
    def _run_point(self, index: int) -> None:
        reporter = PointReporter(self, index)
        driver = self

        class Control:
            def admit(self, plan: Plan) -> bool:
                return driver._admit(index, plan)

            def run_dir(self, path: Path) -> None:
                row = driver.row(index)
                known = row.run_dirs if str(path) in row.run_dirs else (*row.run_dirs, str(path))
                driver.change(index, run_dir=str(path), run_dirs=known)

        control = Control()
        point = self.row(index).point
        self.change(index, status=PointStatus.RUNNING, started_at=time.monotonic())
        try:
            while True:
                row = self.row(index)
                reporter.start_attempt(row.spent_usd)
                self.change(index, attempts=row.attempts + 1, phase="", pod_id=None, gpu=None)
                outcome, detail, result = self._attempt(index, point, reporter, control)
                row = self.row(index)
                cost = _attempt_cost(result)
                spent = row.spent_usd if cost is None else reporter.base_usd + cost
                updates: dict[str, Any] = {"outcome": outcome, "detail": detail,
                                           "spent_usd": spent, "worst_case_usd": 0.0}
                if result is not None:
                    if result.pod_id:
                        updates["pod_id"] = result.pod_id
                    self._tag_manifest(result, point)
                if outcome == "succeeded" and result is not None and result.detached:
                    # its job runs on: it keeps its worst case reserved against the fleet cap,
                    # and its cost is the attach's (that run's manifest counts it whole)
                    self.change(index, status=PointStatus.DETACHED, **{
                        **updates, "spent_usd": reporter.base_usd,
                        "worst_case_usd": row.worst_case_usd})
                    return
                if outcome == "succeeded":
                    self.change(index, status=PointStatus.SUCCEEDED, **updates)
                    return
                if outcome == "not_admitted":
                    self._not_admitted(index, detail)
                    return
                if outcome == "interrupted" or self._stop.is_set():
                    self.change(index, status=PointStatus.INTERRUPTED, **updates)
                    return
                events = _event_names(result)
                if result is None or not is_transient(outcome, events) or \
                        row.attempts > self.options.retry:
                    self.change(index, status=PointStatus.FAILED, **updates)
                    return
                self.change(index, status=PointStatus.RETRY_WAIT, **updates)
                self.note(f"point {index} ({point.label}): {outcome} is transient; attempt "
                          f"{row.attempts + 1} of {self.options.retry + 1}")
                if self._stop.wait(self.options.retry_delay_sec):
                    self.change(index, status=PointStatus.INTERRUPTED)
                    return
                self.change(index, status=PointStatus.RUNNING)
        finally:
            self.change(index, finished_at=time.monotonic())

    def _not_admitted(self, index: int, reason: str) -> None:
        """The attempt was not started (the fleet cap, or the sweep is stopping): a point that
        never ran is `not_run`; a retry that could not start leaves the last attempt's outcome."""
        row = self.row(index)
        attempts = row.attempts - 1
        stopping = self._stop.is_set()
        if attempts == 0:
            self.change(index, status=PointStatus.NOT_RUN, attempts=0, outcome="not_run",
                        worst_case_usd=0.0,
                        detail="the sweep was interrupted" if stopping else reason)
            return
        self.change(index, status=PointStatus.INTERRUPTED if stopping else PointStatus.FAILED,
                    attempts=attempts, worst_case_usd=0.0,
                    detail=f"{row.detail}; not retried: "
                           f"{'the sweep was interrupted' if stopping else reason}")

    def _attempt(self, index: int, point: SweepPoint, reporter: Reporter,
                 control: PointControl) -> tuple[str, str, ApplyResult | None]:
        """One attempt: (outcome, detail, result). Ctrl-C may arrive inside the runner only."""
        try:
            with self._lock:
                if self._stop.is_set():
                    return "interrupted", "interrupted before it started", None
                self._in_apply[index] = threading.get_ident()
            try:
                result = self.runner(point, reporter, control)
            finally:
                with self._lock:
                    self._in_apply.pop(index, None)
        except KeyboardInterrupt:
            return "interrupted", "interrupted before a pod existed", None
        except RunpodDeployError as exc:
            return "error", str(exc), None
        except Exception as exc:  # noqa: BLE001 - one point's surprise must not stop the others
            return "error", f"{type(exc).__name__}: {exc}", None
        if result is None:
            reason = self._budget_stop or "not started"
            return "not_admitted", reason, None
        return result.outcome.value, result.detail, result

    def _tag_manifest(self, result: ApplyResult, point: SweepPoint) -> None:
        """Record the sweep id and the point in the run's manifest (its variables as the state
        records them: a secret one masked)."""
        from runtime.rundir import load_manifest, write_manifest

        if result.manifest_path is None or result.run_dir is None:
            return
        identity = result.state.identity
        variables = dict(identity.variables or {}) if identity is not None else point.as_dict()
        try:
            manifest = load_manifest(result.manifest_path)
            write_manifest(result.run_dir, manifest.model_copy(update={
                "sweep_id": self.sweep_id, "sweep_point": variables}))
        except RunpodDeployError as exc:
            self.note(f"point {point.index}: could not record the sweep in its manifest: {exc}")

    # ----- the whole sweep ---------------------------------------------------------------------
    def run(self) -> SweepResult:
        """Run every point; returns when each has finished or was not started."""
        pending = [r.point.index for r in self._rows if r.status not in FINAL_STATUSES]
        workers: dict[int, threading.Thread] = {}
        interrupted = False
        self._flush()
        try:
            while pending or workers:
                for index, thread in list(workers.items()):
                    if not thread.is_alive():
                        thread.join()
                        del workers[index]
                while pending and len(workers) < self.options.max_parallel and \
                        self._budget_stop is None and not self._stop.is_set():
                    index = pending.pop(0)
                    thread = threading.Thread(target=self._run_point, args=(index,),
                                              name=f"sweep-point-{index}", daemon=True)
                    workers[index] = thread
                    thread.start()
                if pending and (self._budget_stop is not None or self._stop.is_set()):
                    self._not_run(pending, self._budget_stop or "the sweep was interrupted")
                    pending = []
                self._flush()
                with self._wake:
                    if workers and not self._dirty and not self._notes:
                        self._wake.wait(self._refresh_sec)
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt(pending, workers)
        self._flush()
        rows = self.rows()
        return SweepResult(sweep_id=self.sweep_id, rows=rows, interrupted=interrupted,
                           budget_stop=self._budget_stop, record_path=self.record.path)

    def _not_run(self, indexes: Sequence[int], why: str) -> None:
        for index in indexes:
            self.change(index, status=PointStatus.NOT_RUN, outcome="not_run", detail=why)

    def _interrupt(self, pending: Sequence[int], workers: Mapping[int, threading.Thread]) -> None:
        """Stop launching; interrupt each running apply once; wait for all of them to finish
        their lifecycle (a second Ctrl-C does not cut that short: pods would be left)."""
        self._stop.set()
        self._not_run(pending, "the sweep was interrupted")
        self.note("interrupted: stopping every running point (each applies its on_failure); "
                  "wait for them to finish")
        with self._lock:
            targets = dict(self._in_apply)
        for thread_id in targets.values():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                       ctypes.py_object(KeyboardInterrupt))
        for thread in workers.values():
            while thread.is_alive():
                try:
                    thread.join(self._refresh_sec)
                    self._flush()
                except KeyboardInterrupt:
                    self.note("still stopping the running points; their pods are being released")

    def _flush(self) -> None:
        """Persist the record and redraw the view when something changed (main thread)."""
        with self._lock:
            dirty, self._dirty = self._dirty, False
            notes, self._notes = self._notes, []
            rows = tuple(self._rows)
        if dirty:
            self.record.write(rows)
        if self.view is not None:
            for message in notes:
                self.view.note(message)
            if dirty:
                self.view.update(rows)


def _attempt_cost(result: ApplyResult | None) -> float | None:
    """What the attempt's pod cost: the manifest's estimate (wall time x the real $/hr)."""
    if result is None or result.manifest_path is None:
        return None
    from runtime.rundir import load_manifest

    try:
        cost = load_manifest(result.manifest_path).estimated_cost_usd
    except RunpodDeployError:
        return None
    return float(cost) if cost is not None else None


def _event_names(result: ApplyResult | None) -> frozenset[str]:
    if result is None or result.run_dir is None:
        return frozenset()
    from runtime.rundir import load_events

    try:
        return frozenset(e.event for e in load_events(result.run_dir / "events.jsonl") if e.event)
    except (RunpodDeployError, OSError):
        return frozenset()
