"""What differs between the pod a stack wants and the pod that exists, as `FieldChange`s.

deepdiff does the comparison; its types stay in here. Only fields that force a new pod are
compared (image, GPU type, datacenter, cloud type, storage); a value the provider did not
report and the state does not record is not compared (unknown is not drift).
"""

from __future__ import annotations

import re
from typing import Any

from deepdiff import DeepDiff

from reconciler.desired import DesiredPod
from reconciler.observed import ObservedPod
from reconciler.plan import FieldChange, Reason
from reconciler.state import PodRecord

__all__ = ["REPLACE_FIELDS", "actual_facts", "desired_facts", "field_changes", "reason_for"]

REPLACE_FIELDS = ("image", "gpu_type_id", "datacenter_id", "cloud_type", "storage")
_REASONS = {"image": Reason.IMAGE_DRIFT, "gpu_type_id": Reason.GPU_DRIFT,
            "datacenter_id": Reason.DATACENTER_DRIFT, "cloud_type": Reason.CLOUD_TYPE_DRIFT,
            "storage": Reason.STORAGE_DRIFT}
_KEY = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def actual_facts(pod: ObservedPod | None, record: PodRecord | None) -> dict[str, Any]:
    """What is known of the existing pod: the provider's word first, then the state's."""
    def pick(observed: Any, recorded: Any) -> Any:
        return observed if observed is not None else recorded

    o = pod
    r = record
    cloud = pick(o.cloud_type if o else None, r.cloud_type if r else None)
    facts: dict[str, Any] = {
        "image": pick(o.image if o else None, r.image if r else None),
        "gpu_type_id": pick(o.gpu_type_id if o else None, r.gpu_type_id if r else None),
        "datacenter_id": pick(o.datacenter_id if o else None, r.datacenter_id if r else None),
        "cloud_type": cloud.value if cloud is not None else None,
        "storage": {
            "volume_gb": pick(o.volume_gb if o else None, r.volume_gb if r else None),
            "volume_mount_path": o.volume_mount_path if o else None,
            "container_disk_gb": o.container_disk_gb if o else None,
        },
    }
    facts["storage"] = {k: v for k, v in facts["storage"].items() if v is not None}
    return {k: v for k, v in facts.items() if v is not None and v != {}}


def desired_facts(desired: DesiredPod, actual: dict[str, Any]) -> dict[str, Any]:
    """The same shape as `actual`, limited to the keys known there. A GPU or datacenter that is
    one of the candidates matches; otherwise the first candidate is what a new pod would get."""
    gpu = actual.get("gpu_type_id")
    dc = actual.get("datacenter_id")
    want: dict[str, Any] = {
        "image": desired.image,
        "gpu_type_id": gpu if gpu in desired.gpu_type_ids else _one_of(desired.gpu_type_ids),
        "datacenter_id": dc if dc in desired.datacenter_ids else _one_of(desired.datacenter_ids),
        "cloud_type": desired.cloud_type.value,
    }
    storage = {"volume_gb": desired.volume_gb if desired.volume_gb is not None else 0,
               "volume_mount_path": desired.volume_mount_path,
               "container_disk_gb": desired.container_disk_gb}
    if desired.storage_mode == "network_volume":
        storage.pop("volume_gb")
    want["storage"] = {k: v for k, v in storage.items() if k in actual.get("storage", {})}
    return {k: v for k, v in want.items() if k in actual}


def _one_of(candidates: tuple[str, ...]) -> str:
    return candidates[0] if len(candidates) == 1 else "one of " + ", ".join(candidates)


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    """deepdiff of two fact dicts -> FieldChanges, in REPLACE_FIELDS order."""
    diff = DeepDiff(before, after, ignore_order=False, verbose_level=2).to_dict()
    changes: list[FieldChange] = []
    for bucket in ("values_changed", "type_changes"):
        for path, change in (diff.get(bucket) or {}).items():
            changes.append(FieldChange(path=_dotted(path), before=change.get("old_value"),
                                       after=change.get("new_value")))
    for path, value in (diff.get("dictionary_item_added") or {}).items():
        changes.append(FieldChange(path=_dotted(path), before=None, after=value))
    for path, value in (diff.get("dictionary_item_removed") or {}).items():
        changes.append(FieldChange(path=_dotted(path), before=value, after=None))
    order = {name: i for i, name in enumerate(REPLACE_FIELDS)}
    return tuple(sorted(changes, key=lambda c: (order.get(c.path.split(".")[0], 99), c.path)))


def _dotted(path: str) -> str:
    parts = [m.group(1) if m.group(1) is not None else f"[{m.group(2)}]"
             for m in _KEY.finditer(path)]
    return ".".join(parts).replace(".[", "[")


def reason_for(change: FieldChange) -> tuple[Reason, dict[str, object]]:
    """The Reason (and its title values) a replace-forcing change gives."""
    head, _, rest = change.path.partition(".")
    reason = _REASONS.get(head, Reason.STORAGE_DRIFT)
    return reason, {"before": change.before, "after": change.after, "field": rest or head}
