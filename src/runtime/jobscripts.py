"""The shell snippets the executor runs on a pod to start, watch and stop a job.

Pure string builders (every path is shell-quoted), kept apart from the SSH code so they can be
tested against a local bash exactly as they will run on the pod.

Layout on the pod, per run: a control directory (`control_dir`, on the container disk, so it
vanishes with a stop) holding `pid` (the job's process group leader), `exit_code` (written when
the job ends, whatever the reason), `watchdog.pid`, and with self-stop armed `self_stop.pid` and
`client_finished` (the client's "I have the results" marker). The job runs in its own session
(`setsid`), detached from SSH, so a dropped connection does not kill it; the watchdog kills the
whole process group at the deadline even when no client is connected any more, because RunPod's
own `stopAfter` / `terminateAfter` are accepted and ignored.

Self-stop (off unless `launch_command(self_stop_after_sec=...)`): a third detached process waits
for `exit_code` (success, failure, or the watchdog's deadline alike), then gives a client
`self_stop_after_sec` to write `client_finished`; if none does, it stops the pod from inside with
`runpodctl pod stop $RUNPOD_POD_ID`, as RunPod documents, so a pod nobody watches stops billing
GPU time. Stop, never delete: the results are still on the pod's disks. RunPod puts the pod id
and the pod-scoped key in the container's environment (PID 1's), not in an SSH session's, so the
waiter reads them from `/proc/1/environ`.
"""

from __future__ import annotations

import posixpath
import shlex

WATCHDOG_MARKER = "__RUNPOD_DEPLOY_WATCHDOG__"
"""Written to the job's log by the watchdog when it ends the job at the deadline."""

SELF_STOP_MARKER = "__RUNPOD_DEPLOY_SELF_STOP__"
"""Written to the job's log by the self-stop waiter when it stops the pod (or cannot)."""

ATTEMPT_VARIABLE = "RUNPOD_DEPLOY_ATTEMPT"
"""The job's environment says which attempt of the run it is (1, 2, ...), to resume from a
checkpoint after a restart."""

CONTAINER_ENV_PATH = "/proc/1/environ"
"""Where a process started over SSH finds the container's environment (NUL-separated)."""

FINISHED_MARKER = "client_finished"
"""File name, in the control dir, of the marker a client writes once it has finished the run."""

DEFAULT_SELF_STOP_POLL_SEC = 5.0


def finished_marker_path(control_dir: str) -> str:
    """Where a client marks a run finished, so the pod's self-stop stands down."""
    return posixpath.join(control_dir, FINISHED_MARKER)


def mark_finished_command(*, control_dir: str) -> str:
    """Mark the run finished by a client (idempotent): the self-stop waiter exits without
    stopping the pod. Harmless when self-stop was never armed."""
    q_control = shlex.quote(control_dir)
    return f"mkdir -p {q_control} && touch {shlex.quote(finished_marker_path(control_dir))}"


def launch_command(
    *,
    script_path: str,
    log_path: str,
    control_dir: str,
    env_prefix: str = "",
    attempt: int = 1,
    self_stop_after_sec: int | None = None,
    self_stop_poll_sec: float = DEFAULT_SELF_STOP_POLL_SEC,
    container_env_path: str = CONTAINER_ENV_PATH,
    durable_exit_code_path: str | None = None,
) -> str:
    """Start `bash script_path` detached, output appended to `log_path`; prints the pid.

    The log is truncated first so that markers from an earlier run on a recycled pod cannot
    be mistaken for this run's. `exit_code` is written by the wrapper after the script ends.
    The job sees `RUNPOD_DEPLOY_ATTEMPT=<attempt>`. With `self_stop_after_sec`, the self-stop
    waiter is armed (see the module docstring); it checks its files every `self_stop_poll_sec`.
    `durable_exit_code_path` (on the volume) gets a copy of the exit code, by the wrapper and
    by the waiter before it stops the pod, since a stop wipes the control dir with the
    container disk; `status_command` reads it when the control dir is gone.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt}")
    q_script, q_log, q_control = map(shlex.quote, (script_path, log_path, control_dir))
    q_finished = shlex.quote(finished_marker_path(control_dir))
    runner = f"{env_prefix} {ATTEMPT_VARIABLE}={int(attempt)} bash {q_script}".strip()
    # The wrapper handles TERM (a handled trap is reset in children, so the job still gets it)
    # and so outlives its job long enough to record the job's exit status.
    durable = ""
    forget_durable = ""
    if durable_exit_code_path is not None:
        durable = f"; {_copy_exit_code(control_dir, durable_exit_code_path)}"
        forget_durable = f"rm -f {shlex.quote(durable_exit_code_path)}; "
    wrapper = (
        f"trap true TERM; {runner} >> {q_log} 2>&1 < /dev/null; "
        f"echo $? > {q_control}/exit_code.tmp && mv {q_control}/exit_code.tmp {q_control}/exit_code"
        f"{durable}"
    )
    self_stop = ""
    if self_stop_after_sec is not None:
        waiter = _self_stop_body(
            control_dir=control_dir,
            log_path=log_path,
            grace_sec=self_stop_after_sec,
            poll_sec=self_stop_poll_sec,
            container_env_path=container_env_path,
            durable_exit_code_path=durable_exit_code_path,
        )
        self_stop = (
            f"setsid nohup bash -c {shlex.quote(waiter)} > /dev/null 2>&1 < /dev/null & "
            f"echo $! > {q_control}/self_stop.pid; "
        )
    return (
        f"set -e; mkdir -p {q_control} \"$(dirname {q_log})\"; "
        f"rm -f {q_control}/exit_code {q_finished}; {forget_durable}"
        f": > {q_log}; {self_stop}"
        f"setsid nohup bash -c {shlex.quote(wrapper)} > /dev/null 2>&1 < /dev/null & "
        f"echo $! > {q_control}/pid; cat {q_control}/pid"
    )


def _copy_exit_code(control_dir: str, durable_path: str) -> str:
    """Copy the control dir's exit code to `durable_path` (atomically, next to it)."""
    q_code = shlex.quote(posixpath.join(control_dir, "exit_code"))
    q_durable, q_tmp = shlex.quote(durable_path), shlex.quote(durable_path + ".tmp")
    return (f'mkdir -p "$(dirname {q_durable})" && cp {q_code} {q_tmp} && mv {q_tmp} {q_durable}')


