"""Commands that ask RunPod: ls-stale, cleanup, logs, estimate, gpu-prices, gpu-list,
gpu-inventory.

Names, flags, output and exit codes follow the original runpod-deploy (`cleanup --all-stopped`
exits 2 when a delete failed, `gpu-inventory` exits 3 on a stock-out); every listing also has
`--json`. The work is in `runtime.ops`; this module parses, prints and picks the exit code.
Notes for a human go to stderr so that stdout holds only data.
"""


import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
    ConfigOpt,
    LocalOpt,
    ProviderOpt,
    QuietOpt,
    VarOpt,
    VarsFileOpt,
    VerboseOpt,
    environment,
    fail,
    set_verbosity,
)

if TYPE_CHECKING:
    from runtime.providers.protocol import PodProvider

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


class CloudChoice(str, Enum):
    SECURE = "SECURE"
    COMMUNITY = "COMMUNITY"


class ModeChoice(str, Enum):
    DELETE = "delete"
    STOP = "stop"
    PRESERVE = "preserve"


_CLOUD = Annotated[CloudChoice, typer.Option("--cloud-type", help="Whose prices to show.")]
_SPOT = Annotated[bool, typer.Option("--spot", help="Spot (interruptible) prices.")]


def _provider(kind: str, env: dict[str, str]) -> "PodProvider":
    from runtime.errors import ProviderError
    from runtime.providers import make_provider

    provider = make_provider(kind, env)
    if provider is None:
        raise ProviderError(f"{kind} was not found on PATH; install it, or use --provider api "
                            "(with RUNPOD_API_KEY) or --local", provider=kind)
    return provider


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _answered_yes(question: str) -> bool:
    """Ask on stderr and read one line from stdin, whatever stdin is (a terminal, a pipe, a
    file): the original's prompt, so `echo y | ...` works. End of input means no."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


def register(app: typer.Typer) -> None:
    @app.command("ls-stale")
    def ls_stale(as_json: _JSON = False, provider: ProviderOpt = "runpodctl",
                 local: LocalOpt = False, verbose: VerboseOpt = False,
                 quiet: QuietOpt = False) -> None:
        """List every stopped (EXITED) pod with its volume disk's $/day and $/month."""
        set_verbosity(verbose, quiet)
        from reconciler.diagnostics import RunpodDeployError
        from runtime import ops

        try:
            env, _ = environment(local)
            stale = ops.list_stale_pods(_provider(provider, env))
        except RunpodDeployError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json([pod.to_json_value() for pod in stale])
        else:
            typer.echo(ops.format_stale_table(stale), nl=False)

    @app.command()
    def cleanup(
        config: Annotated[Optional[Path], typer.Option(  # noqa: UP045
            "--config", "-c", help="Act on the pod this stack's state records (on its "
            "backend).")] = None,
        backend: BackendOpt = None,
        state_file: Annotated[Optional[Path], typer.Option(  # noqa: UP045
            "--state-file", help="Act on the pod this stack state file records.")] = None,
        all_stopped: Annotated[bool, typer.Option(
            "--all-stopped", help="Delete every stopped (EXITED) pod of the account.")] = False,
        mode: Annotated[ModeChoice, typer.Option(
            "--mode", help="With --state-file: delete (clears the record), stop (the volume "
            "keeps billing) or preserve.")] = ModeChoice.DELETE,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Say what would be done; change nothing.")] = False,
        provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Delete, stop or keep one stack's pod, or delete every stopped pod (exit 2 if any
        delete failed). Without --yes the answer is read from stdin (a terminal or a pipe, as
        in `echo y | runpod-deploy cleanup --all-stopped`); end of input means no."""
        set_verbosity(verbose, quiet)
        from reconciler.diagnostics import RunpodDeployError
        from runtime import ops

        if sum((state_file is not None, config is not None, all_stopped)) != 1:
            raise typer.BadParameter("give exactly one of --config STACK, --state-file PATH or "
                                     "--all-stopped",
                                     param_hint="'--config' / '--state-file' / '--all-stopped'")
        try:
            env, _ = environment(local)
            the_provider = _provider(provider, env)
            if config is not None:
                from runpod_deploy.api import load_stack, open_stack_store

                store = open_stack_store(load_stack(config, env=env, backend=backend), env)
                outcome = ops.cleanup_recorded_pod(store.path, ops.CleanupMode(mode.value),
                                                   the_provider, dry_run=dry_run, store=store)
                typer.echo(ops.format_cleanup(outcome, store.location), nl=False)
                return
            if state_file is not None:
                outcome = ops.cleanup_recorded_pod(state_file, ops.CleanupMode(mode.value),
                                                   the_provider, dry_run=dry_run)
                typer.echo(ops.format_cleanup(outcome, state_file), nl=False)
                return
            stale = ops.list_stale_pods(the_provider)
        except RunpodDeployError as exc:
            raise fail(exc) from None
        if not stale:
            typer.echo("no stopped (EXITED) pods; nothing to delete", err=True)
            return
        typer.echo(ops.format_stale_table(stale), nl=False)
        if not yes and not dry_run and not _answered_yes(f"Delete all {len(stale)} pods?"):
            typer.echo("aborted; no pod deleted", err=True)
            raise typer.Exit(1)
        results = ops.delete_pods(the_provider, [p.pod_id for p in stale], dry_run=dry_run)
        failed = [r for r in results if not r.ok]
        for result in failed:
            typer.echo(f"failed to delete {result.pod_id}: {result.message}", err=True)
        verb = "would delete" if dry_run else "deleted"
        typer.echo(f"{verb}: {len(results) - len(failed)}; failed: {len(failed)}", err=True)
        if failed:
            raise typer.Exit(2)

    @app.command()
    def logs(
        config: ConfigOpt,
        backend: BackendOpt = None,
        lines: Annotated[int, typer.Option("--lines", "-n", min=0,
                                           help="Lines of history to show first.")] = 200,
        no_follow: Annotated[bool, typer.Option(
            "--no-follow", help="Print the last lines and stop.")] = False,
        ssh_key: Annotated[Optional[Path], typer.Option(  # noqa: UP045
            "--ssh-key", help="Private key for the pod (overrides ssh.key_path).",
            envvar="RUNPOD_DEPLOY_SSH_KEY")] = None,
        var: VarOpt = None,
        vars_file: VarsFileOpt = None,
        provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Tail the run log of the stack's current pod over SSH (its pinned host key only)."""
        set_verbosity(verbose, quiet)
        import os

        from reconciler.diagnostics import RunpodDeployError
        from runpod_deploy.api import load_stack
        from runtime import ops

        try:
            env, sim_key = environment(local)
            stack = load_stack(config, cli_vars=var or (), vars_file=vars_file, env=env,
                               backend=backend)
            key = ssh_key or sim_key or Path(os.path.expanduser(stack.job.spec.ssh.key_path))
            from runpod_deploy.api import open_stack_store

            store = open_stack_store(stack, env)
            store.pull_pins_on_read = True  # the pod's host key may have been pinned elsewhere
            ops.stream_pod_log(state_path=store.path, identity=stack.identity, store=store,
                               provider=_provider(provider, env), key_path=key,
                               log_path=stack.job.spec.run.log_path, lines=lines,
                               follow=not no_follow, on_line=typer.echo)
        except RunpodDeployError as exc:
            raise fail(exc) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    @app.command()
    def estimate(
        config_arg: Annotated[Optional[Path], typer.Argument(  # noqa: UP045
            metavar="[CONFIG]", help="The stack file (as the original took it), or --config.",
            show_default=False)] = None,
        config: Annotated[Optional[Path], typer.Option(  # noqa: UP045
            "--config", "-c", help="The stack file (YAML).")] = None,
        var: VarOpt = None, vars_file: VarsFileOpt = None,
        as_json: _JSON = False, provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False, verbose: VerboseOpt = False, quiet: QuietOpt = False,
    ) -> None:
        """Where the stack would land now (GPU x datacenter walk over live stock and prices),
        its $/hr and the forecast under the cost cap. Exit 1 if no GPU is in stock."""
        from reconciler.diagnostics import RunpodDeployError
        from runpod_deploy.api import load_stack
        from runtime import ops

        set_verbosity(verbose, quiet)
        if (config_arg is None) == (config is None):
            raise typer.BadParameter("give the stack file once: estimate CONFIG or "
                                     "estimate --config CONFIG", param_hint="'CONFIG'")
        config = config_arg or config
        assert config is not None
        try:
            env, _ = environment(local)
            stack = load_stack(config, cli_vars=var or (), vars_file=vars_file, env=env)
            catalog = ops.priced_catalog(_provider(provider, env), env)
        except RunpodDeployError as exc:
            raise fail(exc) from None
        result = ops.estimate(stack.job.spec, catalog, config_path=str(config))
        if as_json:
            _print_json(result.model_dump(mode="json"))
        else:
            typer.echo(ops.format_estimate(result), nl=False)
        if result.selected is None:
            raise typer.Exit(1)

    @app.command("gpu-prices")
    def gpu_prices(cloud_type: _CLOUD = CloudChoice.SECURE, spot: _SPOT = False,
                   as_json: _JSON = False, provider: ProviderOpt = "runpodctl",
                   local: LocalOpt = False,
                   no_price_cache: Annotated[bool, typer.Option(
                       "--no-price-cache", help="Ask RunPod now, not a cache (prices are "
                       "always read fresh: accepted for the original's scripts).")] = False,
                   verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
        """Every GPU type's $/GPU/hr, cheapest first. Exit 1 when RunPod gives no prices."""
        set_verbosity(verbose, quiet)
        from reconciler.diagnostics import RunpodDeployError
        from reconciler.observed import CloudType
        from runtime import ops

        cloud = CloudType(cloud_type.value)
        try:
            env, _ = environment(local)
            rows = ops.gpu_prices(ops.priced_catalog(_provider(provider, env), env), cloud,
                                  spot=spot)
        except RunpodDeployError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json([row.model_dump(mode="json") for row in rows])
        elif rows:
            typer.echo(ops.format_gpu_prices(rows, cloud, spot=spot), nl=False)
        if not any(row.hourly_usd is not None for row in rows):
            typer.echo("error: no prices returned; check RUNPOD_API_KEY (runpodctl lists none)",
                       err=True)
            raise typer.Exit(1)

    @app.command("gpu-list")
    def gpu_list(
        datacenter: Annotated[str, typer.Option("--datacenter", help="A datacenter id.")],
        cloud_type: _CLOUD = CloudChoice.SECURE,
        spot: _SPOT = False,
        as_json: _JSON = False,
        provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False,
        no_prices: Annotated[bool, typer.Option(
            "--no-prices", help="Stock only: do not fetch prices (offline, no API key).")
        ] = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """The GPUs a datacenter lists: stock, best first, and $/GPU/hr."""
        from dataclasses import replace

        from reconciler.diagnostics import RunpodDeployError
        from reconciler.observed import CloudType
        from runtime import ops

        set_verbosity(verbose, quiet)
        cloud = CloudType(cloud_type.value)
        try:
            env, _ = environment(local)
            the_provider = _provider(provider, env)
            catalog = (replace(the_provider.catalog(), prices=()) if no_prices
                       else ops.priced_catalog(the_provider, env))
            rows = ops.gpu_stock(catalog, datacenter, cloud, spot=spot)
        except RunpodDeployError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json([row.model_dump(mode="json") for row in rows])
        else:
            typer.echo(ops.format_gpu_list(datacenter, rows, cloud, spot=spot), nl=False)

    @app.command("gpu-inventory")
    def gpu_inventory(config: ConfigOpt, var: VarOpt = None, vars_file: VarsFileOpt = None,
                      as_json: _JSON = False, provider: ProviderOpt = "runpodctl",
                      local: LocalOpt = False, verbose: VerboseOpt = False,
                      quiet: QuietOpt = False) -> None:
        """The stack's gpu_order in each of its datacenters by stock. Exit 3 when none is
        stocked anywhere (with the GPUs that are, to widen gpu_order)."""
        set_verbosity(verbose, quiet)
        from reconciler.diagnostics import RunpodDeployError
        from runpod_deploy.api import load_stack
        from runtime import ops

        try:
            env, _ = environment(local)
            stack = load_stack(config, cli_vars=var or (), vars_file=vars_file, env=env)
            inventory = ops.gpu_inventory(stack.job.spec, _provider(provider, env).catalog())
        except RunpodDeployError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json({**inventory.model_dump(mode="json"),
                         "any_stocked": inventory.any_stocked,
                         "widening_hint": list(inventory.widening_hint)})
        else:
            typer.echo(ops.format_inventory(inventory), nl=False)
        if not inventory.any_stocked:
            raise typer.Exit(3)
