"""What differs between the pod a stack wants and the pod that exists, as `FieldChange`s, and
the drift report over many stacks built from their plans.

deepdiff does the comparison; its types stay in here. Only fields that force a new pod are
compared (image, GPU type, datacenter, cloud type, storage); a value the provider did not
report and the state does not record is not compared (unknown is not drift).

The report (`DriftReport`) reads each stack's plan as a verdict (in sync, drifted, pod missing,
pending operation) and adds the pods of the account that no state accounts for (orphans), with
what they cost per day. It is built from values only: the shell lists the account once, plans
every stack against that one listing and hands the plans in. The text, markdown and JSON views
are pure functions of the report (docs/drift.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from reconciler.desired import DesiredPod
from reconciler.observed import ObservedPod, PodStatus
from reconciler.plan import FieldChange, Plan, Reason
from reconciler.state import PodRecord, StackState

__all__ = [
    "DRIFT_FORMAT_VERSION",
    "POD_NAME_SHAPE",
    "REPLACE_FIELDS",
    "DriftReport",
    "DriftVerdict",
    "OrphanedPod",
    "SkippedPath",
    "StackDrift",
    "account_orphans",
    "actual_facts",
    "desired_facts",
    "field_changes",
    "pod_usd_per_day",
    "pod_usd_per_hour",
    "reason_for",
    "render_drift_json",
    "render_drift_markdown",
    "render_drift_text",
    "stack_drift",
    "stack_failure",
]

REPLACE_FIELDS = ("image", "gpu_type_id", "datacenter_id", "cloud_type", "storage")
_REASONS = {"image": Reason.IMAGE_DRIFT, "gpu_type_id": Reason.GPU_DRIFT,
            "datacenter_id": Reason.DATACENTER_DRIFT, "cloud_type": Reason.CLOUD_TYPE_DRIFT,
            "storage": Reason.STORAGE_DRIFT}
_KEY = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def actual_facts(pod: ObservedPod | None, record: PodRecord | None) -> dict[str, Any]:
    """What is known of the existing pod: the provider's word first, then the state's."""
    def pick(observed: Any, recorded: Any) -> Any:
        return observed if observed is not None else recorded

    o = pod
    r = record
    cloud = pick(o.cloud_type if o else None, r.cloud_type if r else None)
    facts: dict[str, Any] = {
        "image": pick(o.image if o else None, r.image if r else None),
        "gpu_type_id": pick(o.gpu_type_id if o else None, r.gpu_type_id if r else None),
        "datacenter_id": pick(o.datacenter_id if o else None, r.datacenter_id if r else None),
        "cloud_type": cloud.value if cloud is not None else None,
        "storage": {
            "volume_gb": pick(o.volume_gb if o else None, r.volume_gb if r else None),
            "volume_mount_path": o.volume_mount_path if o else None,
            "container_disk_gb": o.container_disk_gb if o else None,
            "network_volume_id": pick(o.network_volume_id if o else None,
                                      r.network_volume_id if r else None),
            "mode": r.storage_mode if r else None,
        },
    }
    facts["storage"] = {k: v for k, v in facts["storage"].items() if v is not None}
    return {k: v for k, v in facts.items() if v is not None and v != {}}


def desired_facts(desired: DesiredPod, actual: dict[str, Any]) -> dict[str, Any]:
    """The same shape as `actual`, limited to the keys known there. A GPU or datacenter that is
    one of the candidates matches; otherwise the first candidate is what a new pod would get.
    A pod on a network volume that the stack does not name (or no longer names: the volume was
    deleted and made again under the same name) is drift, and so is a pod created with the
    other storage mode (as the state recorded it); a volume that was not looked up is unknown,
    and unknown is not drift."""
    gpu = actual.get("gpu_type_id")
    dc = actual.get("datacenter_id")
    want: dict[str, Any] = {
        "image": desired.image,
        "gpu_type_id": gpu if gpu in desired.gpu_type_ids else _one_of(desired.gpu_type_ids),
        "datacenter_id": dc if dc in desired.datacenter_ids else _one_of(desired.datacenter_ids),
        "cloud_type": desired.cloud_type.value,
    }
    storage: dict[str, Any] = {
        "volume_gb": desired.volume_gb if desired.volume_gb is not None else 0,
        "volume_mount_path": desired.volume_mount_path,
        "container_disk_gb": desired.container_disk_gb,
        "network_volume_id": None,
        "mode": desired.storage_mode,
    }
    known = actual.get("storage", {})
    if desired.storage_mode == "network_volume":
        # The pod's own volume size means nothing on a network volume: not compared.
        storage["volume_gb"] = known.get("volume_gb")
        storage["network_volume_id"] = desired.network_volume_id or known.get("network_volume_id")
    want["storage"] = {k: v for k, v in storage.items() if k in known}
    return {k: v for k, v in want.items() if k in actual}


def _one_of(candidates: tuple[str, ...]) -> str:
    return candidates[0] if len(candidates) == 1 else "one of " + ", ".join(candidates)


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    """deepdiff of two fact dicts -> FieldChanges, in REPLACE_FIELDS order. Equal facts (the
    common case, once per stack in `drift`) skip deepdiff, which is also imported only here: it
    costs more to import than the rest of a plan."""
    if before == after:
        return ()
    from deepdiff import DeepDiff

    diff = DeepDiff(before, after, ignore_order=False, verbose_level=2).to_dict()
    changes: list[FieldChange] = []
    for bucket in ("values_changed", "type_changes"):
        for path, change in (diff.get(bucket) or {}).items():
            changes.append(FieldChange(path=_dotted(path), before=change.get("old_value"),
                                       after=change.get("new_value")))
    for path, value in (diff.get("dictionary_item_added") or {}).items():
        changes.append(FieldChange(path=_dotted(path), before=None, after=value))
    for path, value in (diff.get("dictionary_item_removed") or {}).items():
        changes.append(FieldChange(path=_dotted(path), before=value, after=None))
    order = {name: i for i, name in enumerate(REPLACE_FIELDS)}
    return tuple(sorted(changes, key=lambda c: (order.get(c.path.split(".")[0], 99), c.path)))


def _dotted(path: str) -> str:
    parts = [m.group(1) if m.group(1) is not None else f"[{m.group(2)}]"
             for m in _KEY.finditer(path)]
    return ".".join(parts).replace(".[", "[")


def reason_for(change: FieldChange) -> tuple[Reason, dict[str, object]]:
    """The Reason (and its title values) a replace-forcing change gives."""
    head, _, rest = change.path.partition(".")
    reason = _REASONS.get(head, Reason.STORAGE_DRIFT)
    return reason, {"before": change.before, "after": change.after, "field": rest or head}


# -- what a pod costs while it exists ------------------------------------------------------

VOLUME_USD_PER_GB_MONTH_RUNNING = 0.10
VOLUME_USD_PER_GB_MONTH_STOPPED = 0.20
"""RunPod bills a stopped pod's volume disk at twice the running rate."""
CONTAINER_DISK_USD_PER_GB_MONTH = 0.10
HOURS_PER_MONTH = 730.0
"""Storage is priced per GB-month and billed by the hour; a month is 8760 / 12 hours."""


