"""Where the payload came from: local git state and the lockfile's hash, for the manifest.

A run is only reproducible if we know which commit was shipped, whether the tree had
uncommitted changes, and which locked dependency set came with it. Capturing that must never
stop a run: a missing `git`, a hung git (a network filesystem, a credential prompt) or an
unreadable lockfile all become nulls and a warning. A project outside git (or a repository
without a commit yet) is an ordinary project, not a fault: nulls, said only at DEBUG.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path

from runtime.rundir import DeployMetadata

__all__ = ["LOCKFILE_CANDIDATES", "capture_deploy_metadata"]

logger = logging.getLogger(__name__)

LOCKFILE_CANDIDATES = ("uv.lock", "requirements.txt")
"""Looked for in this order under the project root; the first that exists is hashed."""

_GIT_TIMEOUT_SEC = 10.0

_NO_COMMIT_TO_NAME = ("not a git repository", "unknown revision or path not in the working tree")
"""What `git rev-parse HEAD` says (exit 128) outside a repository, or in one with no commit."""


def capture_deploy_metadata(
    project_root: Path,
    *,
    capture_git: bool = True,
    capture_lockfile: bool = True,
    git_timeout_sec: float = _GIT_TIMEOUT_SEC,
) -> DeployMetadata:
    """The `deploy_metadata` of a manifest (and the output of `capture-env`). Never raises.

    A group that is switched off (the stack's `telemetry.capture_local_git` /
    `capture_payload_lockfile`) leaves its keys out; a group that cannot be captured sets them
    to null, so a reader can tell "not asked" from "not available".
    """
    values: dict[str, object] = {}
    if capture_git:
        values.update(_capture_local_git(project_root, git_timeout_sec))
    if capture_lockfile:
        values.update(_capture_payload_lockfile(project_root))
    return DeployMetadata.model_validate(values)


def _capture_local_git(project_root: Path, timeout_sec: float) -> dict[str, object]:
    unknown: dict[str, object] = {
        "local_git_sha": None,
        "local_git_dirty": None,
        "local_git_branch": None,
    }
    if not project_root.is_dir():
        logger.warning("cannot capture git state: %s is not a directory", project_root)
        return unknown
    sha = _git(project_root, timeout_sec, "rev-parse", "HEAD", quiet_without_commit=True)
    if sha is None:
        return unknown
    branch = _git(project_root, timeout_sec, "rev-parse", "--abbrev-ref", "HEAD")
    porcelain = _git(project_root, timeout_sec, "status", "--porcelain")
    return {
        "local_git_sha": sha,
        "local_git_dirty": None if porcelain is None else bool(porcelain),
        "local_git_branch": branch,
    }


def _git(
    project_root: Path, timeout_sec: float, *args: str, quiet_without_commit: bool = False
) -> str | None:
    """Stripped stdout of one git command, or None (with a warning) if it could not answer.
    `quiet_without_commit`: a project outside git, or with no commit yet, is said at DEBUG."""
    command = ("git", "-C", str(project_root), *args)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_sec,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LC_ALL": "C"},  # git's messages in English, to be recognised
        )
    except FileNotFoundError:
        logger.warning("git is not on PATH; local git state not captured")
        return None
    except subprocess.TimeoutExpired:
        logger.warning(
            "`git %s` timed out after %ss in %s", " ".join(args), timeout_sec, project_root
        )
        return None
    except OSError as error:
        logger.warning("cannot run git in %s: %s", project_root, error)
        return None
    if done.returncode != 0:
        if quiet_without_commit and done.returncode == 128 and any(
            phrase in done.stderr for phrase in _NO_COMMIT_TO_NAME
        ):
            logger.debug("%s is not in a git repository with a commit; no git state", project_root)
            return None
        logger.warning(
            "`git %s` exited %d in %s: %s",
            " ".join(args),
            done.returncode,
            project_root,
            done.stderr.strip(),
        )
        return None
    return done.stdout.strip()


def _capture_payload_lockfile(project_root: Path) -> dict[str, object]:
    for name in LOCKFILE_CANDIDATES:
        candidate = project_root / name
        if not candidate.is_file():
            continue
        try:
            digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
        except OSError as error:
            logger.warning("cannot read lockfile %s: %s", candidate, error.strerror or error)
            break
        return {"payload_lockfile": name, "payload_lockfile_sha256": digest}
    else:
        logger.info(
            "no lockfile under %s (looked for %s)", project_root, ", ".join(LOCKFILE_CANDIDATES)
        )
    return {"payload_lockfile": None, "payload_lockfile_sha256": None}
