"""`sweep`: run one stack over a matrix of variable values, each point its own stack instance,
a few at a time, with retries of transient failures and a fleet budget."""


import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from runpod_deploy.commands._options import (
    LocalOpt,
    ProviderOpt,
    VarOpt,
    VarsFileOpt,
    VerboseOpt,
    environment,
    fail,
    set_verbosity,
)

if TYPE_CHECKING:
    from reconciler.sweep import SweepPoint
    from runtime.sweep import PointRow, SweepResult


def register(app: typer.Typer) -> None:
    app.command(name="sweep", help=(
        "Run the stack once per point of a matrix of variables (--matrix seed=1,2,3, or "
        "--matrix-file), each point its own stack instance (own state, lock and pods), at most "
        "--max-parallel at once; transient failures (pod killed, capacity, SSH lost) are retried "
        "--retry times; --cost-cap-usd caps the whole fleet. Exit 0 when every point "
        "succeeded, 1 when any did not, 130 when interrupted."))(_sweep_command)


def _sweep_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="The stack file (YAML) of every point.")],
    matrix: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--matrix", metavar="NAME=V1,V2,...",
        help="A variable and its values (repeatable): the points are every combination.")] = None,
    matrix_file: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--matrix-file", help="A YAML or JSON list of variable maps, one per point (crossed "
        "with --matrix when both are given).")] = None,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    max_parallel: Annotated[int, typer.Option(
        "--max-parallel", min=1, help="Points running at once.")] = 1,
    retry: Annotated[int, typer.Option(
        "--retry", min=0, help="Further attempts of a point after a transient failure (pod "
        "killed, no capacity, SSH lost); a failing job is never retried.")] = 0,
    retry_delay_sec: Annotated[float, typer.Option(
        "--retry-delay-sec", min=0.0, help="Wait this long before a retry (capacity comes "
        "back with time).")] = 0.0,
    cost_cap_usd: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--cost-cap-usd", help="Fleet cap: start no point whose worst case would take the "
        "sweep's spend (real $/hr x time of every pod) past this.")] = None,
    print_run_dirs: Annotated[bool, typer.Option(
        "--print-run-dirs", help="At the end, print RUN_DIR=<path> on stdout for each point "
        "that ran, in point order.")] = False,
    plan: Annotated[bool, typer.Option(
        "--plan", help="Preview every point (pods to create, worst-case fleet cost against the "
        "cap) and create nothing.")] = False,
    ssh_key: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--ssh-key", help="Private key for the pods (overrides ssh.key_path).",
        envvar="RUNPOD_DEPLOY_SSH_KEY")] = None,
    plain: Annotated[bool, typer.Option(
        "--plain", help="Plain progress lines instead of the live table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    provider: ProviderOpt = "runpodctl",
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from reconciler.diagnostics import RunpodDeployError

    set_verbosity(verbose, False)
    if cost_cap_usd is not None and cost_cap_usd <= 0:
        raise fail(ValueError("--cost-cap-usd must be > 0"))
    try:
        points = _points(matrix or (), matrix_file)
        env, sim_key = environment(local)
        key = ssh_key or sim_key
        if plan:
            _preview(config, points, var or (), vars_file, provider, env, cost_cap_usd, as_json)
            return
        result = _run(config, points, var or (), vars_file, provider, env,
                      str(key) if key is not None else None, max_parallel, retry,
                      retry_delay_sec, cost_cap_usd, plain, as_json)
    except (RunpodDeployError, ValueError, OSError) as exc:
        raise fail(exc) from None
    _summary(result, as_json=as_json, print_run_dirs=print_run_dirs)
    raise typer.Exit(result.exit_code)


def _points(matrix: Sequence[str], matrix_file: Optional[Path]) -> "tuple[SweepPoint, ...]":  # noqa: UP045
    from reconciler.diagnostics import SpecError, error
    from reconciler.sweep import combine_points, expand_matrix, parse_matrix_file

    rows = None
    if matrix_file is not None:
        try:
            text = matrix_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError([error(f"cannot read {matrix_file}: {getattr(exc, 'strerror', None) or exc}",
                                   field_path="--matrix-file")]) from None
        rows = parse_matrix_file(text, source=str(matrix_file))
    return combine_points(rows, expand_matrix(matrix))


def _check_stack(config: Path, points: "Sequence[SweepPoint]", cli_vars: Sequence[str],
                 vars_file: Optional[Path], env: Mapping[str, str]) -> list[Any]:  # noqa: UP045
    """Every point's stack, rendered: a bad value in any point stops the sweep before the first
    pod (nothing is created). A secret variable cannot be swept: the points are shown and
    recorded by their values."""
    from reconciler.diagnostics import SpecError, error
    from runpod_deploy.api import load_stack

    stacks = [load_stack(config, cli_vars=(*cli_vars, *p.cli_vars), vars_file=vars_file, env=env)
              for p in points]
    secret = stacks[0].job.variables.secret_names if stacks else frozenset()
    swept = sorted({k for p in points for k, _ in p.variables} & secret)
    if swept:
        raise SpecError([error(f"variable '{swept[0]}' is secret and cannot be swept",
                               detail="a sweep shows and records each point by its values; pass "
                               "a secret with --var or --vars-file, the same for every point",
                               field_path=f"--matrix {swept[0]}")])
    return stacks


def _refuse_shared_state(points: "Sequence[SweepPoint]", stacks: Sequence[Any],
                         max_parallel: int) -> None:
    """Points whose stacks resolve to one state file (a fixed `state_file:` in the template)
    would lock each other out when run at once: say so before anything starts."""
    from reconciler.diagnostics import SpecError, error

    if max_parallel < 2:
        return
    seen: dict[str, str] = {}
    for point, stack in zip(points, stacks, strict=True):
        other = seen.setdefault(str(stack.state_path), point.label)
        if other != point.label:
            raise SpecError([error(
                f"points {other} and {point.label} share the state file {stack.state_path}",
                detail="the stack's state_file: names one file for every point, so points cannot "
                "run at once: put a swept variable in it (state_file: ~/.runpod-deploy-{seed}.json), "
                "remove it, or use --max-parallel 1", field_path="state_file")])


def _masked(cli_vars: Sequence[str], secret: frozenset[str]) -> list[str]:
    """The sweep's `--var`s as the record keeps them: a secret one's value masked."""
    from reconciler.redaction import MARKER

    out = []
    for item in cli_vars:
        key, _, _ = item.partition("=")
        out.append(f"{key}={MARKER}" if key.strip() in secret else item)
    return out


def _preview(config: Path, points: "Sequence[SweepPoint]", cli_vars: Sequence[str],
             vars_file: Optional[Path], provider: str, env: Mapping[str, str],  # noqa: UP045
             cap: Optional[float], as_json: bool) -> None:  # noqa: UP045
    """`sweep --plan`: each point's plan (observed, nothing created) and the fleet's worst case."""
    import json

    from runpod_deploy.api import make_plan

    stacks = _check_stack(config, points, cli_vars, vars_file, env)
    rows: list[dict[str, Any]] = []
    running_total = 0.0
    for point, stack in zip(points, stacks, strict=True):
        the_plan = make_plan(stack, provider=provider, env=env)
        worst = float(the_plan.cost.worst_case_usd)
        running_total += worst
        rows.append({
            "index": point.index, "point": point.label, "variables": point.as_dict(),
            "stack_key": stack.identity.key, "state_path": str(stack.state_path),
            "steps": [f"{s.kind.value} {s.pod_id or s.target}" for s in the_plan.steps],
            "creates": sum(1 for s in the_plan.steps if s.kind.value == "create"),
            "worst_case_usd": worst,
            "within_cap": cap is None or running_total <= cap + 1e-9,
        })
    total = round(sum(r["worst_case_usd"] for r in rows), 4)
    if as_json:
        print(json.dumps({"points": rows, "worst_case_fleet_usd": total, "cost_cap_usd": cap,
                          "within_cap": cap is None or total <= cap + 1e-9}, indent=2))
        return
    print(f"sweep plan of {config}: {len(rows)} points; nothing is created")
    width = max(len(r["point"]) for r in rows)
    for r in rows:
        mark = "" if r["within_cap"] else "   (past the fleet cap: would not start)"
        print(f"  {r['index']:>3}  {r['point']:<{width}}  {'; '.join(r['steps']) or 'nothing to do'}"
              f"  worst ${r['worst_case_usd']:.2f}{mark}")
    cap_text = f" against the fleet cap ${cap:.2f}" if cap is not None else " (no fleet cap)"
    print(f"worst case of the fleet: ${total:.2f}{cap_text}")


def _run(config: Path, points: "Sequence[SweepPoint]", cli_vars: Sequence[str],
         vars_file: Optional[Path], provider: str, env: Mapping[str, str],  # noqa: UP045
         ssh_key: Optional[str], max_parallel: int, retry: int, retry_delay_sec: float,  # noqa: UP045
         cap: Optional[float], plain: bool, as_json: bool) -> "SweepResult":  # noqa: UP045
    import signal
    import threading
    from datetime import UTC, datetime

    from runpod_deploy.api import ApplyRequest
    from runtime.sweep import (
        SweepDriver,
        SweepOptions,
        SweepRecord,
        new_sweep_id,
        sweep_record_path,
    )

    stacks = _check_stack(config, points, cli_vars, vars_file, env)
    _refuse_shared_state(points, stacks, max_parallel)
    sweep_id = new_sweep_id()
    request = ApplyRequest(cli_vars=tuple(cli_vars), vars_file=str(vars_file) if vars_file else None,
                           provider=provider, ssh_key=ssh_key)
    record = SweepRecord(sweep_record_path(env, sweep_id), {
        "sweep_id": sweep_id, "config_path": str(config.absolute()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cli_vars": _masked(cli_vars, stacks[0].job.variables.secret_names),
        "vars_file": str(vars_file) if vars_file else None, "provider": provider,
        "max_parallel": max_parallel, "retry": retry, "cost_cap_usd": cap,
    })
    view = _make_view(plain or as_json, len(points), sweep_id)
    driver = SweepDriver(points, runner=_apply_runner(config, request, env),
                         options=SweepOptions(max_parallel=max_parallel, retry=retry,
                                              cost_cap_usd=cap, retry_delay_sec=retry_delay_sec),
                         record=record, sweep_id=sweep_id, view=view)
    for point, stack in zip(points, stacks, strict=True):
        driver.change(point.index, state_path=str(stack.state_path), stack_key=stack.identity.key)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt()

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        view.note(f"sweep {sweep_id}: {len(points)} points of {config}, at most {max_parallel} "
                  f"at once (record: {record.path})")
        return driver.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        view.close()


def _apply_runner(config: Path, base: Any, env: Mapping[str, str]) -> Any:
    """A point's attempt: the public `apply_stack` with the point's variables after the sweep's
    own `--var`s, no question asked but the fleet cap's (`control.admit`)."""
    from dataclasses import replace

    from runpod_deploy.api import apply_stack

    def run(point: "SweepPoint", reporter: Any, control: Any) -> Any:
        request = replace(base, cli_vars=(*base.cli_vars, *point.cli_vars))
        return apply_stack(config, request, env=env, reporter=reporter, confirm=control.admit,
                           on_run_dir=control.run_dir)

    return run


class _PlainView:
    """One line per change of a point's status (pipes, CI logs)."""

    def __init__(self, total: int) -> None:
        self._seen: dict[int, tuple[str, str | None, int]] = {}
        self._total = total

    def update(self, rows: "Sequence[PointRow]") -> None:
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        for row in rows:
            key = (row.status.value, row.pod_id, row.attempts)
            if self._seen.get(row.point.index) == key or row.status.value == "pending":
                continue
            self._seen[row.point.index] = key
            pod = f" pod {row.pod_id}" if row.pod_id else ""
            gpu = f" ({row.gpu})" if row.gpu else ""
            tail = f": {row.detail}" if row.detail and row.status.value not in ("running",) else ""
            print(f"[{stamp}] point {row.point.index}/{self._total} {row.point.label}: "
                  f"{row.status.value} (attempt {row.attempts}){pod}{gpu}{tail}",
                  file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _LiveView:
    """The live table on a terminal: one row per point (status, pod, GPU, elapsed, $)."""

    def __init__(self, sweep_id: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(stderr=True)
        self._sweep_id = sweep_id
        self._live = Live(console=self._console, refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, rows: "Sequence[PointRow]") -> None:
        import time

        from rich.table import Table

        now = time.monotonic()
        table = Table(title=f"sweep {self._sweep_id}", expand=False)
        for column in ("#", "point", "status", "try", "phase", "pod", "GPU", "elapsed", "$"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for row in rows:
            running = row.status.value == "running"
            table.add_row(str(row.point.index), row.point.label, row.status.value,
                          str(row.attempts or ""), row.phase if running else "",
                          row.pod_id or "", (row.gpu or "").removeprefix("NVIDIA "),
                          f"{row.elapsed(now):.0f}s" if row.started_at else "",
                          f"{row.spent_usd:.4f}" if row.spent_usd else "")
        self._live.update(table)

    def note(self, message: str) -> None:
        self._live.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self._live.stop()


def _make_view(plain: bool, total: int, sweep_id: str) -> Any:
    import os

    from runpod_deploy.live import use_live_view

    if not plain and use_live_view(sys.stderr, os.environ):
        return _LiveView(sweep_id)
    return _PlainView(total)


def _summary(result: "SweepResult", *, as_json: bool, print_run_dirs: bool) -> None:
    import json

    rows = result.rows
    if as_json:
        print(json.dumps({
            "sweep_id": result.sweep_id,
            "exit_code": result.exit_code,
            "interrupted": result.interrupted,
            "budget_stop": result.budget_stop,
            "record": str(result.record_path),
            "total_cost_usd": round(result.total_usd, 4),
            "points": [{
                "index": r.point.index, "point": r.point.label, "variables": r.point.as_dict(),
                "status": r.status.value, "outcome": r.outcome, "attempts": r.attempts,
                "run_dir": r.run_dir, "run_dirs": list(r.run_dirs), "cost_usd": round(r.spent_usd, 4),
                "detail": r.detail, "stack_key": r.stack_key, "state_path": r.state_path,
            } for r in rows],
        }, indent=2))
    else:
        width = max(len(r.point.label) for r in rows)
        err = sys.stderr
        print(f"\nsweep {result.sweep_id}:", file=err)
        print(f"  {'#':>3}  {'point':<{width}}  {'outcome':<20} {'tries':>5}  {'cost $':>8}  run dir", file=err)
        for r in rows:
            outcome = r.outcome if r.status.value in ("succeeded", "failed") and r.outcome else r.status.value
            print(f"  {r.point.index:>3}  {r.point.label:<{width}}  {outcome:<20} {r.attempts:>5}  "
                  f"{r.spent_usd:>8.4f}  {r.run_dir or '-'}", file=err)
        done = sum(1 for r in rows if r.status.value == "succeeded")
        print(f"{done} of {len(rows)} points succeeded; fleet cost ${result.total_usd:.4f}", file=err)
        if result.budget_stop:
            skipped = [r.point.label for r in rows if r.status.value == "not_run"]
            print(f"stopped launching: {result.budget_stop}", file=err)
            if skipped:
                print(f"points not run: {'; '.join(skipped)}", file=err)
        if result.interrupted:
            print("interrupted: every started point applied its on_failure; points not run: "
                  + ("; ".join(r.point.label for r in rows if r.status.value == "not_run") or "none"),
                  file=err)
    if print_run_dirs:
        for r in rows:
            if r.run_dir:
                sys.stdout.write(f"RUN_DIR={r.run_dir}\n")
        sys.stdout.flush()
