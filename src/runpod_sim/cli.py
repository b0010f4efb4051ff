"""`runpod-sim`: start, stop, inspect and break the local RunPod.

    runpod-sim up [--home DIR] [--knob NAME=VALUE ...]   start in the background
    runpod-sim down | status [--json] | env [--json] | serve
    runpod-sim fault NAME [KEY=VALUE ...] | fault clear | fault list
    runpod-sim knobs [NAME=VALUE ...]

The home defaults to $RUNPOD_SIM_HOME or ~/.cache/runpod-sim.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runpod_sim.control import ControlError, SimInfo, control, default_home, env_for
from runpod_sim.hosts import missing_prerequisites


class SimError(RuntimeError):
    """A command could not do what was asked; the message says why and what to do."""


def _pairs(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` words to a dict, values parsed as JSON when they are JSON (numbers, bools)."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SimError(f"expected KEY=VALUE, got {item!r}")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


def running(home: Path) -> SimInfo:
    info = SimInfo.read(home)
    if info is None or not info.is_alive():
        raise SimError(f"no simulator is running in {home}; start one with: runpod-sim up")
    return info


def up(home: Path, knobs: dict[str, Any] | None = None, timeout: float = 20.0) -> SimInfo:
    """Start a detached simulator in `home` (or return the one already running there)."""
    problems = missing_prerequisites()
    if problems:
        raise SimError("the simulator cannot run pods here:\n  " + "\n  ".join(problems))
    existing = SimInfo.read(home)
    if existing is not None and existing.is_alive():
        return existing
    home.mkdir(parents=True, exist_ok=True)
    (home / "sim.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "runpod_sim.cli", "serve", "--home", str(home)]
    for key, value in (knobs or {}).items():
        argv += ["--knob", f"{key}={json.dumps(value)}"]
    # A shell starts the server in the background and exits at once: the server is nobody's
    # child here, so it outlives this process and leaves no zombie behind.
    launcher = subprocess.run(
        ["sh", "-c", 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!', "sh",
         str(home / "sim.log"), *argv],
        stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True, check=True,
        text=True)
    pid = int(launcher.stdout.strip())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = SimInfo.read(home)
        if info is not None and info.pid == pid:
            return info
        if not _pid_alive(pid):
            break
        time.sleep(0.05)
    tail = (home / "sim.log").read_text(errors="replace")[-2000:]
    raise SimError(f"the simulator did not start (see {home / 'sim.log'}):\n{tail}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # it went between the two looks
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def down(home: Path, timeout: float = 20.0) -> bool:
    """Stop the simulator in `home` and every pod process; False if none was running."""
    info = SimInfo.read(home)
    if info is None:
        return False
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        (home / "sim.json").unlink(missing_ok=True)
        _kill_leftover_pods(home)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(info.pid):
            break
        time.sleep(0.05)
    else:
        print(f"runpod-sim: the server (pid {info.pid}) did not stop within {timeout:.0f}s; "
              f"killing it (thread stacks in {home / 'sim.log'})", file=sys.stderr)
        os.kill(info.pid, signal.SIGKILL)
    _kill_leftover_pods(home)
    return True


def _kill_leftover_pods(home: Path) -> None:
    """Pod processes of this home that outlived the server (it was killed before it could stop
    them): a pod is an `unshare` whose command line names its directory under `<home>/pods/`."""
    marker = str((home / "pods").absolute()).encode() + b"/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"unshare\0") and marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _format_status(status: dict[str, Any]) -> str:
    lines = [f"{'ID':<15} {'NAME':<24} {'STATUS':<8} {'GPU':<26} {'SSH':<6} {'$/HR':>7} {'BILLED $':>9}"]
    for pod in status["pods"]:
        lines.append(f"{pod['id']:<15} {pod['name'][:24]:<24} {pod['desiredStatus']:<8} "
                     f"{str(pod['gpuCount']) + 'x ' + pod['gpuTypeId']:<26} "
                     f"{pod['sshPort'] or '-':<6} {pod['costPerHr']:>7.3f} "
                     f"{pod['billing']['total_usd']:>9.4f}")
    billing = status["billing"]
    lines.append(f"total billed so far: ${billing['total_usd']:.4f}; "
                 f"spending ${billing['current_spend_per_hr']:.3f}/hr now")
    if status["faults"]:
        lines.append("armed faults: " + ", ".join(json.dumps(f) for f in status["faults"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runpod-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="simulator home directory")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "serve"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE")
        cmd.add_argument("--home", type=Path, default=None, dest="sub_home")
    for name in ("down", "status", "env"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--home", type=Path, default=None, dest="sub_home")
        if name in ("status", "env"):
            cmd.add_argument("--json", action="store_true")
    fault = sub.add_parser("fault", help="arm or carry out a fault; 'clear' and 'list' too")
    fault.add_argument("name")
    fault.add_argument("params", nargs="*", metavar="KEY=VALUE")
    fault.add_argument("--home", type=Path, default=None, dest="sub_home")
    knobs = sub.add_parser("knobs")
    knobs.add_argument("params", nargs="*", metavar="NAME=VALUE")
    knobs.add_argument("--home", type=Path, default=None, dest="sub_home")
    args = parser.parse_args(argv)
    home = (getattr(args, "sub_home", None) or args.home or default_home()).expanduser().resolve()
    try:
        return _run(args, home)
    except (SimError, ControlError, OSError) as error:
        print(f"runpod-sim: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, home: Path) -> int:
    if args.command == "serve":
        from runpod_sim.server import serve

        problems = missing_prerequisites()
        if problems:
            raise SimError("the simulator cannot run pods here:\n  " + "\n  ".join(problems))
        serve(home, knobs=_pairs(args.knob))
    elif args.command == "up":
        info = up(home, _pairs(args.knob))
        print(f"runpod-sim listening on {info.url} (home {home}, pid {info.pid})")
        print(f'point clients at it with: eval "$(runpod-sim env --home {shlex.quote(str(home))})"')
    elif args.command == "down":
        print("runpod-sim stopped" if down(home) else f"no simulator was running in {home}")
    elif args.command == "status":
        status = control(running(home), "GET", "/_sim/status")
        print(json.dumps(status, indent=2) if args.json else _format_status(status))
    elif args.command == "env":
        env = env_for(running(home), path=os.environ.get("PATH", ""))
        if args.json:
            print(json.dumps(env, indent=2))
        else:
            print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items()))
    elif args.command == "fault":
        info = running(home)
        if args.name == "clear":
            control(info, "DELETE", "/_sim/faults")
            print("faults cleared")
        elif args.name == "list":
            print(json.dumps(control(info, "GET", "/_sim/faults")["faults"], indent=2))
        else:
            print(json.dumps(control(info, "POST", "/_sim/faults",
                                     {"name": args.name, **_pairs(args.params)})))
    elif args.command == "knobs":
        info = running(home)
        body = _pairs(args.params)
        print(json.dumps(control(info, "POST" if body else "GET", "/_sim/knobs", body or None),
                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