def pod_usd_per_hour(pod: ObservedPod) -> float | None:
    """What the pod bills per hour in its current status: GPUs (the provider's `costPerHr`) and
    both disks while running; only the volume disk, at the stopped rate, once stopped (the
    container disk is gone). None when a figure it needs was not reported. A network volume
    bills on its own, whatever the pod does, so it is not counted here."""
    volume_gb = 0 if pod.network_volume_id else pod.volume_gb
    if pod.status is PodStatus.EXITED:
        if volume_gb is None:
            return None
        return volume_gb * VOLUME_USD_PER_GB_MONTH_STOPPED / HOURS_PER_MONTH
    if pod.status is PodStatus.RUNNING:
        if pod.cost_per_hr is None or volume_gb is None or pod.container_disk_gb is None:
            return None
        return (pod.cost_per_hr
                + pod.container_disk_gb * CONTAINER_DISK_USD_PER_GB_MONTH / HOURS_PER_MONTH
                + volume_gb * VOLUME_USD_PER_GB_MONTH_RUNNING / HOURS_PER_MONTH)
    return None


def pod_usd_per_day(pod: ObservedPod) -> float | None:
    """`pod_usd_per_hour` for 24 hours: what leaving the pod as it is costs each day."""
    hourly = pod_usd_per_hour(pod)
    return None if hourly is None else hourly * 24


