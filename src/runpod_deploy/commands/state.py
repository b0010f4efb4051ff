"""`state list | show | pull | push | migrate | unlock`: the stacks' states on a backend.

The backend is `--backend URL`, else `RUNPOD_DEPLOY_BACKEND`, else the local state directory
(`file://$RUNPOD_DEPLOY_STATE_DIR`, default `~/.local/state/runpod-deploy`). A STACK is named as
`state list` shows it (its state file name, e.g. `train-1a2b3c4d`), by its name when that is
unique, or by its stack file. The work is in `runtime.backends.admin`.
"""


import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from runpod_deploy.commands._options import BackendOpt, fail

if TYPE_CHECKING:
    from runtime.backends import BackendUrl
    from runtime.statestore import StateStore

state_app = typer.Typer(name="state", no_args_is_help=True, add_completion=False,
                        help="Show and move the stacks' states (list, show, pull, push, migrate, "
                        "unlock).")

_STACK = Annotated[str, typer.Argument(
    help="A stack as `state list` names it, its name, or its stack file.", show_default=False)]


def _url(backend: str | None) -> "BackendUrl":
    from runtime.backends import parse_backend_url
    from runtime.statestore import default_state_dir

    given = backend or os.environ.get("RUNPOD_DEPLOY_BACKEND")
    return parse_backend_url(given or f"file://{default_state_dir()}")


def _local_dir() -> str:
    from runtime.statestore import default_state_dir

    return default_state_dir()


def _store(url: "BackendUrl", stack: str, backend: str | None) -> "StateStore":
    """The store of STACK: a stack file is loaded (its key derived as apply derives it)."""
    from runtime.backends import state_key
    from runtime.backends.admin import find_key
    from runtime.statestore import store_at

    path = Path(stack)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from runpod_deploy.api import load_stack

        loaded = load_stack(path, backend=backend)
        return store_at(url, state_key(loaded.state_path.name), local_dir=_local_dir(),
                        identity=loaded.identity)
    return store_at(url, find_key(url, stack), local_dir=_local_dir())


def register(app: typer.Typer) -> None:
    app.add_typer(state_app)


@state_app.command("list")
def list_(backend: BackendOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each stack's pod, status, serial, last run and lock holder."""
    from reconciler.diagnostics import RunpodDeployError
    from runtime.backends.admin import list_states

    try:
        url = _url(backend)
        rows = list_states(url, local_dir=_local_dir())
    except RunpodDeployError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({"backend": url.display,
                               "stacks": [row.to_json_value() for row in rows]}, indent=2))
        return
    if not rows:
        typer.echo(f"no stack states in {url.display}", err=True)
        return
    header = ("STACK", "NAME", "POD", "STATUS", "SERIAL", "LAST RUN", "LOCK")
    table = [header] + [(r.stack, r.name, r.pod_id or "-", r.status, str(r.serial),
                         f"{r.last_run} ({r.last_outcome})" if r.last_run else "-",
                         r.lock or "-") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    typer.echo(f"Backend {url.display}")
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                   + "  " + row[-1])


@state_app.command()
def show(stack: _STACK, backend: BackendOpt = None) -> None:
    """One stack's state: pod, pending operation, last run, serial, lineage, lock."""
    from reconciler.diagnostics import RunpodDeployError

    try:
        store = _store(_url(backend), stack, backend)
        state = store.read()
        lock = store.lock_description()
    except RunpodDeployError as exc:
        raise fail(exc) from None
    lines = [f"State   {store.location}",
             f"Stack   {state.identity.name if state.identity else '-'}",
             f"Serial  {state.serial} (lineage {state.lineage or '-'})"]
    if state.pod is not None:
        pod = state.pod
        lines.append(f"Pod     {pod.pod_id} {pod.name} ({pod.gpu_type_id or '?'} in "
                     f"{pod.datacenter_id or '?'}, created {pod.created_at or '?'})")
    else:
        lines.append("Pod     none recorded")
    if state.pending is not None:
        p = state.pending
        lines.append(f"Pending {p.kind.value} of {p.pod_name} since {p.started_at} (an apply "
                     "was interrupted; the next plan resolves it)")
    if state.last_run is not None:
        lines.append(f"Last    {state.last_run.run_id}: {state.last_run.outcome} "
                     f"({state.last_run.run_dir})")
    lines.append(f"Lock    {lock or 'none'}")
    typer.echo("\n".join(lines))


