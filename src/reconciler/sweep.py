"""A sweep's points and its policies, as pure functions: the matrix expanded into points, which
run outcomes are worth another attempt, and whether the fleet budget lets one more point start.

A point is one set of variable values; run with them, the stack is an instance of its own
(`reconciler.identity.stack_instance`), with its own state, lock and pods, whatever the
template's `name`. The driver (`runtime.sweep`) does the running; nothing here does I/O.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.diagnostics import SpecError, error

__all__ = [
    "TRANSIENT_OUTCOMES",
    "FleetBudget",
    "SweepPoint",
    "combine_points",
    "expand_matrix",
    "is_transient",
    "parse_matrix_file",
]

MAX_POINTS = 10_000
"""More points than this is a typo in a matrix (or a runaway product), not a sweep."""


@dataclass(frozen=True, order=True)
class SweepPoint:
    """One point of a sweep: its position (from 1) and its variables, in the order given."""

    index: int
    variables: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """`seed=1,lr=1e-4`: how the point is named in tables, lines and records."""
        return ",".join(f"{key}={value}" for key, value in self.variables) or "(no variables)"

    @property
    def cli_vars(self) -> tuple[str, ...]:
        """The point as `--var KEY=VALUE` arguments."""
        return tuple(f"{key}={value}" for key, value in self.variables)

    def as_dict(self) -> dict[str, str]:
        return dict(self.variables)


def _axis(text: str) -> tuple[str, tuple[str, ...]]:
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not key.isidentifier():
        raise SpecError([error(f"--matrix {text!r} is not NAME=V1,V2,...",
                               detail="expected e.g. --matrix seed=1,2,3", field_path="--matrix")])
    items = tuple(v.strip() for v in values.split(","))
    if any(not v for v in items):
        raise SpecError([error(f"--matrix {text!r} has an empty value",
                               detail="expected comma-separated, non-empty values",
                               field_path=f"--matrix {key}")])
    if len(set(items)) != len(items):
        raise SpecError([error(f"--matrix {text!r} repeats a value", field_path=f"--matrix {key}")])
    return key, items


def expand_matrix(axes: Sequence[str]) -> tuple[tuple[tuple[str, str], ...], ...]:
    """The cartesian product of `--matrix NAME=V1,V2` axes, first axis slowest (as nested
    loops in the order given); `()` gives the one empty combination."""
    parsed = [_axis(text) for text in axes]
    names = [name for name, _ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError([error(f"--matrix {repeated[0]} is given twice",
                               detail="give every value of a variable in one --matrix",
                               field_path=f"--matrix {repeated[0]}")])
    return tuple(tuple(zip(names, combo, strict=True))
                 for combo in itertools.product(*(values for _, values in parsed)))


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def parse_matrix_file(text: str, *, source: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A `--matrix-file`: a YAML (or JSON, which is YAML) list of maps of variable values."""
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SpecError([error(f"{source}: not valid YAML/JSON{where}",
                               detail="expected a list of maps, e.g. - {seed: 1, lr: 1e-4}",
                               field_path="--matrix-file")]) from None
    if not isinstance(data, list) or not data:
        raise SpecError([error(f"{source}: expected a non-empty list of variable maps",
                               detail="e.g. [{\"seed\": 1}, {\"seed\": 2}]",
                               field_path="--matrix-file")])
    rows: list[tuple[tuple[str, str], ...]] = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, Mapping) or not item:
            raise SpecError([error(f"{source}: item {number} is not a map of variables",
                                   detail=f"got {json.dumps(item, default=str)[:80]}",
                                   field_path=f"--matrix-file[{number}]")])
        row: list[tuple[str, str]] = []
        for key, value in item.items():
            text_value = _scalar(value)
            if not isinstance(key, str) or not key.isidentifier() or text_value is None:
                raise SpecError([error(f"{source}: item {number}: {key!r} must be a variable "
                                       "name with a scalar value",
                                       detail=f"got {key!r}: {value!r}"[:120],
                                       field_path=f"--matrix-file[{number}].{key}")])
            row.append((key, text_value))
        rows.append(tuple(row))
    return tuple(rows)


def combine_points(file_rows: Iterable[tuple[tuple[str, str], ...]] | None,
                   matrix: Sequence[tuple[tuple[str, str], ...]]) -> tuple[SweepPoint, ...]:
    """Every file row (or the one empty row) crossed with the `--matrix` product, numbered.
    A variable in both, or two equal points, is refused: one would silently win."""
    rows = tuple(file_rows) if file_rows is not None else ((),)
    points: list[SweepPoint] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for row in rows:
        for combo in matrix:
            both = sorted({k for k, _ in row} & {k for k, _ in combo})
            if both:
                raise SpecError([error(f"variable '{both[0]}' is set by both --matrix-file and "
                                       "--matrix", field_path=f"--matrix {both[0]}")])
            variables = row + combo
            canonical = tuple(sorted(variables))
            if canonical in seen:
                label = ",".join(f"{k}={v}" for k, v in variables)
                raise SpecError([error(f"point {label} is given twice",
                                       detail="every point must be a distinct set of values",
                                       field_path="--matrix-file")])
            seen.add(canonical)
            points.append(SweepPoint(index=len(points) + 1, variables=variables))
            if len(points) > MAX_POINTS:
                raise SpecError([error(f"the sweep has more than {MAX_POINTS:,} points",
                                       field_path="--matrix")])
    if points == [SweepPoint(index=1, variables=())]:
        raise SpecError([error("a sweep needs points: give --matrix NAME=V1,V2 or --matrix-file",
                               field_path="--matrix")])
    return tuple(points)


TRANSIENT_OUTCOMES = frozenset({"pod_killed", "provisioning_failed"})
"""Run outcomes (`RunOutcome` values) that say nothing about the job itself: the pod was taken
away (a spot reclaim) or no GPU could be had (capacity). Another attempt may well succeed."""


def is_transient(outcome: str, event_names: frozenset[str]) -> bool:
    """Whether a run that ended in `outcome` is worth another attempt.

    `pod_killed` and `provisioning_failed` always are. A `job_failed` is when the job never
    reached a verdict (no `job_finished` and no `failure_marker_seen` event): the SSH (or rsync)
    link was lost, not the job. Budget, runtime, a failing job, a failed setup command or a
    missing artifact are the job's own result: retrying would only spend again."""
    if outcome in TRANSIENT_OUTCOMES:
        return True
    return outcome == "job_failed" and not event_names & {"job_finished", "failure_marker_seen"}


@dataclass(frozen=True)
class FleetBudget:
    """The sweep's `--cost-cap-usd`: the fleet's spend (the real $/hr of every pod times its
    time) may not pass it. A point starts only if the spend so far, what the running points may
    still spend (their worst case less what they spent), and the new point's worst case fit."""

    cap_usd: float | None

    def allows(self, *, spent_usd: float, running_reserve_usd: float, next_worst_usd: float) -> bool:
        if self.cap_usd is None:
            return True
        return spent_usd + running_reserve_usd + next_worst_usd <= self.cap_usd + 1e-9

    def explain(self, *, spent_usd: float, running_reserve_usd: float, next_worst_usd: float) -> str:
        """Why a point was not started, in one line."""
        return (f"fleet cap ${self.cap_usd:.2f}: spent ${spent_usd:.4f}, running points may "
                f"still spend ${running_reserve_usd:.2f}, the next point's worst case is "
                f"${next_worst_usd:.2f}")