# -- the drift report ----------------------------------------------------------------------

DRIFT_FORMAT_VERSION = 1

POD_NAME_SHAPE = re.compile(r"^([a-z0-9]+(?:-[a-z0-9]+)*--[0-9a-f]{6}--)")
"""The start of every pod name this tool gives, `<slug>--<6 hex key>--` (see `naming`): group 1
is the stack's prefix. A pod with this shape that no known stack claims was made by a stack
that is not in the report (or by hand, imitating one)."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftVerdict(StrEnum):
    """What a stack's plan says about the world, seen as drift. A stack with nothing recorded
    and nothing running is in sync: between runs, no pod is what a stack wants."""

    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    POD_MISSING = "pod_missing"
    PENDING = "pending"
    ERROR = "error"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def is_drift(self) -> bool:
        return self in (DriftVerdict.DRIFTED, DriftVerdict.POD_MISSING, DriftVerdict.PENDING)


_PENDING_REASONS = frozenset({Reason.PENDING_CREATE_FOUND, Reason.PENDING_CREATE_MISMATCH,
                              Reason.PENDING_CREATE_LOST, Reason.PENDING_DELETE})
_DRIFT_REASONS = frozenset({Reason.IMAGE_DRIFT, Reason.GPU_DRIFT, Reason.DATACENTER_DRIFT,
                            Reason.CLOUD_TYPE_DRIFT, Reason.STORAGE_DRIFT, Reason.ZERO_GPU,
                            Reason.POD_UNHEALTHY})


class StackDrift(_Value):
    """One stack's verdict. `details` are the plan's reasons (or the error), `changes` the
    field diff of a drifted pod."""

    name: str
    config_path: str
    verdict: DriftVerdict
    state_path: str = ""
    pod_prefix: str = ""
    pod_id: str | None = None
    details: tuple[str, ...] = ()
    changes: tuple[FieldChange, ...] = ()


class OrphanedPod(_Value):
    """A pod of the account that no state accounts for. `stack` is the stack whose prefix it
    carries, None when it only has the tool's name shape."""

    pod_id: str
    name: str
    status: str
    stack: str | None = None
    usd_per_day: float | None = None


class SkippedPath(_Value):
    path: str
    why: str


