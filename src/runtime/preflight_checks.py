"""The original's `validate` checks: local paths, live stock, the consumer foot-gun scan, and
the image tag in its registry. Each returns findings; `validate` prints them and fails on an
error. Nothing here creates or changes anything.

- `check_local_paths`: every `local.required_paths` entry exists (relative to project_root).
- `check_availability`: the stack's gpu_order in each datacenter, from one catalog read through
  the provider. A GPU the datacenter does not list is an error with a "did you mean"; it fails
  only when no datacenter has any configured GPU in stock.
- `scan_consumer`: warnings only. runpod-deploy shipped to the pod as a dependency, torch
  without a CUDA index pin, `uv sync` on the FUSE `/workspace` without `UV_LINK_MODE=copy`,
  and absolute home paths (`/Users/x/`, `/home/x/`, `C:\\Users\\`) in the staged payload.
- `check_image_registry`: asks the registry (Docker Hub's v2 API by default, with the anonymous
  token its 401 challenge points to) whether `pod.image`'s tag exists. A missing tag is an
  error naming it; a registry that cannot be reached is a warning. The registry is
  `$RUNPOD_DEPLOY_REGISTRY_URL` (default https://registry-1.docker.io).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciler.observed import Catalog, StockStatus
from reconciler.spec import DEFAULT_STAGING_EXCLUDES, JobSpec

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "REGISTRY_URL_ENV",
    "Finding",
    "ImageRef",
    "Level",
    "check_availability",
    "check_image_registry",
    "check_local_paths",
    "effective_excludes",
    "parse_image_ref",
    "scan_consumer",
]

DEFAULT_REGISTRY_URL = "https://registry-1.docker.io"
REGISTRY_URL_ENV = "RUNPOD_DEPLOY_REGISTRY_URL"
REGISTRY_TIMEOUT_SEC = 5.0


class Level(StrEnum):
    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of one check; `validate` fails when any is an error."""

    check: str
    level: Level
    message: str

    def format(self) -> str:
        return f"{self.level.value}: [{self.check}] {self.message}"


# -- --check-local ----------------------------------------------------------------------------

def check_local_paths(required_paths: Sequence[str], project_root: str) -> list[Finding]:
    """Each rendered `local.required_paths` entry, relative to the project root, must exist."""
    missing = [p for p in required_paths if not (Path(project_root) / p).exists()]
    if missing:
        return [Finding("local", Level.ERROR,
                        f"local.required_paths missing under {project_root}: {missing}")]
    return [Finding("local", Level.OK, f"{len(required_paths)} required path(s) present")]


# -- --check-availability ---------------------------------------------------------------------

def check_availability(spec: JobSpec, catalog: Catalog) -> list[Finding]:
    """The gpu_order's stock in each datacenter. An error when no datacenter stocks any."""
    findings: list[Finding] = []
    stocked_anywhere = False
    for datacenter in spec.pod.datacenters:
        listed = {a.gpu_type_id: a.stock for a in catalog.availability
                  if a.datacenter_id == datacenter}
        if catalog.datacenter_ids and datacenter not in catalog.datacenter_ids:
            near = difflib.get_close_matches(datacenter, list(catalog.datacenter_ids), n=1,
                                             cutoff=0.6)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            findings.append(Finding("availability", Level.ERROR,
                                    f"datacenter {datacenter} is not in the catalog{hint}"))
            continue
        available: list[str] = []
        for gpu in spec.pod.gpu_order:
            stock = listed.get(gpu)
            if stock is None:
                near = difflib.get_close_matches(gpu, list(listed), n=1, cutoff=0.6)
                hint = f"; did you mean '{near[0]}'?" if near else ""
                findings.append(Finding("availability", Level.ERROR,
                                        f"{gpu} is not listed in {datacenter}{hint}"))
            elif not stock.available:
                findings.append(Finding("availability", Level.WARNING,
                                        f"{gpu} is out of stock in {datacenter}"))
            else:
                available.append(f"{gpu} ({stock.value})")
                stocked_anywhere = True
        if available:
            findings.append(Finding("availability", Level.OK,
                                    f"{datacenter}: {', '.join(available)}"))
            if all(entry.endswith(f"({StockStatus.LOW.value})") for entry in available):
                findings.append(Finding("availability", Level.WARNING,
                                        f"{datacenter}: every available configured GPU is Low"))
    if not stocked_anywhere:
        findings.append(Finding(
            "availability", Level.ERROR,
            f"no configured GPU {list(spec.pod.gpu_order)} is in stock in any of "
            f"{list(spec.pod.datacenters)}; widen gpu_order or datacenters "
            "(`runpod-deploy gpu-inventory` lists what is stocked)"))
    return findings


# -- --scan-consumer --------------------------------------------------------------------------