def _self_stop_body(
    *,
    control_dir: str,
    log_path: str,
    grace_sec: int,
    poll_sec: float,
    container_env_path: str,
    durable_exit_code_path: str | None = None,
) -> str:
    """The self-stop waiter's script: wait for the job's end, then for a client, then stop.

    The key is read into a variable and handed to runpodctl through its environment, never on
    a command line or in the log; runpodctl's answer (which echoes the pod's env) goes nowhere.
    `pod stop` is runpodctl v2's; an image with a v1.x runpodctl knows only `stop pod` (which
    v2 keeps, hidden), so that is tried next.
    """
    if grace_sec < 0:
        raise ValueError(f"self_stop_after_sec must be 0 or more, not {grace_sec}")
    if poll_sec <= 0:
        raise ValueError(f"self_stop_poll_sec must be more than 0, not {poll_sec}")
    q_log, q_control = shlex.quote(log_path), shlex.quote(control_dir)
    q_finished = shlex.quote(finished_marker_path(control_dir))
    q_env = shlex.quote(container_env_path)
    poll = f"{poll_sec:g}"
    grace = int(grace_sec)
    return (
        f"while [ ! -e {q_control}/exit_code ]; do [ -e {q_finished} ] && exit 0; sleep {poll}; done; "
        f"end=$(( $(date +%s) + {grace} )); "
        f"while [ $(date +%s) -lt $end ]; do [ -e {q_finished} ] && exit 0; sleep {poll}; done; "
        f"[ -e {q_finished} ] && exit 0; "
        + (f"[ -e {shlex.quote(durable_exit_code_path)} ] || "
           f"{{ {_copy_exit_code(control_dir, durable_exit_code_path)}; }}; "
           if durable_exit_code_path is not None else "")
        + f"container_env() {{ tr '\\0' '\\n' < {q_env} 2>/dev/null | sed -n \"s/^$1=//p\" | head -n 1; }}; "
        f"pod=$(container_env RUNPOD_POD_ID); key=$(container_env RUNPOD_API_KEY); "
        f'pod=${{pod:-$RUNPOD_POD_ID}}; key=${{key:-$RUNPOD_API_KEY}}; '
        f'if [ -z "$pod" ]; then echo "{SELF_STOP_MARKER} cannot stop the pod: no RUNPOD_POD_ID '
        f'in the container environment" >> {q_log}; exit 1; fi; '
        f'echo "{SELF_STOP_MARKER} the job ended and no client finished the run within {grace}s; '
        f'stopping pod $pod (runpodctl pod stop)" >> {q_log}; '
        f"for try in 1 2 3; do "
        f'RUNPOD_API_KEY="$key" runpodctl pod stop "$pod" > /dev/null 2> {q_control}/self_stop.err '
        f"&& exit 0; "
        f'RUNPOD_API_KEY="$key" runpodctl stop pod "$pod" > /dev/null 2>> {q_control}/self_stop.err '
        f"&& exit 0; sleep {poll}; done; "
        f'echo "{SELF_STOP_MARKER} stopping pod $pod failed: $(tail -n 1 {q_control}/self_stop.err)" >> {q_log}; '
        f"exit 1"
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


def status_command(*, control_dir: str, durable_exit_code_path: str | None = None) -> str:
    """Print `running`, `exited <code>` or `unknown` for the job of this control dir; with
    `durable_exit_code_path`, a job whose control dir went with a stop is still `exited`."""
    q_control = shlex.quote(control_dir)
    durable = ""
    if durable_exit_code_path is not None:
        q_durable = shlex.quote(durable_exit_code_path)
        durable = f"elif [ -e {q_durable} ]; then echo exited $(cat {q_durable}); "
    return (
        f"if [ -e {q_control}/exit_code ]; then echo exited $(cat {q_control}/exit_code); "
        f"elif [ -e {q_control}/pid ] && kill -0 $(cat {q_control}/pid) 2>/dev/null; then echo running; "
        f"{durable}else echo unknown; fi"
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
