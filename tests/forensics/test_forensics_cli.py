"""The forensic commands as users run them: output pinned by golden files, exit codes, errors.

Goldens live in `golden/`; after an intended change to an output, rerun with
`RUNPOD_DEPLOY_ACCEPT=1` and review the diff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runpod_deploy.cli import app
from runtime.rundir import RunDirError
from tests.forensics.forensics_data import (
    DATA,
    ORIGINAL_V1,
    ORIGINAL_V2,
    OURS_POD_KILLED,
    OURS_SUCCEEDED,
    PROJECT,
    normalise,
)

Golden = Callable[[str, str], None]
MANIFEST = "runpod_deploy_pull_manifest.json"


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def unboxed(text: str) -> str:
    """A usage error as words: rich draws it in a box and wraps it to the terminal width."""
    return " ".join(text.replace("│", " ").split())


def script() -> str:
    return str(Path(sys.executable).with_name("runpod-deploy"))


# ---------------------------------------------------------------------------- manifest-summary


def test_manifest_summary_of_our_manifest(golden: Golden) -> None:
    code, out, _ = run("manifest-summary", OURS_SUCCEEDED / MANIFEST)
    assert code == 0
    golden("manifest_summary_ours.txt", out)


def test_manifest_summary_of_the_originals_v2_and_v1_manifests(golden: Golden) -> None:
    code_v2, out_v2, _ = run("manifest-summary", ORIGINAL_V2 / MANIFEST)
    code_v1, out_v1, _ = run("manifest-summary", ORIGINAL_V1)
    assert (code_v2, code_v1) == (0, 0)
    golden("manifest_summary_original_v2.txt", out_v2)
    golden("manifest_summary_v1.txt", out_v1)


def test_manifest_summary_root_has_blocks_and_totals(golden: Golden) -> None:
    code, out, err = run("manifest-summary", "--root", PROJECT)
    assert code == 0
    assert "20260304T120000Z" in err and "; skipped" in err
    golden("manifest_summary_root.txt", normalise(out))


def test_manifest_summary_json_is_the_manifest_as_read() -> None:
    code, out, _ = run("manifest-summary", OURS_SUCCEEDED, "--json")
    assert code == 0
    on_disk = json.loads((OURS_SUCCEEDED / MANIFEST).read_text())
    assert json.loads(out) == on_disk


def test_manifest_summary_root_json_carries_totals_and_unreadable_paths(golden: Golden) -> None:
    code, out, _ = run("manifest-summary", "--root", PROJECT, "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["totals"]["manifests"] == 5
    assert [Path(p).parent.name for p in payload["unreadable"]] == ["20260304T120000Z"]
    golden("manifest_summary_root.json", normalise(out))


def test_manifest_summary_root_with_nothing_says_so_on_stderr(tmp_path: Path) -> None:
    code, out, err = run("manifest-summary", "--root", tmp_path)
    assert (code, out) == (0, "")
    assert "no manifests found under" in err


@pytest.mark.parametrize("args", [(), ("x.json", "--root", ".")], ids=["neither", "both"])
def test_manifest_summary_needs_exactly_one_source(args: tuple[str, ...]) -> None:
    code, _, err = run("manifest-summary", *args)
    assert code == 2
    assert "exactly one of a manifest path or --root DIR" in unboxed(err)


# ---------------------------------------------------------------------------- events


def test_events_timeline(golden: Golden) -> None:
    code, out, _ = run("events", OURS_SUCCEEDED)
    assert code == 0
    golden("events_timeline.txt", out)


def test_events_timeline_with_an_undated_event_and_hours(golden: Golden) -> None:
    code, out, _ = run("events", ORIGINAL_V2 / "events.jsonl")
    assert code == 0
    golden("events_timeline_hours.txt", out)


def test_events_json_skips_the_torn_line_with_a_warning() -> None:
    code, out, err = run("events", OURS_POD_KILLED, "--json")
    assert code == 0
    assert [json.loads(line)["event"] for line in out.splitlines()] == [
        "gpu_selected",
        "pod_killed_unexpected",
        "artifact_pull_failed",
    ]
    assert "events.jsonl:4: skipping malformed line" in err


def test_events_of_a_run_without_events_says_so(tmp_path: Path) -> None:
    code, out, err = run("events", tmp_path)
    assert (code, out) == (0, "")
    assert "no events in" in err


def test_events_of_a_missing_run_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="run dir not found"):
        run("events", tmp_path / "nope")


# ---------------------------------------------------------------------------- events-query


def test_events_query_table(golden: Golden) -> None:
    code, out, _ = run("events-query", "--root", PROJECT)
    assert code == 0
    golden("events_query.txt", out)


def test_events_query_filtered_json(golden: Golden) -> None:
    code, out, _ = run(
        "events-query", "--root", PROJECT, "--filter", "event=gpu_selected", "--json"
    )
    assert code == 0
    golden("events_query_gpu_selected.jsonl", out)


def test_events_query_defaults_to_artifacts_runpod_under_the_cwd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(PROJECT)
    code, out, _ = run("events-query", "--filter", "event=pod_killed_unexpected")
    assert code == 0
    assert out == (
        "[2026-03-01T08:31:58+00:00] 20260301T081500Z-001 pod_killed_unexpected "
        'state=TERMINATED note="pod final state is not RUNNING or EXITED"\n'
    )


def test_events_query_since_uses_the_real_clock(tmp_path: Path) -> None:
    run_dir = tmp_path / "20260101T000000Z"
    run_dir.mkdir()
    now = datetime.now(UTC)
    lines = [
        {"ts_utc": (now - timedelta(minutes=5)).isoformat(), "event": "fresh"},
        {"ts_utc": (now - timedelta(days=2)).isoformat(), "event": "stale"},
    ]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out, _ = run("events-query", "--root", tmp_path, "--since", "1h", "--json")
    assert code == 0
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["fresh"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "1h30m"), "whole number and one unit"),
        (("--filter", "no-equals-sign"), "KEY=VALUE"),
        (("--filter", "bad key=x"), "identifier"),
    ],
)
def test_events_query_rejects_malformed_options_as_usage_errors(
    args: tuple[str, ...], message: str
) -> None:
    code, _, err = run("events-query", "--root", PROJECT, *args)
    assert code == 2
    assert message in unboxed(err)


def test_events_query_of_a_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="--root directory not found"):
        run("events-query", "--root", tmp_path / "nope")


# ---------------------------------------------------------------------------- ls-runs


def test_ls_runs_table(golden: Golden) -> None:
    code, out, err = run("ls-runs", "--project-root", PROJECT)
    assert code == 0
    assert "20260304T120000Z" in err, "the unreadable run is named, not silently dropped"
    golden("ls_runs.txt", out)


def test_ls_runs_json_limited(golden: Golden) -> None:
    code, out, _ = run("ls-runs", "--project-root", PROJECT, "--limit", "3", "--json")
    assert code == 0
    golden("ls_runs_limit_3.json", out)


def test_ls_runs_of_a_project_without_runs(tmp_path: Path) -> None:
    assert run("ls-runs", "--project-root", tmp_path, "--json")[:2] == (0, "[]\n")
    code, out, err = run("ls-runs", "--project-root", tmp_path)
    assert (code, out) == (0, "")
    assert "no runs found under" in err


def test_ls_runs_limit_zero_lists_every_run_as_the_original_did() -> None:
    every = run("ls-runs", "--project-root", PROJECT, "--json")
    assert every[0] == 0 and len(json.loads(every[1])) >= 2
    assert run("ls-runs", "--project-root", PROJECT, "--json", "--limit", "0")[:2] == every[:2]
    assert run("ls-runs", "--project-root", PROJECT, "--limit", "-1")[0] == 2


# ---------------------------------------------------------------------------- compare-runs


def test_compare_runs_of_two_good_runs_exits_zero(golden: Golden) -> None:
    code, out, _ = run("compare-runs", ORIGINAL_V2, OURS_SUCCEEDED / MANIFEST)
    assert code == 0
    golden("compare_runs.txt", normalise(out))


def test_compare_runs_exits_one_when_either_run_failed(golden: Golden) -> None:
    code, out, _ = run("compare-runs", OURS_SUCCEEDED, OURS_POD_KILLED, "--json")
    assert code == 1
    assert json.loads(out)["either_failed"] is True
    golden("compare_runs_failed.json", normalise(out))


def test_compare_runs_with_a_missing_manifest_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="manifest not found"):
        run("compare-runs", OURS_SUCCEEDED, tmp_path)


# ---------------------------------------------------------------------------- capture-env


def test_capture_env_prints_the_five_keys_as_json(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    code, out, _ = run("capture-env", "--project-root", tmp_path)
    assert code == 0
    payload = json.loads(out)
    assert list(payload) == [
        "local_git_sha",
        "local_git_dirty",
        "local_git_branch",
        "payload_lockfile",
        "payload_lockfile_sha256",
    ]
    assert payload["local_git_sha"] is None and payload["payload_lockfile"] == "uv.lock"


# ---------------------------------------------------------------------------- the real program


def test_installed_script_runs_manifest_summary_root_like_the_runner(golden: Golden) -> None:
    done = subprocess.run(
        [script(), "manifest-summary", "--root", str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    golden("manifest_summary_root.txt", normalise(done.stdout))


def test_installed_script_turns_user_errors_into_one_line_and_exit_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [script(), "events", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == f"error: run dir not found: {tmp_path / 'nope'}\n"


def test_installed_script_compare_runs_gate_and_bad_manifest(tmp_path: Path) -> None:
    shutil.copytree(
        DATA / "project" / "artifacts" / "runpod" / "20260304T120000Z", tmp_path / "torn"
    )
    gate = subprocess.run(
        [script(), "compare-runs", str(OURS_SUCCEEDED), str(OURS_POD_KILLED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    torn = subprocess.run(
        [script(), "compare-runs", str(OURS_SUCCEEDED), str(tmp_path / "torn")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert gate.returncode == 1 and gate.stdout.startswith("diff between two manifests:")
    assert torn.returncode == 1 and "Traceback" not in torn.stderr
    assert torn.stderr.startswith("error: manifest ") and "is not valid JSON" in torn.stderr
