"""Every stack in the docs validates, and the generated reference pages are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import runpod_deploy as rd
from tests.docs.conftest import DOCS, REPO, CodeBlock, code_blocks, doc_pages

STACK_BLOCKS = [block for page in doc_pages() for block in code_blocks(page)
                if block.language in ("yaml", "yml") and "schema_version:" in block.text]


def test_the_stack_blocks_are_found_with_the_line_they_start_on() -> None:
    """The quickstart's stack is among the blocks checked below, and a block's `where` (the
    location a failure names) is the line of its opening fence."""
    quickstart = [b for b in STACK_BLOCKS if b.page == DOCS / "quickstart.md"]
    assert quickstart, "docs/quickstart.md shows no stack to check"
    for block in STACK_BLOCKS:
        fence = block.page.read_text(encoding="utf-8").splitlines()[block.line - 1]
        assert fence.startswith(f"```{block.language}"), block.where


@pytest.mark.parametrize("block", STACK_BLOCKS, ids=[b.where for b in STACK_BLOCKS])
def test_every_stack_in_the_docs_validates(block: CodeBlock, tmp_path: Path) -> None:
    """Loaded as `validate` loads it: schema, values and every template variable rendered."""
    stack = tmp_path / "project" / "stack.yaml"
    stack.parent.mkdir()
    stack.write_text(block.text, encoding="utf-8")
    try:
        rd.load_stack(stack, env={"HOME": str(tmp_path)})
    except rd.SpecError as exc:
        pytest.fail(f"{block.where}: the stack in this block is not valid:\n{exc}")


def test_generated_references_are_current() -> None:
    out = subprocess.run([sys.executable, str(DOCS / "gen" / "generate.py"), "--check"],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr


def test_the_config_schema_page_lists_every_section() -> None:
    page = (DOCS / "config-schema.md").read_text(encoding="utf-8")
    for section in rd.stack_schema()["$defs"]:
        assert f"\n## {section}\n" in page
    for key in rd.JobSpec.model_fields:
        assert f"| `{key}` |" in page


def test_the_cli_reference_lists_every_command() -> None:
    page = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    for command in ("validate", "plan", "apply", "run", "drift", "cleanup", "sim up"):
        assert f"\n## {command}\n" in page
    assert "| `--print-run-dir` |" in page
