"""The redaction boundary, end to end: a distinct canary secret in every field that can carry
one, each phase of the run made to fail in turn, and not one canary in any byte the tool wrote
(stdout, stderr, the run dir, the state dir, a saved plan).

What stays verbatim is the user's data: the job's own log and the artifacts pulled into the run
dir. Those are left out of the scan (the job prints secrets into its log on purpose)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import Proj, run_dirs

pytestmark = pytest.mark.sim

LOG_NAME = "job.log"
PULLED = "pulled"


def _canary(tag: str) -> str:
    return f"canary{tag}{uuid.uuid4().hex[:20]}"


def _stack(proj: Proj, fail: str | None) -> Path:
    """Secrets in setup, preflight, staging, remote_env exports, secrets[].env, the run body and
    paths, the success and failure markers and artifacts; `fail` breaks one phase."""
    (proj.root / "payload").mkdir(exist_ok=True)
    (proj.root / "payload" / "data.txt").write_text("payload\n")
    workdir = "/workspace/d-{tok_file}"
    setup = 'echo "login {tok_cli}"' + ("; exit 7" if fail == "setup" else "")
    preflight = "test -n {tok_file}" if fail != "preflight" else 'echo "check {tok_file}"; test -z {tok_file}'
    body = (
        f"mkdir -p {workdir}/out && echo result > {workdir}/out/r.txt\n"
        'echo "job sees {tok_cli} and $MY_TOKEN"\n'
        "grep -q HF_TOKEN= /root/.creds\n"
    )
    body += ("echo 'Traceback (most recent call last): {tok_cli}'\nexit 3\n" if fail == "run"
             else "echo '[job] DONE {tok_file}'\n")
    changes: dict[str, Any] = {
        "variables": {"tok_cli": {"secret": True}, "tok_file": {"secret": True}},
        "setup": [{"command": setup}],
        "preflight": [{"command": preflight}],
        "staging": [{"label": "payload", "source": "payload/",
                     "destination": ("/proc/nope-{tok_cli}/x" if fail == "stage"
                                     else "/workspace/stage-{tok_cli}")}],
        "remote_env": {"exports": {"MY_TOKEN": "{tok_file}", "PLAIN": "on"}},
        "secrets": [{"name": "creds", "destination": "/root/.creds", "env": ["HF_TOKEN"]}],
        "run": {"script_path": f"{workdir}/job.sh", "log_path": f"/workspace/{LOG_NAME}",
                "success_marker": "[job] DONE {tok_file}", "body": body},
        "artifacts": [{"label": "out", "local_path": "{run_dir}/" + PULLED,
                       "remote_path": (f"{workdir}/missing-{{tok_cli}}" if fail == "pull"
                                       else f"{workdir}/out/")}],
        "telemetry": {"sample_interval_sec": 5},
    }
    return proj.stack(changes)


def _written(proj: Proj, plan_file: Path) -> dict[Path, bytes]:
    """Every byte the tool wrote: run dirs (less the verbatim job log and pulled artifacts),
    the state dir, the saved plan."""
    found: dict[Path, bytes] = {plan_file: plan_file.read_bytes()}
    for run_dir in run_dirs(proj.root):
        for path in run_dir.rglob("*"):
            relative = path.relative_to(run_dir)
            if path.is_file() and relative.parts[0] != PULLED and relative.name != LOG_NAME:
                found[path] = path.read_bytes()
    state_dir = Path(proj.env["RUNPOD_DEPLOY_STATE_DIR"])
    found.update({p: p.read_bytes() for p in state_dir.rglob("*") if p.is_file()})
    return found


def test_no_canary_leaves_the_process_whichever_phase_fails(proj: Proj) -> None:
    canaries = {"--var": _canary("cli"), "vars-file": _canary("file"), "secrets[].env": _canary("env"),
                "API key": proj.sim.api_key}
    vars_file = proj.root / "vars.json"
    vars_file.write_text(json.dumps({"tok_file": canaries["vars-file"]}))
    env = {**proj.env, "HF_TOKEN": canaries["secrets[].env"]}
    inputs = ["--provider", "api", f"--var=tok_cli={canaries['--var']}", "--vars-file", str(vars_file)]
    plan_file = proj.root / "saved-plan.json"
    outputs: list[str] = []

    config = _stack(proj, None)
    planned = proj.cli("plan", "--config", str(config), "--out", str(plan_file), *inputs, env=env)
    assert planned.returncode == 0, planned.stderr[-2000:]
    outputs.append(planned.stdout + planned.stderr)

    expected = {None: 0, "setup": 1, "stage": 1, "preflight": 1, "run": 1, "pull": 1}
    for fail, code in expected.items():
        config = _stack(proj, fail)
        done = proj.cli("apply", "--yes", "--config", str(config), *inputs, env=env)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == code, f"{fail}: {done.stderr[-3000:]}"
    # Provisioning fails too: a pinned pair the simulator does not have.
    done = proj.cli("apply", "--yes", "--config", str(config), *inputs, "--gpu-id", "NVIDIA H200",
                    "--datacenter-id", "EU-RO-1", env=env)
    outputs.append(done.stdout + done.stderr)
    assert done.returncode == 3, done.stderr[-3000:]

    # Detach, then status (text and JSON: the log's last lines carry the secrets), then attach.
    config = _stack(proj, None)
    for command in (["apply", "--yes", "--detach"], ["status"], ["status", "--json"], ["attach"]):
        done = proj.cli(*command, "--config", str(config), *inputs, env=env)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    assert "job sees <redacted>" in outputs[-2], outputs[-2][-1500:]

    # The job saw every secret (so each was really in play) and its own log keeps them verbatim.
    first_run = run_dirs(proj.root)[0]
    job_log = (first_run / LOG_NAME).read_text()
    assert canaries["--var"] in job_log and canaries["vars-file"] in job_log
    assert (first_run / PULLED / "r.txt").read_text() == "result\n"

    written = _written(proj, plan_file)
    names = {p.name for p in written}
    for expected_file in ("events.jsonl", "runpod_deploy_pull_manifest.json", "remote_env.json",
                          "saved-plan.json", "metrics.jsonl"):
        assert expected_file in names, f"{expected_file} was not written, so it was not scanned"
    for field, canary in canaries.items():
        leaked_files = sorted(str(p) for p, data in written.items() if canary.encode() in data)
        assert not leaked_files, f"the {field} canary leaked into {leaked_files}"
        leaked_outputs = [o for o in outputs if canary in o]
        assert not leaked_outputs, f"the {field} canary leaked to stdout/stderr: {leaked_outputs[0][-1500:]}"
    # The marker shows where a secret was, so the output still reads.
    assert any("<redacted>" in o for o in outputs)
