"""The docs site builds with warnings as errors: broken links, missing anchors, pages left out
of the nav."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.conftest import REPO


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed: `./dev test` installs the test extra")
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                          str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "site" / "recipes" / "sweep" / "index.html").is_file()
    assert (tmp_path / "site" / "cli-reference" / "index.html").is_file()
