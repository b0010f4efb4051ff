"""`sweep`: run one stack over a matrix of variable values, each point its own stack instance,
a few at a time, with retries of transient failures and a fleet budget."""


import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
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
        "succeeded, 1 when any did not, 130 when interrupted. --detach launches every point "
        "and returns (each pod supervises its job); --status SWEEP_ID and --attach SWEEP_ID "
        "show and collect them later, from any machine with the shared backend."))(_sweep_command)


def _sweep_command(
    config: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--config", "-c", help="The stack file (YAML) of every point (with --status/--attach: "
        "the sweep's own by default).")] = None,
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
    detach: Annotated[bool, typer.Option(
        "--detach", help="Launch every point detached and exit once all are launched: each "
        "pod's watchdog and self-stop guard its job; collect them with --attach SWEEP_ID.")] = False,
    status: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--status", metavar="SWEEP_ID", help="Show each point of a detached sweep (status, pod, "
        "elapsed, $) and change nothing.")] = None,
    attach: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--attach", metavar="SWEEP_ID", help="Collect a detached sweep: finish each point once "
        "(pull, lifecycle, manifest), --max-parallel at once; finished points are reported.")] = None,
    backend: BackendOpt = None,
    provider: ProviderOpt = "runpodctl",
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from reconciler.diagnostics import RunpodDeployError

    set_verbosity(verbose, False)
    if cost_cap_usd is not None and cost_cap_usd <= 0:
        raise fail(ValueError("--cost-cap-usd must be > 0"))
    modes = [name for name, on in (("--plan", plan), ("--detach", detach),
                                   ("--status", status is not None),
                                   ("--attach", attach is not None)) if on]
    if len(modes) > 1:
        raise fail(ValueError(f"{' and '.join(modes)} cannot be used together"))
    try:
        env, sim_key = environment(local)
        key = ssh_key or sim_key
        if status is not None or attach is not None:
            found = _find_record(status or attach or "", env, backend)
            if status is not None:
                _show_status(found, config, var or (), env, backend,
                             str(key) if key is not None else None, as_json)
                return
            result = _attach(found, config, var or (), env, backend,
                             str(key) if key is not None else None, max_parallel, plain, as_json)
        else:
            if config is None:
                raise ValueError("--config is required (the stack file of every point)")
            points = _points(matrix or (), matrix_file)
            if plan:
                _preview(config, points, var or (), vars_file, provider, env, cost_cap_usd,
                         as_json, backend)
                return
            result = _run(config, points, var or (), vars_file, provider, env,
                          str(key) if key is not None else None, max_parallel, retry,
                          retry_delay_sec, cost_cap_usd, plain, as_json, backend, detach)
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
                 vars_file: Optional[Path], env: Mapping[str, str],  # noqa: UP045
                 backend: Optional[str] = None) -> list[Any]:  # noqa: UP045
    """Every point's stack, rendered: a bad value in any point stops the sweep before the first
    pod (nothing is created). A secret variable cannot be swept: the points are shown and
    recorded by their values."""
    from reconciler.diagnostics import SpecError, error
    from runpod_deploy.api import load_stack

    stacks = [load_stack(config, cli_vars=(*cli_vars, *p.cli_vars), vars_file=vars_file, env=env,
                         backend=backend) for p in points]
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
             cap: Optional[float], as_json: bool, backend: Optional[str] = None) -> None:  # noqa: UP045
    """`sweep --plan`: each point's plan (observed, nothing created) and the fleet's worst case."""
    import json

    from runpod_deploy.api import make_plan

    stacks = _check_stack(config, points, cli_vars, vars_file, env, backend)
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
         cap: Optional[float], plain: bool, as_json: bool,  # noqa: UP045
         backend: Optional[str] = None, detach: bool = False) -> "SweepResult":  # noqa: UP045
    from datetime import UTC, datetime

    from runpod_deploy.api import ApplyRequest
    from runtime.sweep import (
        SweepDriver,
        SweepOptions,
        SweepRecord,
        new_sweep_id,
        sweep_record_path,
    )

    stacks = _check_stack(config, points, cli_vars, vars_file, env, backend)
    _refuse_shared_state(points, stacks, max_parallel)
    sweep_id = new_sweep_id()
    request = ApplyRequest(cli_vars=tuple(cli_vars), vars_file=str(vars_file) if vars_file else None,
                           provider=provider, ssh_key=ssh_key, backend=backend, detach=detach)
    record = SweepRecord(sweep_record_path(env, sweep_id), {
        "sweep_id": sweep_id, "config_path": str(config.absolute()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cli_vars": _masked(cli_vars, stacks[0].job.variables.secret_names),
        "vars_file": str(vars_file) if vars_file else None, "provider": provider,
        "max_parallel": max_parallel, "retry": retry, "cost_cap_usd": cap,
        "detach": detach, "backend": _shown_backend(stacks[0].backend, env),
    }, backend=_open_backend(stacks[0].backend, env))
    view = _make_view(plain or as_json, len(points), sweep_id)
    driver = SweepDriver(points, runner=_apply_runner(config, request, env),
                         options=SweepOptions(max_parallel=max_parallel, retry=retry,
                                              cost_cap_usd=cap, retry_delay_sec=retry_delay_sec),
                         record=record, sweep_id=sweep_id, view=view)
    for point, stack in zip(points, stacks, strict=True):
        driver.change(point.index, state_path=str(stack.state_path), stack_key=stack.identity.key)
    how = "launched detached" if detach else "at most"
    return _drive(driver, view, f"sweep {sweep_id}: {len(points)} points of {config}, {how} "
                  f"{max_parallel} at once (record: {record.path})")


def _drive(driver: Any, view: Any, opening: str) -> "SweepResult":
    """Run the driver with SIGTERM as a Ctrl-C (every running point applies its on_failure)."""
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt()

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        view.note(opening)
        result: SweepResult = driver.run()
        if driver.record.backend_error:
            view.note(f"warning: the sweep record could not be copied to the backend: "
                      f"{driver.record.backend_error}")
        return result
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        view.close()


def _open_backend(url: Optional[str], env: Mapping[str, str]) -> Any:  # noqa: UP045
    """The shared backend the sweep record also goes to (None: the local file only)."""
    if not url:
        return None
    from runtime.backends import open_backend, parse_backend_url

    return open_backend(parse_backend_url(url, home=env.get("HOME")))


def _shown_backend(url: Optional[str], env: Mapping[str, str]) -> Optional[str]:  # noqa: UP045
    """The backend as the record keeps it: what finds the store, never a credential."""
    if not url:
        return None
    from runtime.backends import parse_backend_url

    return parse_backend_url(url, home=env.get("HOME")).as_option


def _find_record(sweep_id: str, env: Mapping[str, str],
                 backend: Optional[str]) -> dict[str, Any]:  # noqa: UP045
    """The sweep's record: the shared backend's copy (`--backend`, `RUNPOD_DEPLOY_BACKEND`),
    else this machine's file."""
    import re

    from reconciler.diagnostics import SpecError, error
    from runtime.sweep import find_sweep_record, sweep_record_path

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", sweep_id):
        raise SpecError([error(f"{sweep_id!r} is not a sweep id", detail="expected the id "
                               "`sweep` printed, e.g. sw-20261206T142000Z-3fa9c1",
                               field_path="--attach/--status")])
    url = backend if backend is not None else env.get("RUNPOD_DEPLOY_BACKEND")
    found = find_sweep_record(env, sweep_id, _open_backend(url, env))
    if found is None:
        where = f"the backend {url} nor " if url else ""
        raise SpecError([error(f"no sweep {sweep_id}", detail=f"neither {where}"
                               f"{sweep_record_path(env, sweep_id)} holds it; on another machine "
                               "pass the team's --backend", field_path="--attach/--status")])
    return found


def _record_request(record: Mapping[str, Any], config: Optional[Path],  # noqa: UP045
                    cli_vars: Sequence[str], backend: Optional[str],  # noqa: UP045
                    ssh_key: Optional[str], env: Mapping[str, str]) -> tuple[Path, Any]:  # noqa: UP045
    """The stack file and the `ApplyRequest` of a recorded sweep: its own `--var`s with a
    masked (secret) one replaced by this command's `--var`, which it must then give again."""
    from reconciler.diagnostics import SpecError, error
    from reconciler.redaction import MARKER
    from runpod_deploy.api import ApplyRequest

    given = {item.partition("=")[0].strip() for item in cli_vars}
    kept: list[str] = []
    for item in record.get("cli_vars") or []:
        key, _, value = str(item).partition("=")
        if key.strip() in given:
            continue
        if value == MARKER:
            raise SpecError([error(f"the sweep's --var {key} is secret and was not recorded",
                                   detail=f"pass it again: --var {key}=...",
                                   field_path=f"--var {key}")])
        kept.append(str(item))
    stack_file = config or Path(str(record["config_path"]))
    url = backend if backend is not None else (env.get("RUNPOD_DEPLOY_BACKEND")
                                               or record.get("backend"))
    return stack_file, ApplyRequest(
        cli_vars=(*kept, *cli_vars), vars_file=record.get("vars_file"),
        provider=str(record.get("provider") or "runpodctl"), ssh_key=ssh_key, backend=url)


def _show_status(record: Mapping[str, Any], config: Optional[Path],  # noqa: UP045
                 cli_vars: Sequence[str], env: Mapping[str, str], backend: Optional[str],  # noqa: UP045
                 ssh_key: Optional[str], as_json: bool) -> None:  # noqa: UP045
    """`sweep --status`: each point as its record and its stack's `stack_status` see it."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from runpod_deploy.api import stack_status
    from runtime.sweep import rows_of_record

    stack_file, request = _record_request(record, config, cli_vars, backend, ssh_key, env)
    rows = rows_of_record(record)

    def one(row: "PointRow") -> dict[str, Any]:
        entry: dict[str, Any] = {
            "index": row.point.index, "point": row.point.label,
            "variables": row.point.as_dict(), "status": row.status.value,
            "outcome": row.outcome, "run_dir": row.run_dir, "pod_id": row.pod_id,
            "job": None, "elapsed_sec": None, "spend_usd": round(row.spent_usd, 4)}
        if row.status.value not in ("detached", "running", "pending", "retry_wait"):
            return entry
        try:
            found = stack_status(stack_file, cli_vars=(*request.cli_vars, *row.point.cli_vars),
                                 vars_file=request.vars_file, provider=request.provider,
                                 env=env, ssh_key=request.ssh_key, backend=request.backend,
                                 lines=3)
        except Exception as exc:  # noqa: BLE001 - one point's trouble is its row's, not the table's
            entry["detail"] = f"{type(exc).__name__}: {exc}"
            return entry
        entry.update(job=found.job, pod_id=found.pod_id or row.pod_id,
                     pod_status=found.pod_status, elapsed_sec=found.elapsed_sec,
                     spend_usd=found.spend_usd, last_run=found.last_run,
                     last_lines=list(found.last_lines))
        if found.job is None and found.last_run:
            entry["job"] = f"finished: {found.last_run}"
        return entry

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(rows)))) as pool:
        entries = list(pool.map(one, rows))
    if as_json:
        print(json.dumps({"sweep_id": record.get("sweep_id"), "points": entries}, indent=2))
        return
    width = max([len(e["point"]) for e in entries] + [5])
    print(f"sweep {record.get('sweep_id')} ({record.get('config_path')}):")
    print(f"  {'#':>3}  {'point':<{width}}  {'status':<11} {'job':<10} {'pod':<16} "
          f"{'elapsed':>8}  {'$':>8}")
    for e in entries:
        elapsed = f"{e['elapsed_sec']}s" if e["elapsed_sec"] is not None else "-"
        spend = f"{e['spend_usd']:.4f}" if e["spend_usd"] is not None else "-"
        print(f"  {e['index']:>3}  {e['point']:<{width}}  {e['status']:<11} "
              f"{(e['job'] or '-'):<10} {(e['pod_id'] or '-'):<16} {elapsed:>8}  {spend:>8}")


def _attach(record: Mapping[str, Any], config: Optional[Path],  # noqa: UP045
            cli_vars: Sequence[str], env: Mapping[str, str], backend: Optional[str],  # noqa: UP045
            ssh_key: Optional[str], max_parallel: int, plain: bool,  # noqa: UP045
            as_json: bool) -> "SweepResult":
    """`sweep --attach`: finish every detached point once, at most `max_parallel` at once; a
    point already finished is reported as it is. The record is updated as points finish."""
    from dataclasses import replace

    from runtime.sweep import (
        PointStatus,
        SweepDriver,
        SweepOptions,
        SweepRecord,
        rows_of_record,
        sweep_record_path,
    )

    sweep_id = str(record["sweep_id"])
    stack_file, request = _record_request(record, config, cli_vars, backend, ssh_key, env)
    rows = [replace(r, attempts=max(r.attempts - 1, 0))  # the attach finishes the launched attempt
            if r.status is PointStatus.DETACHED else r for r in rows_of_record(record)]
    header = {k: v for k, v in record.items() if k != "points"}
    sweep_record = SweepRecord(sweep_record_path(env, sweep_id), header,
                               backend=_open_backend(request.backend, env))
    view = _make_view(plain or as_json, len(rows), sweep_id)
    driver = SweepDriver([r.point for r in rows], runner=_attach_runner(stack_file, request, env),
                         options=SweepOptions(max_parallel=max_parallel), record=sweep_record,
                         sweep_id=sweep_id, view=view, rows=rows)
    waiting = sum(1 for r in rows if r.status is PointStatus.DETACHED)
    return _drive(driver, view, f"sweep {sweep_id}: collecting {waiting} detached points of "
                  f"{len(rows)}, at most {max_parallel} at once (record: {sweep_record.path})")


def _attach_runner(config: Path, base: Any, env: Mapping[str, str]) -> Any:
    """A point's collection: the public `attach_stack`. When the point has nothing left to
    attach (someone ran `runpod-deploy attach` on it), its last run is reported instead."""
    from dataclasses import replace

    from runpod_deploy.api import NothingToAttachError, attach_stack

    def run(point: "SweepPoint", reporter: Any, control: Any) -> Any:
        request = replace(base, cli_vars=(*base.cli_vars, *point.cli_vars))
        try:
            return attach_stack(config, request, env=env, reporter=reporter,
                                on_run_dir=control.run_dir)
        except NothingToAttachError:
            finished = _finished_elsewhere(config, request, env)
            if finished is None:
                raise
            return finished

    return run


def _finished_elsewhere(config: Path, request: Any, env: Mapping[str, str]) -> Any:
    """The point's last finished run (as an `ApplyResult`), when its state records one."""
    from runpod_deploy.api import load_stack, open_stack_store
    from runtime.outcome import ApplyResult
    from runtime.rundir import MANIFEST_FILENAME, RunOutcome

    stack = load_stack(config, cli_vars=request.cli_vars, vars_file=request.vars_file, env=env,
                       backend=request.backend)
    state = open_stack_store(stack, env).read()
    last = state.last_run
    if last is None or last.outcome not in {o.value for o in RunOutcome}:
        return None
    run_dir = Path(last.run_dir or "")
    manifest = run_dir / MANIFEST_FILENAME
    return ApplyResult(outcome=RunOutcome(last.outcome),
                       detail=f"already finished ({last.run_id}: {last.outcome})",
                       run_dir=run_dir, manifest_path=manifest if manifest.is_file() else None,
                       pod_id=None, state=state)


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
        detached = sum(1 for r in rows if r.status.value == "detached")
        if detached:
            print(f"{detached} of {len(rows)} points launched detached (each pod supervises its "
                  f"job); see them: runpod-deploy sweep --status {result.sweep_id}; collect them: "
                  f"runpod-deploy sweep --attach {result.sweep_id}", file=err)
        else:
            print(f"{done} of {len(rows)} points succeeded; fleet cost ${result.total_usd:.4f}",
                  file=err)
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
