"""`runpod-deploy sim ...`: the local RunPod simulator, delegated to `runpod_sim`.

Only typer and the stdlib are imported here; the simulator loads inside each command.
"""


from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[Path | None, typer.Option("--home", help="simulator home directory "
                                                  "(default $RUNPOD_SIM_HOME or ~/.cache/runpod-sim)")]


def _run(*words: str, home: Path | None) -> None:
    from runpod_sim.cli import main

    argv = [words[0], *(["--home", str(home)] if home else []), *words[1:]]
    code = main(argv)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    sim = typer.Typer(help="Run a local RunPod simulator (real sshd pods on loopback).",
                      no_args_is_help=True)
    app.add_typer(sim, name="sim")

    @sim.command()
    def up(home: HomeOption = None,
           knob: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, e.g. "
                                                          "image_pull_sec=2")] = None) -> None:
        """Start the simulator in the background and print where it listens."""
        words = [w for k in knob or [] for w in ("--knob", k)]
        _run("up", *words, home=home)

    @sim.command()
    def down(home: HomeOption = None) -> None:
        """Stop the simulator and every pod process."""
        _run("down", home=home)

    @sim.command()
    def status(home: HomeOption = None,
               json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Pods, their statuses and the billing so far."""
        _run("status", *(["--json"] if json_output else []), home=home)

    @sim.command()
    def env(home: HomeOption = None,
            json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Shell exports that point RunPod clients (runpodctl, SDKs) at the simulator."""
        _run("env", *(["--json"] if json_output else []), home=home)

    @sim.command()
    def fault(name: Annotated[str, typer.Argument(help="a fault, or 'clear' / 'list'")],
              params: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE ...")] = None,
              home: HomeOption = None) -> None:
        """Arm a fault (stockout, http_error, preempt, ...); see docs/simulator.md."""
        _run("fault", name, *(params or []), home=home)