_HOME_PATH = re.compile(r"(/Users/[^/\s'\"]+/|/home/[^/\s'\"]+/|C:\\\\Users\\\\|C:\\Users\\)")
_SCANNED_SUFFIXES = (".py", ".yaml", ".yml", ".toml", ".json", ".sh")
_MAX_SCANNED_BYTES = 1 << 20
_HITS_PER_FILE = 3
_EXTRA = re.compile(r"--extra(?:=|\s+)([A-Za-z0-9_.\-]+)")


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._\-]*)", requirement)
    return match.group(1).lower().replace("_", "-") if match else ""


def _installed_groups(commands: Iterable[str]) -> tuple[bool, set[str], bool]:
    """(uv sync runs, the --extra groups it installs, --all-extras given)."""
    syncs = [c for c in commands if "uv sync" in c]
    extras = {m.group(1) for c in syncs for m in _EXTRA.finditer(c)}
    return bool(syncs), extras, any("--all-extras" in c for c in syncs)


def scan_consumer(spec: JobSpec, *, project_root: str,
                  staging_sources: Sequence[tuple[str, Sequence[str]]]) -> list[Finding]:
    """The original's foot-gun scan of the consumer project. Warnings only, never an error.

    `spec` is rendered; `staging_sources` are (local source, effective excludes) pairs."""
    findings: list[Finding] = []
    commands = [c.command for c in spec.setup] + [spec.run.body]
    syncs, extras, all_extras = _installed_groups(commands)
    pyproject = Path(project_root) / "pyproject.toml"
    data: dict[str, Any] = {}
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            findings.append(Finding("scan", Level.WARNING, f"cannot read {pyproject}: {exc}"))
    project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
    deps = [str(d) for d in project.get("dependencies", []) or []]
    optional = project.get("optional-dependencies", {}) or {}
    uv_sources = ((data.get("tool") or {}).get("uv") or {}).get("sources") or {}
    reaching = list(deps)
    if "runpod-deploy" in {_requirement_name(d) for d in deps}:
        findings.append(Finding("scan", Level.WARNING,
                                "runpod-deploy is in [project.dependencies]: it would be "
                                "installed on the pod; keep the deploy tool a local dev tool"))
    if syncs and isinstance(optional, dict):
        for group, members in optional.items():
            if not (all_extras or group in extras):
                continue
            names = [str(m) for m in members or []]
            reaching += names
            if "runpod-deploy" in {_requirement_name(m) for m in names}:
                findings.append(Finding(
                    "scan", Level.WARNING,
                    f"runpod-deploy is in optional group '{group}', which `uv sync` installs "
                    "on the pod; move it to a group the pod does not install"))
    if isinstance(uv_sources, dict) and "runpod-deploy" in uv_sources:
        findings.append(Finding("scan", Level.WARNING,
                                "runpod-deploy is in [tool.uv.sources]: the pod would fetch it "
                                "from there"))
    if "torch" in {_requirement_name(d) for d in reaching} and not (
            isinstance(uv_sources, dict) and "torch" in uv_sources):
        findings.append(Finding("scan", Level.WARNING,
                                "torch reaches the pod without a [tool.uv.sources].torch pin: "
                                "the default wheel may need a newer CUDA than the pod's driver; "
                                "pin it to the cu128 index"))
    mount = spec.storage.volume_mount.rstrip("/") or "/"
    on_workspace = mount == "/workspace" or mount.startswith("/workspace/")
    inline_copy = any(re.search(r"UV_LINK_MODE=['\"]?copy", c) for c in commands)
    if on_workspace and syncs and "UV_LINK_MODE" not in spec.remote_env.exports and not inline_copy:
        findings.append(Finding(
            "scan", Level.WARNING,
            f"`uv sync` runs with the volume on {mount} (FUSE on RunPod), where uv's hardlinks "
            "hang: set remote_env.exports.UV_LINK_MODE: copy (or UV_LINK_MODE=copy inline)"))
    for source, excludes in staging_sources:
        findings += _scan_payload(Path(source), excludes)
    if not findings:
        findings.append(Finding("scan", Level.OK, "no consumer foot-guns found"))
    return findings


def _excluded(relative: str, is_dir: bool, patterns: Sequence[str]) -> bool:
    """A small rsync-style matcher: `dir/` matches directories, `**/x` any depth, a pattern
    without `/` any path component, one with `/` the path from the transfer root."""
    parts = relative.split("/")
    for raw in patterns:
        pattern = raw
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        anchored = pattern.startswith("/")
        pattern = pattern.lstrip("/")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatch("/".join(parts[i:]), tail) for i in range(len(parts))):
                return True
            continue
        if "/" in pattern or anchored:
            if fnmatch.fnmatch(relative, pattern):
                return True
        elif fnmatch.fnmatch(parts[-1], pattern):
            return True
    return False


