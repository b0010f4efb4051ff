"""The one redaction boundary: every spelling of a secret becomes the one marker."""

from __future__ import annotations

import json
import shlex

from reconciler.redaction import MARKER, Redactor
from runtime.errors import RemoteCommandError, StalePlanError

SECRET = "s3cr'et \"value\"/é"


def test_every_spelling_a_value_takes_on_its_way_out_is_replaced() -> None:
    redactor = Redactor.of([SECRET])
    spellings = {
        "plain": f"token={SECRET}!",
        "shell": f"echo {shlex.quote(SECRET)}",
        "json": json.dumps({"cmd": f"login {SECRET}"}, ensure_ascii=False),
        "json ascii": json.dumps({"cmd": f"login {SECRET}"}),
    }
    for how, text in spellings.items():
        clean = redactor.text(text)
        assert MARKER in clean, how
        assert "s3cr" not in clean, f"{how}: {clean}"


def test_a_secret_containing_another_goes_whole() -> None:
    redactor = Redactor.of(["abcd", "xxabcdxx"])
    assert redactor.text("a xxabcdxx b abcd") == f"a {MARKER} b {MARKER}"


def test_empty_and_very_short_values_are_not_secrets_worth_hiding() -> None:
    redactor = Redactor.of(["", None, "ab", "   "])
    assert not redactor
    assert redactor.text("ab abc") == "ab abc"


def test_json_trees_keys_and_values() -> None:
    redactor = Redactor.of(["tok-1234"])
    tree = {"a": ["x tok-1234", {"tok-1234": 3}], "n": 5}
    assert redactor.json(tree) == {"a": [f"x {MARKER}", {MARKER: 3}], "n": 5}


def test_env_tree_hides_secret_looking_names_in_every_shape() -> None:
    redactor = Redactor.of([])
    assert redactor.env_tree(["HF_TOKEN=abc", "PLAIN=1"]) == [f"HF_TOKEN={MARKER}", "PLAIN=1"]
    assert redactor.env_tree([{"key": "API_KEY", "value": "v"}]) == [{"key": "API_KEY", "value": MARKER}]
    assert redactor.env_tree({"PASSWORD": "p", "HOME": "/root"}) == {"PASSWORD": MARKER, "HOME": "/root"}


def test_an_exception_keeps_its_type_and_loses_the_secret() -> None:
    redactor = Redactor.of(["hunter22"])
    error = redactor.exception(RemoteCommandError("login hunter22", 1, "bad hunter22"))
    assert isinstance(error, RemoteCommandError) and error.exit_status == 1
    assert "hunter22" not in str(error) and MARKER in str(error)
    assert "hunter22" not in error.command and "hunter22" not in error.output_tail
    untouched = StalePlanError("nothing secret here")
    assert redactor.exception(untouched) is untouched and str(untouched) == "nothing secret here"
