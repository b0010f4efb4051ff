"""RunPod's GPU type ids and datacenter ids, as a static table the planner checks against.

A live `Catalog`, when one was observed, refines it (`known_gpu_ids`, `known_datacenter_ids`).
The ids are RunPod's exact `gpuTypeId` strings; display names ("H100 SXM") are not ids, and a
stack that uses one gets a "did you mean" pointing at the id.
"""

from __future__ import annotations

import difflib

from reconciler.observed import Catalog

__all__ = ["DATACENTER_IDS", "GPU_DISPLAY_NAMES", "GPU_IDS", "known_datacenter_ids",
           "known_gpu_ids", "suggest"]

GPU_DISPLAY_NAMES: dict[str, str] = {
    "AMD Instinct MI300X OAM": "MI300X",
    "NVIDIA A100 80GB PCIe": "A100 PCIe",
    "NVIDIA A100-SXM4-80GB": "A100 SXM",
    "NVIDIA A30": "A30",
    "NVIDIA A40": "A40",
    "NVIDIA B200": "B200",
    "NVIDIA GeForce RTX 3070": "RTX 3070",
    "NVIDIA GeForce RTX 3080": "RTX 3080",
    "NVIDIA GeForce RTX 3080 Ti": "RTX 3080 Ti",
    "NVIDIA GeForce RTX 3090": "RTX 3090",
    "NVIDIA GeForce RTX 3090 Ti": "RTX 3090 Ti",
    "NVIDIA GeForce RTX 4070 Ti": "RTX 4070 Ti",
    "NVIDIA GeForce RTX 4080": "RTX 4080",
    "NVIDIA GeForce RTX 4080 SUPER": "RTX 4080 SUPER",
    "NVIDIA GeForce RTX 4090": "RTX 4090",
    "NVIDIA GeForce RTX 5080": "RTX 5080",
    "NVIDIA GeForce RTX 5090": "RTX 5090",
    "NVIDIA H100 80GB HBM3": "H100 SXM",
    "NVIDIA H100 NVL": "H100 NVL",
    "NVIDIA H100 PCIe": "H100 PCIe",
    "NVIDIA H200": "H200 SXM",
    "NVIDIA H200 NVL": "H200 NVL",
    "NVIDIA L4": "L4",
    "NVIDIA L40": "L40",
    "NVIDIA L40S": "L40S",
    "NVIDIA RTX 2000 Ada Generation": "RTX 2000 Ada",
    "NVIDIA RTX 4000 Ada Generation": "RTX 4000 Ada",
    "NVIDIA RTX 4000 SFF Ada Generation": "RTX 4000 Ada SFF",
    "NVIDIA RTX 5000 Ada Generation": "RTX 5000 Ada",
    "NVIDIA RTX 6000 Ada Generation": "RTX 6000 Ada",
    "NVIDIA RTX A2000": "RTX A2000",
    "NVIDIA RTX A4000": "RTX A4000",
    "NVIDIA RTX A4500": "RTX A4500",
    "NVIDIA RTX A5000": "RTX A5000",
    "NVIDIA RTX A6000": "RTX A6000",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": "RTX PRO 6000",
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": "RTX PRO 6000 WK",
    "Tesla V100-FHHL-16GB": "V100 FHHL",
    "Tesla V100-PCIE-16GB": "V100 PCIe",
    "Tesla V100-SXM2-16GB": "V100 SXM2",
    "Tesla V100-SXM2-32GB": "V100 SXM2 32GB",
}
GPU_IDS: frozenset[str] = frozenset(GPU_DISPLAY_NAMES)

DATACENTER_IDS: frozenset[str] = frozenset({
    "AP-JP-1", "CA-MTL-1", "CA-MTL-2", "CA-MTL-3", "EU-CZ-1", "EU-FR-1", "EU-NL-1", "EU-RO-1",
    "EU-SE-1", "EUR-IS-1", "EUR-IS-2", "EUR-IS-3", "EUR-NO-1", "OC-AU-1", "US-CA-1", "US-CA-2",
    "US-DE-1", "US-GA-1", "US-GA-2", "US-IL-1", "US-KS-1", "US-KS-2", "US-KS-3", "US-MD-1",
    "US-NC-1", "US-NE-1", "US-OR-1", "US-OR-2", "US-TX-1", "US-TX-2", "US-TX-3", "US-TX-4",
    "US-WA-1",
})


def known_gpu_ids(catalog: Catalog | None) -> frozenset[str]:
    """The static table, refined by the ids a live catalog lists (RunPod adds GPUs)."""
    if catalog is None:
        return GPU_IDS
    return GPU_IDS | {p.gpu_type_id for p in catalog.prices} | {
        a.gpu_type_id for a in catalog.availability}


def known_datacenter_ids(catalog: Catalog | None) -> frozenset[str]:
    if catalog is None:
        return DATACENTER_IDS
    return DATACENTER_IDS | set(catalog.datacenter_ids) | {
        a.datacenter_id for a in catalog.availability}


def suggest(value: str, known: frozenset[str]) -> str | None:
    """The nearest known id, matching display names too ('H100 SXM' -> the H100 HBM3 id)."""
    for gpu_id, display in GPU_DISPLAY_NAMES.items():
        if gpu_id in known and value.lower() in (display.lower(), f"nvidia {display}".lower()):
            return gpu_id
    close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None
