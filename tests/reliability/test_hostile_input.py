"""Hostile and malformed input through `apply`: every case is a clear error (file:line:col and
the field where there is one) with exit code 1, never a traceback, and creates nothing.

The corpus is tests/data/bad_stacks/*.yaml (stack files the loader refuses; their own test in
tests/reconciler/test_spec_load.py checks the located diagnostic) plus tests/data/bad_stacks/cli/
(cases that need the command line, the planner or other files: `--var`, `--vars-file`, unknown
GPU and datacenter ids, paths escaping the project root, project_root = $HOME, alias bombs,
budget flags), plus a few generated here (a 2 MB file, non-UTF-8 bytes, a missing file, a
directory). A state file of another stack: test_interrupts_state_locking.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runpod_deploy.cli import app

from .conftest import Proj

pytestmark = pytest.mark.sim

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_stacks"


def _header(text: str, key: str) -> str | None:
    found = re.search(rf"^# {key}: ?(.*)$", text, re.MULTILINE)
    return found.group(1) if found else None


def _generated(tmp: Path) -> list[tuple[str, Path, list[str], str]]:
    text = (BAD / "cli" / "var_bad_key.yaml").read_text()
    base = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# "))
    huge = tmp / "huge.yaml"
    huge.write_text(base + "# " + "x" * (2 << 20) + "\n")
    latin = tmp / "latin1.yaml"
    latin.write_bytes(base.replace("name: bad", "name: caf\xe9").encode("latin-1"))
    return [
        ("huge_file", huge, [], "over the 1,048,576-byte limit"),
        ("not_utf8", latin, [], "is not UTF-8 text (byte 0xe9"),
        ("missing_file", tmp / "nope.yaml", [], "cannot read the stack file"),
        ("directory", tmp, [], "cannot read the stack file"),
    ]


def _corpus(tmp: Path) -> list[tuple[str, Path, list[str], str, str | None]]:
    cases: list[tuple[str, Path, list[str], str, str | None]] = []
    for path in sorted(BAD.glob("*.yaml")):
        text = path.read_text()
        cases.append((path.stem, path, [], _header(text, "expect") or "", _header(text, "field")))
    for path in sorted((BAD / "cli").glob("*.yaml")):
        text = path.read_text()
        args = shlex.split((_header(text, "args") or "").replace("{dir}", str(path.parent)))
        cases.append((f"cli/{path.stem}", path, args, _header(text, "expect") or "", _header(text, "field")))
    cases += [(name, path, args, expect, None) for name, path, args, expect in _generated(tmp)]
    return cases


def test_at_least_60_bad_inputs_each_a_clear_error_that_creates_nothing(proj: Proj, tmp_path: Path) -> None:
    runner = CliRunner()
    cases = _corpus(tmp_path)
    assert len(cases) >= 60
    billed = set(proj.sim.billing()["pods"])
    failures = []
    for name, path, args, expect, field in cases:
        result = runner.invoke(app, ["apply", "--config", str(path), "--yes", "--provider", "api", *args],
                               env=proj.env)
        err = result.stderr
        problems = []
        if result.exit_code != 1:
            problems.append(f"exit {result.exit_code}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            problems.append(f"raised {type(result.exception).__name__}: {result.exception}")
        if "Traceback" in result.output:
            problems.append("traceback")
        if expect not in err:
            problems.append(f"no {expect!r}")
        if field is not None and not re.search(rf"{re.escape(str(path))}:\d+:\d+: error: {re.escape(field)}", err):
            problems.append(f"no location for {field}")
        if problems:
            failures.append(f"{name}: {', '.join(problems)}\n    {err.strip()[:400]}")
    assert not failures, "\n".join(failures)
    assert set(proj.sim.billing()["pods"]) == billed, "a bad input created a pod"
    states = list(Path(proj.env["RUNPOD_DEPLOY_STATE_DIR"]).rglob("*.json"))
    assert states == [], f"a bad input wrote a state file: {states}"  # (lock files may exist)
    assert not list(proj.root.rglob("events.jsonl")), "a bad input started a run"


def test_the_real_binary_reports_hostile_files_without_a_traceback(proj: Proj, tmp_path: Path) -> None:
    for name, path, args, expect in _generated(tmp_path)[:2] + [
        ("alias_bomb", BAD / "cli" / "alias_bomb.yaml", [], "through aliases")
    ]:
        done = proj.cli("apply", "--config", str(path), "--yes", "--provider", "api", *args, timeout=30)
        assert done.returncode == 1 and "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        assert expect in done.stderr, (name, done.stderr)


PAYLOADS = {
    "bare": "x; touch /workspace/CANARY_bare",
    "double": 'x"; touch /workspace/CANARY_double; echo "',
    "single": "x'; touch /workspace/CANARY_single; echo '",
    "subst": "$(touch /workspace/CANARY_subst)`touch /workspace/CANARY_tick`",
    "newline": "x\ntouch /workspace/CANARY_newline",
}


def test_var_values_with_shell_metacharacters_stay_data_on_a_real_pod(proj: Proj) -> None:
    body = (
        "echo bare={bare}\n"
        'echo "double={double}"\n'
        "echo 'single={single}'\n"
        "echo subst={subst}\n"
        'echo "newline={newline}"\n'
        "echo '[job] DONE'\n"
    )
    config = proj.stack({
        "variables": {name: "placeholder" for name in PAYLOADS},
        "setup": [{"command": "echo setup {bare} {subst}"}],
        "run": {"body": body},
        "lifecycle": {"on_success": "recycle"},
        "telemetry": {"enabled": False, "capture_nvidia_smi": False, "capture_dmesg": False,
                      "capture_pod_describe": False, "capture_remote_env": False},
    })
    values = [f"{name}={value}" for name, value in PAYLOADS.items()]
    args = [f"--var={value}" for value in values]
    done = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", "--print-run-dir", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    (pod,) = proj.pods(config, cli_vars=values)  # the --var values make a stack instance
    volume = proj.sim.home / "pods" / pod["id"] / "volume"
    assert not list(volume.glob("CANARY*")), "a --var value ran as a command"
    run_dir = Path(done.stdout.splitlines()[0].removeprefix("RUN_DIR="))
    log = (run_dir / "job.log").read_text()
    for name, value in PAYLOADS.items():
        assert f"{name}={value}" in log, (name, log)
    proj.assert_no_leak(config, values)
