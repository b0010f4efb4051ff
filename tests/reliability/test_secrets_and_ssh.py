"""Secrets never reach a byte the tool writes; SSH trusts no host key blindly."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from reconciler.diagnostics import SpecError
from runtime.providers.api import ApiProvider, ApiSettings
from runtime.rundir import RunOutcome

from .conftest import Proj, run_dirs, wait_until

pytestmark = pytest.mark.sim


def _every_byte_written(proj: Proj) -> dict[Path, bytes]:
    roots = [proj.root, Path(proj.env["RUNPOD_DEPLOY_STATE_DIR"])]
    return {p: p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file()}


def test_canary_secrets_appear_in_no_file_and_no_output(proj: Proj) -> None:
    secret_var = f"rpdvar_CANARY_{uuid.uuid4().hex}"
    secret_env = f"rpdenv_CANARY_{uuid.uuid4().hex}"
    api_key = proj.sim.api_key
    env = {**proj.env, "HF_TOKEN": secret_env}
    body = (
        'test -s /root/.creds && grep -q HF_TOKEN= /root/.creds\n'
        'export TOKEN={token}\n'
        'test -n "$TOKEN" && echo token-is-set\n'
        "echo '[job] DONE'\n"
    )
    config = proj.stack({
        "variables": {"token": {"secret": True}},
        "secrets": [{"name": "creds", "destination": "/root/.creds", "env": ["HF_TOKEN"]}],
        "remote_env": {"exports": {"MY_TOKEN": "{token}", "HF_HUB": "on"}},
        "run": {"body": body},
        "telemetry": {"sample_interval_sec": 5},
    })
    outputs = []
    plan_file = proj.root / "saved-plan.json"
    for args in (["plan", "--json", "--out", str(plan_file)], ["apply", "--yes"]):
        done = proj.cli(*args, "--config", str(config), "--provider", "api", f"--var=token={secret_var}", env=env)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "token-is-set" in (run_dirs(proj.root)[-1] / "job.log").read_text()

    # A failing run goes through other paths (failure classification, best-effort pulls).
    proj.stack({
        "variables": {"token": {"secret": True}},
        "secrets": [{"name": "creds", "destination": "/root/.creds", "env": ["HF_TOKEN"]}],
        "remote_env": {"exports": {"MY_TOKEN": "{token}"}},
        "run": {"body": "export T={token}\necho 'Traceback (most recent call last):'\nexit 3\n"},
    })
    failed = proj.cli("apply", "--yes", "--config", str(config), "--provider", "api", f"--var=token={secret_var}",
                      env=env)
    assert failed.returncode == 1
    outputs.append(failed.stdout + failed.stderr)

    written = _every_byte_written(proj)
    names = {p.name for p in written}
    for expected in ("events.jsonl", "runpod_deploy_pull_manifest.json", "remote_env.json", "saved-plan.json"):
        assert expected in names, f"{expected} was not written, so it was not scanned"
    assert any(n.startswith("pod_describe") for n in names)
    for canary in (secret_var, secret_env, api_key):
        assert not [p for p, data in written.items() if canary.encode() in data], f"{canary[:10]}… leaked to a file"
        assert not [o for o in outputs if canary in o], f"{canary[:10]}… leaked to stdout/stderr"


def test_a_host_key_that_changes_outside_a_boot_we_asked_for_is_refused(proj: Proj) -> None:
    config = proj.stack({"lifecycle": {"on_success": "recycle", "on_failure": "stop"},
                         "telemetry": {"enabled": False, "capture_nvidia_smi": False, "capture_dmesg": False,
                                       "capture_pod_describe": False, "capture_remote_env": False}})
    first = proj.apply(config)
    assert first.ok and first.pod_id is not None, first.detail
    # Someone else resumes the pod: a new container, so new host keys (and a new port).
    provider = ApiProvider(ApiSettings.from_env(proj.env))
    pod_id = first.pod_id
    provider.start_pod(pod_id, gpu_count=1)
    wait_until(lambda: bool((proj.sim.pod(pod_id) or {}).get("sshPort")), 30, "the resumed pod's SSH")

    second = proj.apply(config)
    assert second.outcome is not RunOutcome.SUCCEEDED
    assert "host key" in second.detail.lower() and "SHA256:" in second.detail, second.detail
    assert not any(e for e in (second.run_dir / "events.jsonl").read_text().splitlines() if "job_launched" in e), \
        "no command ran on the pod with the unexpected key"
    assert [p["desiredStatus"] for p in proj.pods(config)] == ["EXITED"], "on_failure: stop"
    proj.assert_no_leak(config)


def test_a_private_key_readable_by_others_is_refused_before_a_pod_bills(proj: Proj) -> None:
    """OpenSSH (under rsync) ignores a key others can read, so such a run would lose its
    staging and pulls after the pod was billed: apply says so first and creates nothing."""
    loose_key = proj.root.parent / "loose_key"
    shutil.copy(proj.key, loose_key)
    loose_key.chmod(0o644)
    config = proj.stack({"ssh": {"key_path": str(loose_key)}, "telemetry": {"enabled": False}})
    with pytest.raises(SpecError) as refused:
        proj.apply(config)
    message = str(refused.value)
    assert f"ssh.key_path: private key {loose_key} is readable by others (mode 0o644)" in message
    assert f"chmod 600 {loose_key}" in message
    assert proj.pods(config) == [] and proj.state(config).is_empty
    assert not (proj.root / "artifacts").exists(), "no run dir either"
    proj.assert_no_leak(config)


def test_a_missing_private_key_is_refused_with_its_line_before_a_pod_bills(proj: Proj) -> None:
    missing = proj.root.parent / "no_such_key"
    config = proj.stack({"ssh": {"key_path": str(missing)}, "telemetry": {"enabled": False}})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "key_path:" in text)
    with pytest.raises(SpecError) as refused:
        proj.apply(config)
    message = str(refused.value)
    assert f"{config.name}:{line}:" in message, message
    assert f"ssh.key_path: private key {missing} cannot be read: No such file or directory" in message
    assert proj.pods(config) == [] and proj.state(config).is_empty