@state_app.command()
def pull(stack: _STACK, backend: BackendOpt = None,
         out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
             "--out", help="Write to FILE instead of stdout.")] = None) -> None:
    """Print a stack's state as JSON (to edit and `push`, or to keep)."""
    from reconciler.diagnostics import RunpodDeployError

    try:
        text = _store(_url(backend), stack, backend).read().to_json()
    except RunpodDeployError as exc:
        raise fail(exc) from None
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@state_app.command()
def push(stack: _STACK,
         file: Annotated[Path, typer.Argument(help="A state file (from `state pull`, or one a "
                                              "refused write kept).")],
         backend: BackendOpt = None,
         force: Annotated[bool, typer.Option(
             "--force", help="Replace even another lineage or an older serial.")] = False) -> None:
    """Replace a stack's state with FILE, under the stack's lock."""
    from reconciler.diagnostics import RunpodDeployError
    from runtime.backends.admin import push_state

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(OSError(f"cannot read {file}: {exc.strerror}")) from None
    try:
        store = _store(_url(backend), stack, backend)
        written = push_state(store, text, force=force)
    except RunpodDeployError as exc:
        raise fail(exc) from None
    typer.echo(f"pushed {file} to {store.location} (serial {written.serial})")


@state_app.command()
def migrate(to: Annotated[str, typer.Option("--to", help="The backend URL to move to.",
                                            show_default=False)],
            stacks: Annotated[Optional[list[Path]], typer.Argument(  # noqa: UP045
                help="Move these stacks (their files) from where they are now: the local "
                "state file unless --backend says otherwise. Needed for states written "
                "without a backend, which a backend keys differently.",
                show_default=False)] = None,
            backend: BackendOpt = None) -> None:
    """Copy every stack's state (lineage and serial kept) and run record to --to; the old
    states stay in place, marked as migrated, so that no one applies from them by mistake."""
    from reconciler.diagnostics import RunpodDeployError
    from runtime.backends import parse_backend_url
    from runtime.backends.admin import migrate as move

    if stacks:
        _migrate_stacks(stacks, to, backend)
        return
    try:
        source, target = _url(backend), parse_backend_url(to)
        report = move(source, target, local_dir=_local_dir())
    except RunpodDeployError as exc:
        raise fail(exc) from None
    typer.echo(f"migrated {len(report.copied)} stack states from {source.display} to "
               f"{target.display} ({len(report.unchanged)} already there, "
               f"{report.runs_copied} run records copied); use --backend {to} (or "
               "RUNPOD_DEPLOY_BACKEND, or `backend:` in the stack files) from now on")


def _migrate_stacks(files: list[Path], to: str, backend: str | None) -> None:
    from reconciler.diagnostics import RunpodDeployError
    from runpod_deploy.api import load_stack, open_stack_store
    from runtime.backends import parse_backend_url
    from runtime.backends.admin import migrate_stack

    counts = {"copied": 0, "unchanged": 0, "empty": 0}
    try:
        display = parse_backend_url(to).display
        for file in files:
            source = open_stack_store(load_stack(file, backend=backend or ""))
            target = open_stack_store(load_stack(file, backend=to))
            outcome = migrate_stack(source, target, display)
            counts[outcome] += 1
            typer.echo(f"{file}: {outcome} ({source.location} -> {target.location})")
    except RunpodDeployError as exc:
        raise fail(exc) from None
    typer.echo(f"migrated {counts['copied']} stack states to {display} ({counts['unchanged']} "
               f"already there, {counts['empty']} with nothing recorded); use --backend {to} "
               "(or RUNPOD_DEPLOY_BACKEND, or `backend:` in the stack files) from now on")


@state_app.command()
def unlock(stack: _STACK,
           lock_id: Annotated[str, typer.Argument(help="The lock id the locked error names.")],
           backend: BackendOpt = None) -> None:
    """Remove a stack's lock whose holder is gone (the id guards against removing a live one)."""
    from reconciler.diagnostics import RunpodDeployError
    from runtime.backends.admin import unlock as remove

    try:
        url = _url(backend)
        store = _store(url, stack, backend)
        assert store.key is not None or url.is_file
        held = remove(url, store.key or "", lock_id)
    except RunpodDeployError as exc:
        raise fail(exc) from None
    typer.echo(f"removed the lock held by {held}")