class DriftReport(_Value):
    """Every stack's verdict and the account's orphans, from one observation of the account."""

    format_version: int = DRIFT_FORMAT_VERSION
    provider: str
    observed_at: str
    stacks: tuple[StackDrift, ...]
    orphans: tuple[OrphanedPod, ...] = ()
    skipped: tuple[SkippedPath, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def has_errors(self) -> bool:
        return any(s.verdict is DriftVerdict.ERROR for s in self.stacks)

    @property
    def has_drift(self) -> bool:
        return bool(self.orphans) or any(s.verdict.is_drift for s in self.stacks)

    def exit_code(self, *, detailed: bool) -> int:
        """1 when a stack could not be checked; with `detailed`, else 2 on drift, 0 in sync."""
        if self.has_errors:
            return 1
        return 2 if detailed and self.has_drift else 0

    def count(self, verdict: DriftVerdict) -> int:
        return sum(1 for s in self.stacks if s.verdict is verdict)

    @property
    def orphan_usd_per_day(self) -> float:
        """The known daily cost of the orphans (pods whose price was not reported add 0)."""
        return sum(o.usd_per_day or 0.0 for o in self.orphans)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["summary"] = {**{v.value: self.count(v) for v in DriftVerdict},
                           "orphans": len(self.orphans),
                           "orphan_usd_per_day": round(self.orphan_usd_per_day, 2)}
        return data


def stack_drift(plan: Plan, state: StackState) -> StackDrift:
    """Read a stack's plan as a verdict. An unconfirmed operation comes first (it is what an
    interrupted apply left), then a recorded pod that is gone, then a pod that no longer
    matches the stack (or cannot run it); anything else is in sync."""
    reasons = [r for step in plan.steps for r in step.reasons]
    kinds = {r.reason for r in reasons}
    # "No pod recorded" only explains the create that follows a forget; alone, it is the news.
    details = [r.title for r in reasons if r.reason is not Reason.NO_POD or len(reasons) == 1]
    pending = state.pending
    if pending is not None:
        verdict = DriftVerdict.PENDING
        if not kinds & _PENDING_REASONS:
            # A pending start or stop: the planner reads the pod as it is; say what was begun.
            target = pending.pod_id or pending.pod_name
            details.insert(0, f"an unconfirmed {pending.kind.value} of pod {target} "
                              f"(begun {pending.started_at})")
    elif Reason.POD_GONE in kinds:
        verdict = DriftVerdict.POD_MISSING
    elif kinds & _DRIFT_REASONS:
        verdict = DriftVerdict.DRIFTED
    else:
        verdict = DriftVerdict.IN_SYNC
    pod_id = next((step.pod_id for step in plan.steps if step.pod_id), None)
    return StackDrift(name=plan.stack.name, config_path=plan.stack.config_path,
                      state_path=plan.stack.state_path, pod_prefix=plan.stack.pod_prefix,
                      verdict=verdict, pod_id=pod_id, details=tuple(details),
                      changes=tuple(c for step in plan.steps for c in step.changes))


def stack_failure(config_path: str, message: str, *, name: str = "",
                  state_path: str = "") -> StackDrift:
    """A stack that could not be checked (invalid, unplannable, unreadable state)."""
    return StackDrift(name=name or "?", config_path=config_path, state_path=state_path,
                      verdict=DriftVerdict.ERROR,
                      details=tuple(line for line in message.splitlines() if line.strip()))


def account_orphans(pods: Iterable[ObservedPod], *, stack_by_prefix: Mapping[str, str],
                    accounted: set[str], unknowable_prefixes: frozenset[str] = frozenset()
                    ) -> tuple[OrphanedPod, ...]:
    """Existing pods with the tool's name shape that no state accounts for: `accounted` holds
    every pod id a state records or a plan claims. Pods of a stack whose state could not be
    read (`unknowable_prefixes`) are left out: nobody can tell whether they are orphans."""
    found = []
    for pod in pods:
        if not pod.status.exists or pod.pod_id in accounted:
            continue
        shape = POD_NAME_SHAPE.match(pod.name)
        if shape is None or shape.group(1) in unknowable_prefixes:
            continue
        daily = pod_usd_per_day(pod)
        found.append(OrphanedPod(pod_id=pod.pod_id, name=pod.name, status=pod.status.value,
                                 stack=stack_by_prefix.get(shape.group(1)),
                                 usd_per_day=None if daily is None else round(daily, 4)))
    return tuple(sorted(found, key=lambda o: (o.stack is None, o.stack or "", o.name)))


# -- views -----------------------------------------------------------------------------------

def _money(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _summary_line(report: DriftReport) -> str:
    parts = [f"{report.count(v)} {v.label}" + ("s" if v is DriftVerdict.ERROR
                                                  and report.count(v) != 1 else "")
             for v in DriftVerdict]
    orphans = (f"{len(report.orphans)} orphaned pod{'s' if len(report.orphans) != 1 else ''}"
               f" (${report.orphan_usd_per_day:.2f}/day)")
    return f"{len(report.stacks)} stacks: " + ", ".join(parts) + f"; {orphans}"


def render_drift_text(report: DriftReport) -> str:
    """One line per stack; the reasons and field diff under each stack that is not in sync."""
    out = [(f"Drift of {len(report.stacks)} stacks, observed via {report.provider} at "
            f"{report.observed_at}"), ""]
    rows = [(s.verdict.label, s.name, s.pod_id or "-", s.config_path) for s in report.stacks]
    widths = [max([len(h)] + [len(r[i]) for r in rows])
              for i, h in enumerate(("VERDICT", "STACK", "POD"))]
    out.append(f"{'VERDICT':<{widths[0]}}  {'STACK':<{widths[1]}}  {'POD':<{widths[2]}}  CONFIG")
    for stack, row in zip(report.stacks, rows, strict=True):
        out.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
                   f"{row[3]}")
        if stack.verdict is not DriftVerdict.IN_SYNC:
            out += [f"    {d}" for d in stack.details]
            out += [f"    ~ {c.path}: {_plain(c.before)} -> {_plain(c.after)}"
                    for c in stack.changes]
    if report.orphans:
        out += ["", "Orphaned pods (no state records them):"]
        cells = [(o.pod_id, o.name, o.status, o.stack or "(no known stack)",
                  _money(o.usd_per_day)) for o in report.orphans]
        heads = ("POD_ID", "NAME", "STATUS", "STACK", "$/DAY")
        w = [max([len(heads[i])] + [len(c[i]) for c in cells]) for i in range(5)]
        out.append("  ".join(f"{h:<{w[i]}}" if i < 4 else f"{h:>{w[i]}}"
                             for i, h in enumerate(heads)))
        out += ["  ".join(f"{v:<{w[i]}}" if i < 4 else f"{v:>{w[i]}}" for i, v in enumerate(c))
                for c in cells]
    if report.skipped:
        out += ["", "Skipped:"] + [f"  {s.path}: {s.why}" for s in report.skipped]
    if report.notes:
        out += ["", "Notes:"] + [f"  {n}" for n in report.notes]
    out += ["", _summary_line(report) + "."]
    return "\n".join(out) + "\n"


def render_drift_markdown(report: DriftReport) -> str:
    """For a CI job summary (`$GITHUB_STEP_SUMMARY`): a headline, then the stacks that need
    attention first, then the orphans."""
    headline = ("Errors" if report.has_errors else "Drift found" if report.has_drift
                else "In sync")
    out = [f"## runpod-deploy drift: {headline}", "",
           f"{_summary_line(report)}. Observed via {report.provider} at {report.observed_at}.",
           ""]
    order = {DriftVerdict.ERROR: 0, DriftVerdict.PENDING: 1, DriftVerdict.POD_MISSING: 2,
             DriftVerdict.DRIFTED: 3, DriftVerdict.IN_SYNC: 4}
    out += ["| verdict | stack | pod | config | detail |", "|---|---|---|---|---|"]
    for s in sorted(report.stacks, key=lambda s: order[s.verdict]):
        verdict = s.verdict.label if s.verdict is DriftVerdict.IN_SYNC else f"**{s.verdict.label}**"
        detail = "<br>".join([*s.details, *(f"`{c.path}`: `{_plain(c.before)}` → "
                                            f"`{_plain(c.after)}`" for c in s.changes)])
        detail = detail.replace("|", "\\|")
        out.append(f"| {verdict} | `{s.name}` | {s.pod_id or ''} | `{s.config_path}` | "
                   f"{detail} |")
    if report.orphans:
        out += ["", "### Orphaned pods", "", "| pod | name | status | stack | $/day |",
                "|---|---|---|---|---:|"]
        out += [f"| {o.pod_id} | `{o.name}` | {o.status} | {o.stack or '(no known stack)'} | "
                f"{_money(o.usd_per_day)} |" for o in report.orphans]
    if report.skipped:
        out += ["", "<details><summary>Skipped files</summary>", ""]
        out += [f"- `{s.path}`: {s.why}" for s in report.skipped]
        out += ["", "</details>"]
    if report.notes:
        out += ["", "### Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(out) + "\n"


def render_drift_json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
