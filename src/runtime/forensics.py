"""Read-only questions about past runs: what ran, what it cost, what happened, what changed.

Each command of the forensic CLI is a pair here: a function that reads run dirs into typed rows
(I/O, lenient: one corrupt run never hides the others) and a pure `format_*` function that
turns the rows into the exact text the original runpod-deploy printed, so scripts written
against its output keep working. The Python API reuses the same rows.

Nothing here writes, deletes or talks to RunPod. "Now" (for `--since`) is a parameter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from runtime.rundir import (
    EVENTS_FILENAME,
    MANIFEST_FILENAME,
    RUNS_DIRNAME,
    EventRecord,
    RunDirError,
    RunManifest,
    load_events,
    load_manifest,
)

__all__ = [
    "COMPARED_ARTIFACT_FIELDS",
    "COMPARED_FIELDS",
    "COMPARED_METADATA_FIELDS",
    "EventFilter",
    "FieldComparison",
    "ManifestRollup",
    "ManifestTotals",
    "QueriedEvent",
    "RunListing",
    "collect_manifests",
    "compare_manifests",
    "format_comparison",
    "format_event_rows",
    "format_events_timeline",
    "format_manifest_rollup",
    "format_manifest_summary",
    "format_run_table",
    "list_runs",
    "load_events",
    "load_manifest",
    "parse_event_filter",
    "parse_since",
    "query_events",
    "walk_run_dirs",
]

logger = logging.getLogger(__name__)


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


def walk_run_dirs(project_root: Path) -> tuple[Path, ...]:
    """Run dirs under `<project_root>/artifacts/runpod/` that hold a manifest, oldest first.

    Directory names sort chronologically (see `runtime.rundir.create_run_dir`).
    """
    base = project_root / RUNS_DIRNAME
    if not base.is_dir():
        return ()
    return tuple(
        child
        for child in sorted(base.iterdir())
        if child.is_dir() and (child / MANIFEST_FILENAME).is_file()
    )


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise RunDirError(f"{what} not found: {path}")


# --------------------------------------------------------------------------------------------
# manifest-summary


def format_manifest_summary(manifest: RunManifest) -> str:
    """The key/value summary of one manifest (v1, v2 or ours).

    Values print as Python's `str()` of the JSON value (`None`, `True`, `8.0`), as the original
    printed them; our `outcome` adds a line only when the manifest has one.
    """
    m = manifest
    lines = [
        f"job:           {m.job_name}",
        f"run_id:        {m.run_id}",
        f"failed:        {m.failed}",
        f"schema:        {m.schema_version}",
        f"pod_id:        {m.pod_id}",
        f"gpu:           {m.gpu_id}",
        f"datacenter:    {m.datacenter_id}",
        f"image:         {m.image}",
        f"storage:       {m.storage_mode}",
        f"wall_time_sec: {m.wall_time_sec}",
        f"price_usd/hr:  {m.gpu_price_per_hour_usd} ({m.gpu_price_source})",
        f"est_cost_usd:  {m.estimated_cost_usd}",
        f"cost_cap_usd:  {m.cost_cap_usd}",
        f"final_state:   {m.pod_final_state}",
    ]
    if m.outcome is not None:
        lines.append(f"outcome:       {m.outcome}")
    metadata = m.deploy_metadata.present_fields()
    if metadata:
        lines.append("deploy_metadata:")
        lines.extend(f"  {key}: {value}" for key, value in metadata.items())
    if m.artifacts:
        lines.append("artifacts:")
        lines.extend(
            f"  - {art.label}: status={art.status} duration_sec={art.duration_sec}"
            for art in m.artifacts
        )
    if m.telemetry_files:
        lines.append("telemetry_files:")
        lines.extend(f"  - {name}" for name in m.telemetry_files)
    return "\n".join(lines)


class ManifestTotals(_Row):
    """The `== TOTALS ==` footer. `manifests` counts unreadable files too: they are runs."""

    manifests: int
    failed: int
    wall_time_sec: float | None
    estimated_cost_usd: float | None


class ManifestRollup(_Row):
    """Every manifest found under a root, in path order, and the files that could not be read."""

    readable: tuple[tuple[Path, RunManifest], ...]
    unreadable: tuple[Path, ...]

    @property
    def totals(self) -> ManifestTotals:
        manifests = [manifest for _, manifest in self.readable]
        walls = [m.wall_time_sec for m in manifests if m.wall_time_sec is not None]
        costs = [m.estimated_cost_usd for m in manifests if m.estimated_cost_usd is not None]
        return ManifestTotals(
            manifests=len(self.readable) + len(self.unreadable),
            failed=sum(1 for m in manifests if m.failed),
            wall_time_sec=float(sum(walls)) if walls else None,
            estimated_cost_usd=float(sum(costs)) if costs else None,
        )

    def to_json_value(self) -> dict[str, Any]:
        return {
            "manifests": [
                {"path": str(path), "manifest": manifest.present_fields()}
                for path, manifest in self.readable
            ],
            "unreadable": [str(path) for path in self.unreadable],
            "totals": self.totals.model_dump(),
        }


def collect_manifests(root: Path) -> ManifestRollup:
    """Every `runpod_deploy_pull_manifest.json` under `root`, at any depth (a sweep's tree)."""
    _require_dir(root, "--root directory")
    readable: list[tuple[Path, RunManifest]] = []
    unreadable: list[Path] = []
    for path in sorted(root.rglob(MANIFEST_FILENAME)):
        try:
            readable.append((path, load_manifest(path)))
        except RunDirError as error:
            logger.warning("%s; skipped", error)
            unreadable.append(path)
    return ManifestRollup(readable=tuple(readable), unreadable=tuple(unreadable))


def format_manifest_rollup(rollup: ManifestRollup) -> str:
    """One `== <path> ==` block per readable manifest, then the `== TOTALS ==` footer."""
    blocks = [f"== {path} ==\n{format_manifest_summary(m)}" for path, m in rollup.readable]
    totals = rollup.totals
    footer = [
        "== TOTALS ==",
        f"manifests:        {totals.manifests}",
        f"failed:           {totals.failed}",
    ]
    if totals.wall_time_sec is not None:
        footer.append(f"wall_time_sec:    {totals.wall_time_sec:.1f}")
    if totals.estimated_cost_usd is not None:
        footer.append(f"estimated_cost:   ${totals.estimated_cost_usd:.2f}")
    return "\n\n".join([*blocks, "\n".join(footer)])


# --------------------------------------------------------------------------------------------
# events and events-query


def format_events_timeline(events: Sequence[EventRecord]) -> str:
    """One line per event, `[+M:SS] name k=v ...`, offset from the first event with a time.

    Offsets of an hour or more read `[+H:MM:SS]`; an event without a readable time reads
    `[+--:--]` and keeps its place.
    """
    anchor = next((e.timestamp for e in events if e.timestamp is not None), None)
    lines = []
    for event in events:
        moment = event.timestamp
        if anchor is None or moment is None:
            offset = "[+--:--]"
        else:
            offset = _format_offset((moment - anchor).total_seconds())
        lines.append(f"{offset} {event.event or '?'} {_format_fields(event.fields)}".rstrip())
    return "\n".join(lines)


def _format_offset(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(int(abs(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"[{sign}{hours}:{minutes:02d}:{secs:02d}]"
    return f"[{sign}{minutes}:{secs:02d}]"


def _format_fields(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={_format_field_value(value)}" for key, value in fields.items())


def _format_field_value(value: object) -> str:
    """Strings holding a space or a quote are wrapped in double quotes (not escaped), as before."""
    if isinstance(value, str) and (" " in value or '"' in value):
        return f'"{value}"'
    return str(value)


class EventFilter(_Row):
    """`--filter KEY=VALUE`: the event's KEY, turned to text with `str()`, must equal VALUE."""

    key: str
    value: str

    def matches(self, event: EventRecord) -> bool:
        actual = event.present_fields().get(self.key)
        return actual is not None and str(actual) == self.value


def parse_event_filter(text: str) -> EventFilter:
    """Parse `KEY=VALUE`; KEY must be an identifier (an event field name). Raises ValueError."""
    key, equals, value = text.partition("=")
    if not equals:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    if not key.isidentifier():
        raise ValueError(f"the key must be a field name (an identifier), got {key!r}")
    return EventFilter(key=key, value=value)


_SINCE = re.compile(r"(\d+)([smhd])")
_SINCE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> timedelta:
    """Parse `30s`, `15m`, `6h`, `7d`: a whole number and one unit. Raises ValueError."""
    match = _SINCE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"expected a whole number and one unit of s, m, h or d (30m, 7d), got {text!r}"
        )
    return timedelta(**{_SINCE_UNITS[match.group(2)]: int(match.group(1))})


class QueriedEvent(_Row):
    """An event found by `events-query`, with the name of the run dir it came from."""

    run_dir: str
    event: EventRecord

    def to_json_value(self) -> dict[str, Any]:
        return {**self.event.present_fields(), "run_dir": self.run_dir}


def query_events(
    root: Path,
    *,
    filters: Iterable[EventFilter] = (),
    since: timedelta | None = None,
    now: datetime,
) -> tuple[QueriedEvent, ...]:
    """Events of every run under `root` (any depth) that match all filters and the window.

    With `since`, an event is kept only if its time is readable and no older than `now - since`.
    """
    _require_dir(root, "--root directory")
    wanted = tuple(filters)
    cutoff = None if since is None else now - since
    found = []
    for events_path in sorted(root.rglob(EVENTS_FILENAME)):
        for event in load_events(events_path):
            if cutoff is not None and (event.timestamp is None or event.timestamp < cutoff):
                continue
            if all(condition.matches(event) for condition in wanted):
                found.append(QueriedEvent(run_dir=events_path.parent.name, event=event))
    return tuple(found)


def format_event_rows(rows: Sequence[QueriedEvent]) -> str:
    """`[<ts_utc as written>] <run dir> <event> k=v ...`, one line per event."""
    lines = []
    for row in rows:
        fields = {key: value for key, value in row.event.fields.items() if key != "run_dir"}
        head = f"[{row.event.ts_utc or ''}] {row.run_dir} {row.event.event or '?'}"
        lines.append(f"{head} {_format_fields(fields)}".rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# ls-runs


class RunListing(_Row):
    """One line of `ls-runs`; the JSON keys are the original's."""

    timestamp: str
    job: str | None
    pod_id: str | None
    gpu_id: str | None
    datacenter_id: str | None
    wall_time_sec: int | float | None
    failed: bool | None
    estimated_cost_usd: int | float | None


def list_runs(project_root: Path, *, limit: int | None = None) -> tuple[RunListing, ...]:
    """The runs under the project, oldest first; `limit` keeps the most recent N run dirs."""
    run_dirs = walk_run_dirs(project_root)
    if limit is not None:
        run_dirs = run_dirs[-limit:] if limit > 0 else ()
    listings = []
    for run_dir in run_dirs:
        try:
            manifest = load_manifest(run_dir)
        except RunDirError as error:
            logger.warning("%s; skipped", error)
            continue
        listings.append(
            RunListing(
                timestamp=run_dir.name,
                job=manifest.job_name,
                pod_id=manifest.pod_id,
                gpu_id=manifest.gpu_id,
                datacenter_id=manifest.datacenter_id,
                wall_time_sec=manifest.wall_time_sec,
                failed=manifest.failed,
                estimated_cost_usd=manifest.estimated_cost_usd,
            )
        )
    return tuple(listings)


_RUN_TABLE_HEADERS = ("timestamp", "job", "pod_id", "gpu", "dc", "wall_s", "failed", "est_$")


def format_run_table(rows: Sequence[RunListing]) -> str:
    """A left-aligned table, columns two spaces apart (the last one padded too, as before);
    unknown numbers and flags print `—`."""
    cells = [
        (
            row.timestamp,
            row.job or "",
            row.pod_id or "",
            row.gpu_id or "",
            row.datacenter_id or "",
            "—" if row.wall_time_sec is None else f"{row.wall_time_sec:.0f}",
            "—" if row.failed is None else ("Y" if row.failed else "N"),
            "—" if row.estimated_cost_usd is None else f"${row.estimated_cost_usd:.2f}",
        )
        for row in rows
    ]
    widths = [
        max(len(header), *(len(line[index]) for line in cells))
        for index, header in enumerate(_RUN_TABLE_HEADERS)
    ]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in (_RUN_TABLE_HEADERS, *cells)
    )


# --------------------------------------------------------------------------------------------
# grouping by sweep (`ls-runs --by-sweep`, `manifest-summary --root DIR --by-sweep`)


class SweepGroup(_Row):
    """The runs of one `runpod-deploy sweep` (or, with `sweep_id` None, those of no sweep)."""

    sweep_id: str | None
    runs: tuple[tuple[str, dict[str, str] | None, RunManifest], ...]
    """(where: the run dir name or the manifest path, the point's variables, the manifest)."""

    @property
    def totals(self) -> ManifestTotals:
        manifests = [m for _, _, m in self.runs]
        walls = [m.wall_time_sec for m in manifests if m.wall_time_sec is not None]
        costs = [m.estimated_cost_usd for m in manifests if m.estimated_cost_usd is not None]
        return ManifestTotals(
            manifests=len(manifests),
            failed=sum(1 for m in manifests if m.failed),
            wall_time_sec=float(sum(walls)) if walls else None,
            estimated_cost_usd=float(sum(costs)) if costs else None,
        )

    def to_json_value(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "runs": [{"run": where, "point": point, "outcome": m.outcome.value if m.outcome else None,
                      "failed": m.failed, "pod_id": m.pod_id, "gpu_id": m.gpu_id,
                      "wall_time_sec": m.wall_time_sec, "estimated_cost_usd": m.estimated_cost_usd}
                     for where, point, m in self.runs],
            "totals": self.totals.model_dump(),
        }


def group_by_sweep(runs: Sequence[tuple[str, RunManifest]]) -> tuple[SweepGroup, ...]:
    """Runs grouped by the sweep their manifest records, sweeps in the order of their first
    run, the runs of no sweep last."""
    groups: dict[str | None, list[tuple[str, dict[str, str] | None, RunManifest]]] = {}
    for where, manifest in runs:
        groups.setdefault(manifest.sweep_id, []).append((where, manifest.sweep_point, manifest))
    order = [k for k in groups if k is not None] + ([None] if None in groups else [])
    return tuple(SweepGroup(sweep_id=k, runs=tuple(groups[k])) for k in order)


def runs_of_project(project_root: Path, *, limit: int | None = None) -> tuple[tuple[str, RunManifest], ...]:
    """(run dir name, manifest) of each readable run of the project, oldest first."""
    run_dirs = walk_run_dirs(project_root)
    if limit is not None:
        run_dirs = run_dirs[-limit:] if limit > 0 else ()
    found = []
    for run_dir in run_dirs:
        try:
            found.append((run_dir.name, load_manifest(run_dir)))
        except RunDirError as error:
            logger.warning("%s; skipped", error)
    return tuple(found)


def format_sweep_groups(groups: Sequence[SweepGroup]) -> str:
    """One block per sweep: a header with its totals, then a line per run with its point."""
    blocks = []
    for group in groups:
        totals = group.totals
        cost = "—" if totals.estimated_cost_usd is None else f"${totals.estimated_cost_usd:.2f}"
        title = f"sweep {group.sweep_id}" if group.sweep_id else "not in a sweep"
        lines = [f"== {title}: {totals.manifests} runs, {totals.failed} failed, {cost} =="]
        width = max(len(where) for where, _, _ in group.runs)
        for where, point, manifest in group.runs:
            label = ",".join(f"{k}={v}" for k, v in (point or {}).items()) or "-"
            outcome = manifest.outcome.value if manifest.outcome else \
                ("failed" if manifest.failed else "—")
            est = "—" if manifest.estimated_cost_usd is None else f"${manifest.estimated_cost_usd:.2f}"
            lines.append(f"{where.ljust(width)}  {label}  {outcome}  {manifest.pod_id or ''}  {est}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------------------------
# compare-runs

COMPARED_FIELDS = (
    "schema_version",
    "failed",
    "job_name",
    "gpu_id",
    "datacenter_id",
    "gpu_price_per_hour_usd",
    "gpu_price_source",
    "wall_time_sec",
    "estimated_cost_usd",
    "pod_id",
    "pod_final_state",
    "image",
    "storage_mode",
)
COMPARED_METADATA_FIELDS = (
    "local_git_sha",
    "local_git_dirty",
    "local_git_branch",
    "payload_lockfile",
    "payload_lockfile_sha256",
    "remote_python_version",
    "remote_uname",
)
COMPARED_ARTIFACT_FIELDS = ("status", "bytes_transferred", "duration_sec")


class FieldComparison(_Row):
    """One row of `compare-runs`: a field's value in run A and in run B."""

    field: str
    a: Any
    b: Any

    @property
    def equal(self) -> bool:
        return bool(self.a == self.b)

    def to_json_value(self) -> dict[str, Any]:
        return {"field": self.field, "a": self.a, "b": self.b, "equal": self.equal}


def compare_manifests(a: RunManifest, b: RunManifest) -> tuple[FieldComparison, ...]:
    """The original's field list, then deploy metadata, then each artifact label (sorted)."""
    rows = [
        FieldComparison(field=name, a=_value(a, name), b=_value(b, name))
        for name in COMPARED_FIELDS
    ]
    rows.extend(
        FieldComparison(
            field=f"deploy_metadata.{name}",
            a=_value(a.deploy_metadata, name),
            b=_value(b.deploy_metadata, name),
        )
        for name in COMPARED_METADATA_FIELDS
    )
    a_artifacts = {art.label: art for art in a.artifacts}
    b_artifacts = {art.label: art for art in b.artifacts}
    for label in sorted(a_artifacts.keys() | b_artifacts.keys()):
        rows.extend(
            FieldComparison(
                field=f"artifact[{label}].{name}",
                a=_value(a_artifacts.get(label), name),
                b=_value(b_artifacts.get(label), name),
            )
            for name in COMPARED_ARTIFACT_FIELDS
        )
    return tuple(rows)


def _value(record: BaseModel | None, name: str) -> Any:
    """A declared or unknown (kept) field of a record, as its JSON value; None if absent."""
    if record is None:
        return None
    return record.model_dump(mode="json").get(name)


def format_comparison(
    a_path: Path,
    b_path: Path,
    a: RunManifest,
    b: RunManifest,
    rows: Sequence[FieldComparison],
) -> str:
    """`field  a == b` when equal, `field  a  →  b` when not; `—` for a missing value."""
    width = max(len(row.field) for row in rows) + 2
    lines = [
        "diff between two manifests:",
        f"  a: {a_path}  ({a.job_name})",
        f"  b: {b_path}  ({b.job_name})",
        "",
    ]
    for row in rows:
        joiner = " == " if row.equal else "  →  "
        lines.append(f"  {row.field:<{width}}{_compare_cell(row.a)}{joiner}{_compare_cell(row.b)}")
    return "\n".join(lines)


def _compare_cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)
