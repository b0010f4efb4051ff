"""`apply` on a terminal: the live view (rich) under a pseudo-terminal, against the simulator.

The process's stderr is the slave end of a pty (so it *is* a TTY, as in a user's terminal);
stdout is a pipe, which must keep carrying only what scripts read from it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from .conftest import Project, manifest_of

pytestmark = pytest.mark.sim

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
BODY = "for i in $(seq 1 25); do echo \"line $i\"; done\necho '[job] DONE'\n"


def _text(raw: str) -> str:
    return _ESCAPE.sub("", raw).replace("\r", "")


def run_in_pty(argv: list[str], env: dict[str, str], *, rows: int = 40, cols: int = 100,
               timeout: float = 180) -> tuple[int, str, str]:
    """Run `argv` with stderr on a pty of `rows` x `cols`; return (exit code, stdout, stderr
    as the terminal received it)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:  # keep reading, or the child blocks on a full pty buffer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the slave end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                env=env)
    finally:
        os.close(slave)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        reader.join(timeout=10)
        os.close(master)
    return proc.returncode, stdout.decode(), b"".join(chunks).decode("utf-8", "replace")


def _terminal_env(project: Project) -> dict[str, str]:
    env = {**project.env, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    for key in ("CI", "NO_COLOR", "COLUMNS", "LINES"):
        env.pop(key, None)
    return env


def _apply(project: Project, *extra: str) -> tuple[int, str, str, Path]:
    config = project.stack({"run": {"body": BODY}})
    exe = Path(sys.executable).with_name("runpod-deploy")
    code, stdout, stderr = run_in_pty(
        [str(exe), "apply", "--config", str(config), "--yes", "--provider", "api", "--print-run-dir", *extra],
        _terminal_env(project),
    )
    return code, stdout, stderr, config


def test_apply_on_a_terminal_shows_the_live_view_and_leaves_its_final_state(project: Project) -> None:
    code, stdout, raw, config = _apply(project)
    text = _text(raw)
    assert code == 0, text[-3000:]

    # stdout is a pipe: it carries only the RUN_DIR line, never the view
    assert stdout.startswith("RUN_DIR=") and len(stdout.splitlines()) == 1, stdout
    run_dir = Path(stdout.strip().removeprefix("RUN_DIR="))
    manifest = manifest_of(run_dir)
    assert manifest["outcome"] == "succeeded"

    assert "\x1b[" in raw, "a terminal gets the rich view, with its cursor control"
    assert not re.search(r"^\[\d\d:\d\d:\d\d\] provision: started", text, re.MULTILINE), "no plain lines"

    # The final state of the view stays on the screen, followed by the summary.
    final = _text(raw.rsplit("\x1b[2K", 1)[-1])
    assert f"pod {manifest['pod_id']}" in final  # learnt from the run's events
    assert "stack e2e" in final
    for phase in ("provision", "wait_ssh", "launch", "monitor", "pull", "lifecycle"):
        assert re.search(rf"✓ +{phase} +\d+\.\ds", final), (phase, final)
    assert "elapsed 0:00:" in final
    assert "job log: last 10 of 26 lines" in final
    assert "line 25" in final and "[job] DONE" in final and "line 15" not in final
    assert "Run succeeded: success marker seen" in final
    assert f"Pod {manifest['pod_id']}: delete" in final
    project.assert_no_leak(config)


def test_plain_on_a_terminal_keeps_the_timestamped_lines(project: Project) -> None:
    code, _stdout, raw, config = _apply(project, "--plain")
    text = _text(raw)
    assert code == 0, text[-3000:]
    assert re.search(r"^\[\d\d:\d\d:\d\d\] provision: started - \+ create$", text, re.MULTILINE), text[-3000:]
    assert re.search(r"^\[\d\d:\d\d:\d\d\] \| line 25$", text, re.MULTILINE)
    assert "job log: last" not in text
    assert "Run succeeded" in text
    project.assert_no_leak(config)
