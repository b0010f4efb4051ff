"""The public surface of `runpod_deploy`: complete, sorted, importable, typed, cheap to import."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import runpod_deploy as rd
from tests.api import typed_usage

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "src" / "runpod_deploy" / "__init__.py"
MYPY = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
        "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache")]


def test_all_is_sorted_and_names_every_export() -> None:
    assert rd.__all__ == sorted(rd.__all__)
    assert set(rd.__all__) == {*rd._EXPORTS, "__version__"}
    assert len(rd.__all__) == len(set(rd.__all__))


@pytest.mark.parametrize("name", rd.__all__)
def test_every_public_name_imports(name: str) -> None:
    value = getattr(rd, name)
    assert value is not None
    if name != "__version__":
        module_name, _, attribute = rd._EXPORTS[name].partition(":")
        assert value is getattr(sys.modules[module_name], attribute or name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from runpod_deploy import *", namespace)  # noqa: S102
    assert set(namespace) - {"__builtins__"} == set(rd.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'apply_plan'"):
        rd.apply_plan  # noqa: B018


def test_type_checking_imports_match_the_lazy_table() -> None:
    """What mypy sees (the TYPE_CHECKING block) is what `__getattr__` returns at run time."""
    tree = ast.parse(INIT.read_text())
    block = next(node for node in tree.body
                 if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names:
            public = alias.asname or alias.name
            seen[public] = node.module if alias.asname is None else f"{node.module}:{alias.name}"
    assert seen == rd._EXPORTS


def test_import_is_cheap() -> None:
    """`import runpod_deploy` loads none of the heavy dependencies (style rule 10)."""
    code = ("import sys, runpod_deploy; print(sorted(m for m in ('pydantic', 'requests', "
            "'paramiko', 'yaml', 'typer', 'rich', 'reconciler', 'runtime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_the_error_tree_has_one_root_and_is_documented() -> None:
    doc = inspect.getdoc(rd) or ""
    errors = [name for name in rd.__all__ if name.endswith("Error")]
    assert len(errors) > 25
    for name in errors:
        assert issubclass(getattr(rd, name), rd.RunpodDeployError), name
        assert f" {name}" in doc, f"{name} is missing from the tree in runpod_deploy's docstring"


def test_typed_usage_passes_mypy_strict() -> None:
    out = subprocess.run([*MYPY, str(Path(typed_usage.__file__))], capture_output=True, text=True,
                         cwd=REPO, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_sees_the_real_types_of_lazy_names(tmp_path: Path) -> None:
    """The lazy names are not `Any` to a type checker: a wrong use is reported."""
    wrong = tmp_path / "wrong_usage.py"
    wrong.write_text("import runpod_deploy as rd\n"
                     "from pathlib import Path\n"
                     "count: int = rd.load_manifest(Path('x'))\n"
                     "rd.load_stack('x.yaml', cli_vars=3)\n")
    out = subprocess.run([*MYPY, str(wrong)], capture_output=True, text=True, cwd=REPO,
                         check=False)
    assert out.returncode == 1
    assert 'has type "RunManifest"' in out.stdout
    assert "expected \"Iterable[str] | Mapping[str, str]\"" in out.stdout


def test_typed_usage_reads_run_dirs(tmp_path: Path) -> None:
    runs = tmp_path / "artifacts" / "runpod"
    for stamp, cost in (("20260101T000000Z", 0.25), ("20260102T000000Z", None)):
        (runs / stamp).mkdir(parents=True)
        (runs / stamp / "runpod_deploy_pull_manifest.json").write_text(
            json.dumps({"schema_version": "v2", "failed": False, "estimated_cost_usd": cost}))
    (runs / "20260101T000000Z" / "events.jsonl").write_text(
        '{"ts_utc": "2026-01-01T00:00:01+00:00", "event": "run_started"}\n'
        "{torn line\n"
        '{"event": "no_time"}\n')
    assert typed_usage.total_cost_usd(tmp_path) == 0.25
    assert [name for _, name in typed_usage.timeline(runs / "20260101T000000Z")] == ["run_started"]


def test_typed_usage_reports_every_problem_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 2\nname: x\npod:\n  image: img\n  datacenters: []\n"
                   "  gpu_order: [A]\nstorage: {mode: ephemeral}\nrun: {}\n")
    problems = typed_usage.problems_in(bad)
    assert any("bad.yaml:5:" in p and "pod.datacenters" in p for p in problems), problems
    assert any("run.script_path" in p for p in problems), problems


def test_typed_usage_picks_the_cheapest_priced_gpu() -> None:
    prices = {
        "A": rd.GpuPrice(gpu_type_id="A", secure_price=0.5),
        "B": rd.GpuPrice(gpu_type_id="B", secure_price=0.2, secure_spot_price=0.1),
        "C": rd.GpuPrice(gpu_type_id="C"),
    }
    assert typed_usage.cheapest_gpu(prices) == "B"
    assert typed_usage.cheapest_gpu({"C": prices["C"]}) is None
