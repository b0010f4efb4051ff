"""Read-only commands over past runs: manifest-summary, events, events-query, ls-runs,
compare-runs, capture-env.

Names, arguments, output and exit codes follow the original runpod-deploy so that existing
scripts keep working; every listing also has `--json`. The work is in `runtime.forensics`;
this module only parses arguments, prints and picks the exit code. Notes for a human (nothing
found) go to stderr so that stdout holds only data.
"""


import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from runpod_deploy.commands._options import QuietOpt, VerboseOpt, set_verbosity

if TYPE_CHECKING:
    import logging

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _stderr_warnings() -> "logging.Handler":
    """A handler that shows the readers' warnings (a skipped run, a torn line) as
    `warning: ...` on stderr. Built on first use: logging is imported only by these commands."""
    import logging

    class _StderrWarnings(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            typer.echo(f"warning: {record.getMessage()}", err=True)

    return _StderrWarnings(logging.WARNING)


def _warnings_to_stderr(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """The runtime logs what it skips; a forensic command must show it whatever logging is set."""

    @wraps(command)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import logging

        runtime_logger = logging.getLogger("runtime")
        handler = _stderr_warnings()
        runtime_logger.addHandler(handler)
        try:
            return command(*args, **kwargs)
        finally:
            runtime_logger.removeHandler(handler)

    return run


@contextmanager
def _team_runs(backend: str) -> Iterator[Path]:
    """The backend's run records in a temporary project root (removed afterwards)."""
    import tempfile

    from reconciler.diagnostics import RunpodDeployError
    from runpod_deploy.commands._options import fail
    from runtime.backends import parse_backend_url
    from runtime.backends.admin import fetch_runs

    with tempfile.TemporaryDirectory(prefix="runpod-deploy-runs-") as tmp:
        try:
            fetched = fetch_runs(parse_backend_url(backend), Path(tmp))
        except RunpodDeployError as exc:
            raise fail(exc) from None
        yield fetched


def register(app: typer.Typer) -> None:
    @app.command("manifest-summary")
    @_warnings_to_stderr
    def manifest_summary(
        manifest: Annotated[
            Path | None,
            typer.Argument(help="A manifest file, or the run dir that holds it."),
        ] = None,
        backend: Annotated[
            str | None,
            typer.Option("--backend", help="Summarise every run the team recorded in this "
                         "state backend (file://DIR or s3://BUCKET/PREFIX?...).",
                         show_default=False),
        ] = None,
        root: Annotated[
            Path | None,
            typer.Option("--root", help="Summarise every manifest under DIR, with totals."),
        ] = None,
        by_sweep: Annotated[bool, typer.Option(
            "--by-sweep", help="With --root: group the runs by the sweep that ran them, with "
            "totals per sweep.")] = False,
        as_json: _JSON = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Summarise one run's manifest, or every run under --root (or in --backend) with a
        TOTALS footer."""
        set_verbosity(verbose, quiet)
        from runtime import forensics

        if backend is not None:
            if manifest is not None or root is not None:
                raise typer.BadParameter("give --backend alone, not with a manifest or --root",
                                         param_hint="'--backend'")
            with _team_runs(backend) as fetched:
                rollup = forensics.collect_manifests(fetched)
                if as_json:
                    typer.echo(json.dumps(rollup.to_json_value(), indent=2))
                elif rollup.totals.manifests == 0:
                    typer.echo(f"no runs recorded in {backend}", err=True)
                else:
                    typer.echo(forensics.format_manifest_rollup(rollup))
            return
        if manifest is not None and root is None:
            loaded = forensics.load_manifest(manifest)
            if as_json:
                typer.echo(json.dumps(loaded.present_fields(), indent=2))
            else:
                typer.echo(forensics.format_manifest_summary(loaded))
        elif root is not None and manifest is None:
            rollup = forensics.collect_manifests(root)
            if by_sweep:
                groups = forensics.group_by_sweep([(str(p), m) for p, m in rollup.readable])
                if as_json:
                    typer.echo(json.dumps({"sweeps": [g.to_json_value() for g in groups],
                                           "totals": rollup.totals.model_dump()}, indent=2))
                elif groups:
                    typer.echo(forensics.format_sweep_groups(groups))
                else:
                    typer.echo(f"no manifests found under {root}", err=True)
            elif as_json:
                typer.echo(json.dumps(rollup.to_json_value(), indent=2))
            elif rollup.totals.manifests == 0:
                typer.echo(f"no manifests found under {root}", err=True)
            else:
                typer.echo(forensics.format_manifest_rollup(rollup))
        else:
            raise typer.BadParameter(
                "give exactly one of a manifest path or --root DIR",
                param_hint="'MANIFEST' / '--root'",
            )

    @app.command("events")
    @_warnings_to_stderr
    def events(
        run_dir: Annotated[Path, typer.Argument(help="A run dir (or its events.jsonl).")],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the events as JSON lines.")
        ] = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Show a run's events as a timeline relative to its first event."""
        set_verbosity(verbose, quiet)
        from runtime import forensics
        from runtime.rundir import RunDirError

        if not run_dir.exists():
            raise RunDirError(f"run dir not found: {run_dir}")
        recorded = forensics.load_events(run_dir)
        if as_json:
            for event in recorded:
                typer.echo(json.dumps(event.present_fields()))
        elif not recorded:
            typer.echo(f"no events in {run_dir}", err=True)
        else:
            typer.echo(forensics.format_events_timeline(recorded))

    @app.command("events-query")
    @_warnings_to_stderr
    def events_query(
        root: Annotated[
            Path, typer.Option("--root", help="Search every events.jsonl under DIR.")
        ] = Path("artifacts/runpod"),
        filter_: Annotated[
            list[str] | None,
            typer.Option(
                "--filter",
                metavar="KEY=VALUE",
                help="Keep events whose KEY equals VALUE as text; repeat to AND them.",
            ),
        ] = None,
        since: Annotated[
            str | None,
            typer.Option("--since", metavar="N{s|m|h|d}", help="Only events of the last N units."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON lines, each with its run_dir.")
        ] = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Find events across many runs, by field value and by age."""
        set_verbosity(verbose, quiet)
        from datetime import UTC, datetime

        from runtime import forensics

        try:
            filters = [forensics.parse_event_filter(text) for text in filter_ or ()]
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="'--filter'") from None
        try:
            window = None if since is None else forensics.parse_since(since)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="'--since'") from None
        rows = forensics.query_events(root, filters=filters, since=window, now=datetime.now(UTC))
        if as_json:
            for row in rows:
                typer.echo(json.dumps(row.to_json_value()))
        elif not rows:
            typer.echo(f"no matching events under {root}", err=True)
        else:
            typer.echo(forensics.format_event_rows(rows))

    @app.command("ls-runs")
    @_warnings_to_stderr
    def ls_runs(
        project_root: Annotated[
            Path,
            typer.Option("--project-root", help="The project whose artifacts/runpod/ to list."),
        ] = Path("."),
        backend: Annotated[
            str | None,
            typer.Option("--backend", help="List the whole team's runs recorded in this state "
                         "backend instead (file://DIR or s3://BUCKET/PREFIX?...).",
                         show_default=False),
        ] = None,
        limit: Annotated[
            int | None, typer.Option("--limit", min=0, help="Only the N most recent runs "
                                     "(0: every run, as in the original).")
        ] = None,
        by_sweep: Annotated[bool, typer.Option(
            "--by-sweep", help="Group the runs by the sweep that ran them (with each run's "
            "point and totals per sweep).")] = False,
        as_json: _JSON = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """List a project's runs, oldest first: job, pod, GPU, datacenter, wall time, cost."""
        set_verbosity(verbose, quiet)
        from runtime import forensics

        if backend is not None:
            with _team_runs(backend) as fetched:
                rows = forensics.list_runs(fetched, limit=limit or None)
            if as_json:
                typer.echo(json.dumps([row.model_dump() for row in rows], indent=2))
            elif not rows:
                typer.echo(f"no runs recorded in {backend}", err=True)
            else:
                typer.echo(forensics.format_run_table(rows))
            return
        resolved = project_root.resolve()
        if by_sweep:
            groups = forensics.group_by_sweep(forensics.runs_of_project(resolved, limit=limit or None))
            if as_json:
                typer.echo(json.dumps([g.to_json_value() for g in groups], indent=2))
            elif not groups:
                typer.echo(f"no runs found under {resolved / 'artifacts' / 'runpod'}", err=True)
            else:
                typer.echo(forensics.format_sweep_groups(groups))
            return
        rows = forensics.list_runs(resolved, limit=limit or None)
        if as_json:
            typer.echo(json.dumps([row.model_dump() for row in rows], indent=2))
        elif not rows:
            typer.echo(f"no runs found under {resolved / 'artifacts' / 'runpod'}", err=True)
        else:
            typer.echo(forensics.format_run_table(rows))

    @app.command("compare-runs")
    @_warnings_to_stderr
    def compare_runs(
        a: Annotated[Path, typer.Argument(help="Manifest (or run dir) of run A.")],
        b: Annotated[Path, typer.Argument(help="Manifest (or run dir) of run B.")],
        as_json: _JSON = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Compare two runs field by field. Exits 1 if either run failed (a CI gate)."""
        set_verbosity(verbose, quiet)
        from runtime import forensics

        manifest_a = forensics.load_manifest(a)
        manifest_b = forensics.load_manifest(b)
        rows = forensics.compare_manifests(manifest_a, manifest_b)
        either_failed = bool(manifest_a.failed or manifest_b.failed)
        if as_json:
            payload = {
                "a": str(a),
                "b": str(b),
                "either_failed": either_failed,
                "fields": [row.to_json_value() for row in rows],
            }
            typer.echo(json.dumps(payload, indent=2))
        else:
            typer.echo(forensics.format_comparison(a, b, manifest_a, manifest_b, rows))
        if either_failed:
            raise typer.Exit(1)

    @app.command("capture-env")
    @_warnings_to_stderr
    def capture_env(
        project_root: Annotated[
            Path, typer.Option("--project-root", help="The project to describe.")
        ] = Path("."),
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Print the local git SHA, dirty flag, branch and lockfile hash as JSON."""
        set_verbosity(verbose, quiet)
        from runtime.gitmeta import capture_deploy_metadata

        metadata = capture_deploy_metadata(project_root.resolve())
        typer.echo(json.dumps(metadata.present_fields(), indent=2))
