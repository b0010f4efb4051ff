"""Template values in shell fields stay data: whatever the value, bash prints it back exactly
and runs nothing of it, bare, inside "...", or inside '...'. Checked against a real bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.template import render_text

HOSTILE = [
    "hello from runpod-deploy",
    "a'b",
    'a"b',
    "$(touch {canary})",
    "`touch {canary}`",
    "; touch {canary}; echo ",
    "x' ; touch {canary} ; echo '",
    'x" ; touch {canary} ; echo "',
    "\\\" ; touch {canary} #",
    "${HOME} and $HOME",
    "line1\nline2",
    "*",
    "--help",
    "",
]

TEMPLATES = {
    "bare": "printf '%s' {v}",
    "double": 'printf "%s" "{v}"',
    "single": "printf '%s' '{v}'",
    "double-with-prefix": 'printf "%s" "[x] {v} [y]"',
}
EXPECTED_AROUND = {"double-with-prefix": ("[x] ", " [y]")}


def _run(script: str) -> str:
    # Bytes, not text=True: universal newlines would turn a "\r" in the value into "\n".
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


@pytest.mark.parametrize("context", TEMPLATES)
@pytest.mark.parametrize("raw_value", HOSTILE)
def test_hostile_values_print_back_and_never_run(tmp_path: Path, context: str, raw_value: str) -> None:
    canary = tmp_path / "pwned"
    value = raw_value.replace("{canary}", str(canary))
    script = render_text(TEMPLATES[context], {"v": value}, shell=True)
    before, after = EXPECTED_AROUND.get(context, ("", ""))
    if context == "bare" and value == "":
        assert _run(script) == ""
    else:
        assert _run(script) == before + value + after
    assert not canary.exists(), f"the value ran as code: {script!r}"


def test_safe_values_are_inserted_verbatim_as_the_original_did() -> None:
    assert render_text('cd {d} && echo "{d}"', {"d": "/workspace/repo-1.2"}, shell=True) == \
        'cd /workspace/repo-1.2 && echo "/workspace/repo-1.2"'


def test_raw_substitution_is_verbatim_when_the_stack_asks() -> None:
    assert render_text("{cmd!raw}", {"cmd": "echo a; echo b"}, shell=True) == "echo a; echo b"
    assert _run(render_text("{cmd!raw}", {"cmd": "echo a; echo b"}, shell=True)) == "a\nb\n"


def test_non_shell_fields_are_never_quoted() -> None:
    assert render_text("{v}", {"v": "a b'c"}, shell=False) == "a b'c"


def test_escaped_quote_before_a_reference_does_not_confuse_the_context() -> None:
    script = render_text('printf "%s" "it\\"s {v}"', {"v": "a b"}, shell=True)
    assert _run(script) == 'it"s a b'


@settings(max_examples=60, deadline=None)
@given(value=st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30))
def test_any_text_round_trips_in_every_context(value: str) -> None:
    for context, template in TEMPLATES.items():
        script = render_text(template, {"v": value}, shell=True)
        before, after = EXPECTED_AROUND.get(context, ("", ""))
        assert _run(script) == before + value + after, (context, script)
