"""`run --offline-dry-run`: walk every phase of a run and say what it would do, with no provider,
no SSH and no state (the original's free first check after `pip install`).

Placement is the first GPU of gpu_order in the first datacenter (or the `--gpu-id` /
`--datacenter-id` pin), and the pod is a stand-in: id `<pod-id>`, SSH at 203.0.113.10:22022
(a documentation address). Nothing is read but the stack; nothing is written, not even the run
dir (its path is what a real run would use). Secret values are never shown: a secret is named
by where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.spec import DEFAULT_STAGING_EXCLUDES, JobSpec, StorageMode

__all__ = ["SENTINEL_HOST", "SENTINEL_POD_ID", "SENTINEL_PORT", "OfflineStep", "offline_walk"]

SENTINEL_POD_ID = "<pod-id>"
SENTINEL_HOST = "203.0.113.10"
SENTINEL_PORT = 22022


@dataclass(frozen=True, slots=True)
class OfflineStep:
    """One thing a run would do, in order."""

    phase: str
    action: str

    def format(self) -> str:
        return f"[{self.phase}] {self.action}"


def _excludes(push: object) -> list[str]:
    defaults = DEFAULT_STAGING_EXCLUDES if getattr(push, "excludes_default", False) else ()
    return [*defaults, *getattr(push, "excludes", ()), *getattr(push, "excludes_extra", ())]


def offline_walk(spec: JobSpec, *, pod_name: str, run_dir: str, gpu_id: str | None = None,
                 datacenter_id: str | None = None,
                 fallback_cloud_type: str | None = None) -> tuple[OfflineStep, ...]:
    """The phases of a run of the rendered `spec`, as steps (pure: nothing is asked)."""
    steps: list[OfflineStep] = []

    def say(phase: str, action: str) -> None:
        steps.append(OfflineStep(phase, action))

    budget = spec.budget
    timeout_min = (budget.max_runtime_minutes if budget.max_runtime_minutes is not None
                   else budget.cost_cap_usd / budget.assumed_hourly_rate_usd * 60)
    say("budget", f"cap ${budget.cost_cap_usd:.2f}, assumed ${budget.assumed_hourly_rate_usd:.2f}/hr, "
        f"timeout {timeout_min:.1f} min, spend at most "
        f"${min(budget.cost_cap_usd, budget.assumed_hourly_rate_usd * timeout_min / 60):.2f}")
    for path in spec.local.required_paths:
        say("local", f"require {path} under the project root")
    gpu = gpu_id or spec.pod.gpu_order[0]
    datacenter = datacenter_id or spec.pod.datacenters[0]
    how = "pinned by --gpu-id/--datacenter-id" if gpu_id else "first of gpu_order x datacenters; "\
        "no stock is read offline"
    say("select", f"{gpu} in {datacenter} ({how})")
    cloud = spec.pod.cloud_type.value
    if spec.storage.mode is StorageMode.NETWORK_VOLUME:
        say("provision", f"look up network volume '{spec.storage.volume_name}' -> <volume-id>")
        disk = f"network volume <volume-id> at {spec.storage.volume_mount}"
    else:
        disk = f"{spec.storage.volume_gb} GB volume at {spec.storage.volume_mount}"
    say("provision", f"create pod {pod_name}: {spec.pod.gpu_count} x {gpu} in {datacenter}, "
        f"cloud {cloud}{', spot' if spec.pod.spot else ''}, image {spec.pod.image}, {disk}, "
        f"container disk {spec.pod.container_disk_gb} GB, ports {', '.join(spec.pod.ports)}")
    if fallback_cloud_type and fallback_cloud_type != cloud:
        say("provision", f"on a stock-out, retry once with cloud type {fallback_cloud_type}")
    say("wait_ssh", f"wait for pod {SENTINEL_POD_ID} to publish SSH (at most "
        f"{budget.ssh_ready_timeout_sec}s), then log in as root@{SENTINEL_HOST}:{SENTINEL_PORT} "
        f"with {spec.ssh.key_path}")
    for command in spec.setup:
        say("setup", f"run (timeout {command.timeout_sec}s{', with remote_env' if command.with_env else ''}): "
            f"{command.command}")
    for secret in spec.secrets:
        what = f"env {', '.join(secret.env)}" if secret.env else "a local file"
        say("secrets", f"write secret '{secret.name}' ({what}) to {secret.destination} "
            f"mode {secret.mode}")
    for push in spec.staging:
        excludes = _excludes(push)
        say("stage", f"rsync push '{push.label}': {push.source} -> {push.destination}"
            f"{' (delete extraneous)' if push.delete else ''}"
            f"{'; exclude ' + ' '.join(excludes) if excludes else ''}")
    if spec.pod.python_version:
        say("preflight", f"pin Python {spec.pod.python_version} with uv")
    for command in spec.preflight:
        say("preflight", f"run (timeout {command.timeout_sec}s): {command.command}")
    say("launch", f"write the run body to {spec.run.script_path} and start it detached, "
        f"logging to {spec.run.log_path}")
    say("monitor", f"poll {spec.run.log_path} every {budget.poll_interval_sec}s for "
        f"{spec.run.success_marker!r} (failure markers: "
        f"{', '.join(repr(m) for m in spec.run.failure_markers)}); give up after "
        f"{timeout_min:.1f} min")
    say("pull", f"rsync pull {spec.run.log_path} -> {run_dir}")
    for artifact in spec.artifacts:
        say("pull", f"rsync pull '{artifact.label}': {artifact.remote_path} -> {artifact.local_path}"
            f"{'' if artifact.required else ' (optional)'}")
    say("lifecycle", f"on success: {spec.lifecycle.on_success.value} pod {SENTINEL_POD_ID}; "
        f"on failure: {spec.lifecycle.on_failure.value}")
    say("manifest", f"write {run_dir}/runpod_deploy_pull_manifest.json")
    return tuple(steps)
