"""Docs tests read the markdown under docs/ and run its examples."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
_FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CodeBlock:
    page: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def code_blocks(page: Path) -> list[CodeBlock]:
    """The fenced blocks of a page, with the line each starts on (for failure messages)."""
    text = page.read_text(encoding="utf-8")
    return [CodeBlock(page, text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2))
            for match in _FENCE.finditer(text)]


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))
