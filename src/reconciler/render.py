"""Plan -> text (in the spirit of `pulumi preview` / `terraform plan`), JSON and markdown.

Pure string functions over one value: the three views can never disagree. Symbols come from
`StepKind`: `+` create, `>` resume, `-/+` replace, `=` adopt, `-` delete, `.` forget.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.plan import JobPhase, Plan, Step, StepKind

__all__ = ["render_json", "render_markdown", "render_text"]


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _summary(plan: Plan) -> str:
    counts: dict[StepKind, int] = {}
    for step in plan.steps:
        counts[step.kind] = counts.get(step.kind, 0) + 1
    changes = [f"{n} to {kind.value}" for kind, n in counts.items() if kind is not StepKind.NOOP]
    return ", ".join(changes) if changes else "no changes to the pod"


def _mounts(plan: Plan, step: Step) -> str | None:
    """What a step that creates a pod mounts, when that is a network volume."""
    if plan.network_volume is None or step.kind not in (StepKind.CREATE, StepKind.REPLACE):
        return None
    return "mounts " + plan.network_volume.describe()


def _step_lines(plan: Plan, step: Step) -> list[str]:
    pod = f" ({step.pod_id})" if step.pod_id else ""
    lines = [f"  {step.kind.symbol:>3} {step.kind.value:<8} {step.target}{pod}"]
    lines += [f"        {r.title}" for r in step.reasons]
    lines += [f"        ~ {c.path}: {_value(c.before)} -> {_value(c.after)}" for c in step.changes]
    mounts = _mounts(plan, step)
    if mounts:
        lines.append(f"        {mounts}")
    return lines


def _placement_lines(plan: Plan) -> list[str]:
    """The failover order a create will walk, each skipped pair with its reason."""
    placement = plan.placement
    if placement is None:
        return []
    lines = ["", "Placement (the order a create tries):"]
    rank = 0
    for entry in placement.entries:
        price = f"${entry.hourly_usd:.2f}/hr" if entry.hourly_usd is not None else "$?/hr"
        where = f"{entry.gpu_type_id} @ {entry.datacenter_id}"
        if entry.skipped is None:
            rank += 1
            lines.append(f"  {rank:>2}. {where:<40} {price}")
        else:
            lines.append(f"   -  {where:<40} skipped: {entry.skipped}")
    if placement.error:
        lines.append(f"  ! {placement.error}")
    return lines


def _command_lines(plan: Plan, phase: JobPhase) -> list[str]:
    """The phase's rendered commands (already redacted), one line each."""
    for entry in plan.commands:
        if entry.phase is phase:
            if phase is JobPhase.LAUNCH:
                body = entry.commands[0].splitlines() if entry.commands else []
                return [f"               | {line[:_WIDTH]}" for line in body[:_BODY_LINES]] + (
                    [f"               | ... ({len(body) - _BODY_LINES} more lines)"]
                    if len(body) > _BODY_LINES else [])
            return [f"               $ {' '.join(c.split())[:_WIDTH]}" for c in entry.commands]
    return []


_WIDTH = 100
_BODY_LINES = 6


