"""The shell snippets the executor runs on a pod to start, watch and stop a job.

Pure string builders (every path is shell-quoted), kept apart from the SSH code so they can be
tested against a local bash exactly as they will run on the pod.

Layout on the pod, per run: a control directory (`control_dir`, on the container disk, so it
vanishes with a stop) holding `pid` (the job's process group leader), `exit_code` (written when
the job ends, whatever the reason) and `watchdog.pid`. The job runs in its own session
(`setsid`), detached from SSH, so a dropped connection does not kill it; the watchdog kills the
whole process group at the deadline even when no client is connected any more, because RunPod's
own `stopAfter` / `terminateAfter` are accepted and ignored.
"""

from __future__ import annotations

import shlex

WATCHDOG_MARKER = "__RUNPOD_DEPLOY_WATCHDOG__"
"""Written to the job's log by the watchdog when it ends the job at the deadline."""


def launch_command(
    *, script_path: str, log_path: str, control_dir: str, env_prefix: str = ""
) -> str:
    """Start `bash script_path` detached, output appended to `log_path`; prints the pid.

    The log is truncated first so that markers from an earlier run on a recycled pod cannot
    be mistaken for this run's. `exit_code` is written by the wrapper after the script ends.
    """
    q_script, q_log, q_control = map(shlex.quote, (script_path, log_path, control_dir))
    runner = f"{env_prefix} bash {q_script}".strip()
    # The wrapper handles TERM (a handled trap is reset in children, so the job still gets it)
    # and so outlives its job long enough to record the job's exit status.
    wrapper = (
        f"trap true TERM; {runner} >> {q_log} 2>&1 < /dev/null; "
        f"echo $? > {q_control}/exit_code.tmp && mv {q_control}/exit_code.tmp {q_control}/exit_code"
    )
    return (
        f"set -e; mkdir -p {q_control} \"$(dirname {q_log})\"; rm -f {q_control}/exit_code; "
        f": > {q_log}; "
        f"setsid nohup bash -c {shlex.quote(wrapper)} > /dev/null 2>&1 < /dev/null & "
        f"echo $! > {q_control}/pid; cat {q_control}/pid"
    )


def watchdog_command(*, control_dir: str, log_path: str, deadline_sec: int, grace_sec: int = 15) -> str:
    """Arm a detached watchdog that ends the job's process group after `deadline_sec`.

    It writes `WATCHDOG_MARKER` to the log first, so the client (if still there) and the
    forensics both see why the job stopped; TERM, then KILL after `grace_sec`.
    """
    q_log, q_control = shlex.quote(log_path), shlex.quote(control_dir)
    body = (
        f"sleep {int(deadline_sec)}; "
        f"pid=$(cat {q_control}/pid 2>/dev/null) || exit 0; "
        f"[ -e {q_control}/exit_code ] && exit 0; "
        f"echo '{WATCHDOG_MARKER} deadline of {int(deadline_sec)}s reached; stopping the job' >> {q_log}; "
        f"kill -TERM -- -$pid 2>/dev/null; sleep {int(grace_sec)}; kill -KILL -- -$pid 2>/dev/null; "
        f"[ -e {q_control}/exit_code ] || echo 137 > {q_control}/exit_code"
    )
    return (
        f"mkdir -p {q_control}; "
        f"setsid nohup bash -c {shlex.quote(body)} > /dev/null 2>&1 < /dev/null & "
        f"echo $! > {q_control}/watchdog.pid"
    )


def status_command(*, control_dir: str) -> str:
    """Print `running`, `exited <code>` or `unknown` for the job of this control dir."""
    q_control = shlex.quote(control_dir)
    return (
        f"if [ -e {q_control}/exit_code ]; then echo exited $(cat {q_control}/exit_code); "
        f"elif [ -e {q_control}/pid ] && kill -0 $(cat {q_control}/pid) 2>/dev/null; then echo running; "
        f"else echo unknown; fi"
    )


def stop_command(*, control_dir: str, grace_sec: int = 10) -> str:
    """End the job and its watchdog (TERM, then KILL): used on Ctrl-C, cost cap, max runtime."""
    q_control = shlex.quote(control_dir)
    return (
        f"for f in {q_control}/pid {q_control}/watchdog.pid; do "
        f"p=$(cat $f 2>/dev/null) && kill -TERM -- -$p 2>/dev/null; done; "
        f"for i in $(seq {int(grace_sec) * 5}); do "
        f"p=$(cat {q_control}/pid 2>/dev/null) && kill -0 $p 2>/dev/null || break; sleep 0.2; done; "
        f"for f in {q_control}/pid {q_control}/watchdog.pid; do "
        f"p=$(cat $f 2>/dev/null) && kill -KILL -- -$p 2>/dev/null; done; "
        f"for i in 1 2 3 4 5; do [ -e {q_control}/exit_code ] && break; sleep 0.1; done; "
        f"[ -e {q_control}/exit_code ] || echo 143 > {q_control}/exit_code"
    )


def parse_status(output: str) -> tuple[str, int | None]:
    """('running'|'exited'|'unknown', exit code or None) from `status_command`'s output."""
    words = output.strip().split()
    if words[:1] == ["exited"] and len(words) == 2 and words[1].lstrip("-").isdigit():
        return "exited", int(words[1])
    if words[:1] == ["running"]:
        return "running", None
    return "unknown", None
