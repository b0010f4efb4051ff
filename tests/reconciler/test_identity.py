"""Stack instances: the stack file plus its `--var` values is what owns a state and pods."""

from __future__ import annotations

from reconciler.identity import instance_state_path, stack_instance
from reconciler.naming import config_path_hash, stack_key

CONFIG = "/proj/configs/template.yaml"


def test_a_stack_without_variables_keeps_the_identity_it_always_had() -> None:
    plain = stack_instance("sweep", CONFIG)
    assert plain.key == stack_key("sweep", CONFIG)
    assert plain.config_hash == config_path_hash(CONFIG)[:16]
    assert plain.variables == () and plain.instance_suffix == ""
    assert instance_state_path("/s/stacks/sweep-1234abcd.json", plain) == "/s/stacks/sweep-1234abcd.json"


def test_each_set_of_values_is_its_own_instance_and_the_same_values_are_the_same() -> None:
    seed1 = stack_instance("sweep", CONFIG, {"seed": "1", "lr": "0.1"})
    again = stack_instance("sweep", CONFIG, {"lr": "0.1", "seed": "1"})
    seed2 = stack_instance("sweep", CONFIG, {"seed": "2", "lr": "0.1"})
    plain = stack_instance("sweep", CONFIG)
    assert seed1 == again
    assert len({seed1.key, seed2.key, plain.key}) == 3
    assert len({seed1.config_hash, seed2.config_hash, plain.config_hash}) == 3
    assert seed1.variables == (("lr", "0.1"), ("seed", "1"))
    paths = {instance_state_path("/s/stacks/sweep-1234abcd.json", i) for i in (seed1, seed2, plain)}
    assert len(paths) == 3
    assert instance_state_path("/s/stacks/sweep-1234abcd.json", seed1) == (
        f"/s/stacks/sweep-1234abcd@{seed1.config_hash[:8]}.json")


def test_the_same_values_in_another_stack_file_are_another_instance() -> None:
    here = stack_instance("sweep", CONFIG, {"seed": "1"})
    there = stack_instance("sweep", "/other/template.yaml", {"seed": "1"})
    assert here.key != there.key and here.config_hash != there.config_hash


def test_a_secret_value_counts_for_the_key_but_is_never_kept() -> None:
    one = stack_instance("s", CONFIG, {"token": "hunter2"}, secret_names=frozenset({"token"}))
    two = stack_instance("s", CONFIG, {"token": "other"}, secret_names=frozenset({"token"}))
    assert one.key != two.key
    assert one.variables == (("token", "<redacted>"),)
    assert "hunter2" not in repr(one)