def render_text(plan: Plan) -> str:
    out = [(f"Stack {plan.stack.name} (key {plan.stack.key}, pods named "
            f"{plan.stack.pod_prefix}*)")]
    if plan.stack.state_path:
        out.append(f"State {plan.stack.state_path} (serial {plan.state_serial})")
    obs = plan.observation
    out.append(f"Observed via {obs.provider}" + ("" if obs.complete else " (incomplete)"))
    out.append("")
    out.append("Pod:")
    for step in plan.steps:
        out += _step_lines(plan, step)
    if plan.orphans:
        out.append("")
        out.append("Orphans (carry this stack's prefix, recorded by no state):")
        for o in plan.orphans:
            price = f"${o.cost_per_hr:.2f}/hr" if o.cost_per_hr is not None else "$?/hr"
            action = "will be deleted" if o.will_delete else "pass --delete-orphans to delete"
            out.append(f"  ! {o.pod_id} {o.name} {o.status} {price} ({action})")
    out += _placement_lines(plan)
    if plan.attach is not None:
        out.append("")
        out.append(f"Job: {plan.attach.describe()}; the job is not run again "
                   "(--rerun runs it again)")
    out.append("")
    out.append("Job phases:")
    for p in plan.phases:
        mark = "*" if p.runs else "-"
        out.append(f"  {mark} {p.phase.value:<10} {p.detail}")
        out += _command_lines(plan, p.phase)
    out.append("")
    life = plan.lifecycle
    out.append(f"Lifecycle: on success {life.on_success} ({life.success_detail})")
    out.append(f"           on failure {life.on_failure} ({life.failure_detail})")
    out.append("")
    c = plan.cost
    out.append("Cost:")
    for cand in c.candidates:
        out.append(f"  {cand.gpu_type_id:<28} ${cand.hourly_usd:.2f}/hr  ({cand.source})")
    cap = "within" if c.within_cap else "OVER"
    out.append(f"  worst case ${c.worst_case_usd:.2f} = ${c.max_hourly_usd:.2f}/hr x "
               f"{c.timeout_sec // 60} min; {cap} the cap of ${c.cap_usd:.2f}")
    out.append("")
    out.append("Guards:")
    out += [f"  {g.name:<10} {g.detail}" for g in plan.guards]
    if plan.warnings:
        out.append("")
        out.append("Warnings:")
        out += [f"  {w}" for w in plan.warnings]
    if plan.unchecked:
        out.append("")
        out.append("Not checked:")
        out += [f"  {u}" for u in plan.unchecked]
    out.append("")
    out.append(f"Plan: {_summary(plan)}.")
    return "\n".join(out) + "\n"


def render_json(plan: Plan) -> str:
    return plan.to_json()


def render_markdown(plan: Plan) -> str:
    out = [f"## Plan for `{plan.stack.name}`", "",
           f"Pods are named `{plan.stack.pod_prefix}*`; observed via {plan.observation.provider}"
           + ("" if plan.observation.complete else " (incomplete)") + ".", "",
           "| | step | target | pod | reasons |", "|---|---|---|---|---|"]
    for s in plan.steps:
        reasons = "<br>".join(r.title for r in s.reasons)
        changes = "".join(f"<br>`{c.path}`: `{_value(c.before)}` → `{_value(c.after)}`"
                          for c in s.changes)
        mounts = _mounts(plan, s)
        changes += f"<br>{mounts}" if mounts else ""
        out.append(f"| `{s.kind.symbol.strip() or '·'}` | {s.kind.value} | `{s.target}` | "
                   f"{s.pod_id or ''} | {reasons}{changes} |")
    if plan.orphans:
        out += ["", "### Orphans", "", "| pod | name | status | $/hr | action |",
                "|---|---|---|---|---|"]
        for o in plan.orphans:
            price = f"{o.cost_per_hr:.2f}" if o.cost_per_hr is not None else "?"
            out.append(f"| {o.pod_id} | `{o.name}` | {o.status} | {price} | "
                       f"{'delete' if o.will_delete else 'report'} |")
    if plan.attach is not None:
        out += ["", f"**Job:** {plan.attach.describe()}; the job is not run again (`--rerun` runs it again)."]
    out += ["", "### Job phases", ""]
    out += [f"- [{'x' if p.runs else ' '}] **{p.phase.value}**: {p.detail}" for p in plan.phases]
    life = plan.lifecycle
    out += ["", "### Lifecycle", "",
            f"- on success: **{life.on_success}** ({life.success_detail})",
            f"- on failure: **{life.on_failure}** ({life.failure_detail})"]
    c = plan.cost
    out += ["", "### Cost", "", "| GPU | $/hr | source |", "|---|---|---|"]
    out += [f"| {x.gpu_type_id} | {x.hourly_usd:.2f} | {x.source} |" for x in c.candidates]
    out += ["", (f"Worst case **${c.worst_case_usd:.2f}** (${c.max_hourly_usd:.2f}/hr x "
                 f"{c.timeout_sec // 60} min), {'within' if c.within_cap else '**over**'} the "
                 f"cap of ${c.cap_usd:.2f}.")]
    out += ["", "### Guards", ""] + [f"- **{g.name}**: {g.detail}" for g in plan.guards]
    if plan.warnings:
        out += ["", "### Warnings", ""] + [f"- {w}" for w in plan.warnings]
    if plan.unchecked:
        out += ["", "### Not checked", ""] + [f"- {u}" for u in plan.unchecked]
    out += ["", f"**Plan:** {_summary(plan)}."]
    return "\n".join(out) + "\n"
