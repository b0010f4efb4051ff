"""Where the fixture project and goldens live, and how machine paths are normalised."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"
PROJECT = DATA / "project"
RUNS = PROJECT / "artifacts" / "runpod"
GOLDEN = Path(__file__).parent / "golden"

OURS_SUCCEEDED = RUNS / "20260301T081500Z"
OURS_POD_KILLED = RUNS / "20260301T081500Z-001"
ORIGINAL_V2 = RUNS / "20260302T190000Z"
ORIGINAL_V1 = RUNS / "20260303T000000Z"
TORN_MANIFEST = RUNS / "20260304T120000Z"


def normalise(text: str, tmp_path: Path | None = None) -> str:
    """Machine-specific paths become placeholders, so goldens hold on every checkout."""
    text = text.replace(str(DATA), "<DATA>")
    if tmp_path is not None:
        text = text.replace(str(tmp_path), "<TMP>")
    return text