def _scan_payload(source: Path, excludes: Sequence[str]) -> list[Finding]:
    patterns = list(DEFAULT_STAGING_EXCLUDES) + list(excludes)
    findings: list[Finding] = []
    if source.is_file():
        files = [(source, source.name)]
    elif source.is_dir():
        files = []
        for directory, dirnames, filenames in os.walk(source):
            base = Path(directory)
            rel_dir = base.relative_to(source).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = sorted(d for d in dirnames
                                 if not _excluded(rel_dir + d, True, patterns))
            files += [(base / f, rel_dir + f) for f in sorted(filenames)
                      if not _excluded(rel_dir + f, False, patterns)]
    else:
        return []
    for path, relative in files:
        if path.suffix not in _SCANNED_SUFFIXES:
            continue
        try:
            if path.stat().st_size > _MAX_SCANNED_BYTES:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        hits = 0
        for number, line in enumerate(text.splitlines(), start=1):
            match = _HOME_PATH.search(line)
            if match is None:
                continue
            findings.append(Finding("scan", Level.WARNING,
                                    f"{path}:{number}: absolute local path {match.group(0)!r} "
                                    "is staged to the pod, where it does not exist"))
            hits += 1
            if hits >= _HITS_PER_FILE:
                break
    return findings


# -- --check-image-registry -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ImageRef:
    repository: str
    """`owner/name` (`library/name` for an official image)."""
    reference: str
    """The tag (or a `sha256:` digest)."""

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.repository}{sep}{self.reference}"


def parse_image_ref(image: str) -> ImageRef | str:
    """A Docker Hub image reference, or why it is not checked (another registry, malformed)."""
    text = image.strip()
    if not text or any(c.isspace() for c in text):
        return f"image {image!r} is not a valid reference; not checked"
    first, slash, _rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return f"image {image} is not on Docker Hub ({first}); not checked"
    name, at, digest = text.partition("@")
    reference = digest if at else "latest"
    if not at:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, _, reference = name.rpartition(":")
    if "/" not in name:
        name = f"library/{name}"
    if not re.fullmatch(r"[a-z0-9]+(?:[._\-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._\-][a-z0-9]+)*)+", name) \
            or not reference:
        return f"image {image!r} is not a valid reference; not checked"
    return ImageRef(name, reference)


_MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)


def _challenge(header: str) -> dict[str, str]:
    """`Bearer realm="...",service="...",scope="..."` -> its parameters."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {k: v for k, v in re.findall(r'(\w+)="([^"]*)"', params)}


def _anonymous_token(challenge: Mapping[str, str], scope: str) -> str:
    query = {"service": challenge.get("service", ""), "scope": challenge.get("scope") or scope}
    url = challenge["realm"] + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
    with urllib.request.urlopen(url, timeout=REGISTRY_TIMEOUT_SEC) as response:
        body = json.loads(response.read() or b"{}")
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("the token service returned no token")
    return token


def _manifest_status(url: str, token: str | None) -> int:
    headers = {"Accept": _MANIFEST_TYPES}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method="HEAD", headers=headers)
    with urllib.request.urlopen(request, timeout=REGISTRY_TIMEOUT_SEC) as response:
        return int(response.status)


def check_image_registry(image: str, *, env: Mapping[str, str]) -> list[Finding]:
    """Does `image`'s tag exist? A missing tag is an error (the pod would sit in image-pull
    back-off, billing, at uptime 0); an unreachable registry is a warning."""
    ref = parse_image_ref(image)
    if isinstance(ref, str):
        return [Finding("registry", Level.INFO, ref)]
    base = (env.get(REGISTRY_URL_ENV) or DEFAULT_REGISTRY_URL).rstrip("/")
    url = f"{base}/v2/{ref.repository}/manifests/{ref.reference}"
    try:
        try:
            status = _manifest_status(url, None)
        except urllib.error.HTTPError as first:
            if first.code != 401:
                raise
            challenge = _challenge(first.headers.get("WWW-Authenticate", ""))
            if "realm" not in challenge:
                raise
            token = _anonymous_token(challenge, f"repository:{ref.repository}:pull")
            status = _manifest_status(url, token)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return [Finding("registry", Level.ERROR,
                            f"image tag {ref.reference!r} of {ref.repository} does NOT exist in "
                            f"{base} ({image}); a pod would wait for it forever "
                            "(image-pull back-off). Fix pod.image, or skip this check with "
                            "--skip-registry-check")]
        return [Finding("registry", Level.WARNING,
                        f"could not verify {image} in {base}: HTTP {exc.code}")]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [Finding("registry", Level.WARNING,
                        f"cannot reach the registry {base} to check {image} ({reason}); "
                        "not checked")]
    if 200 <= status < 300:
        return [Finding("registry", Level.OK, f"{image} exists in {base}")]
    return [Finding("registry", Level.WARNING, f"could not verify {image}: HTTP {status}")]


def effective_excludes(push: Any) -> list[str]:
    """A staging push's excludes as rsync gets them (defaults when opted in, then its own)."""
    return [*(DEFAULT_STAGING_EXCLUDES if push.excludes_default else ()), *push.excludes,
            *push.excludes_extra]
