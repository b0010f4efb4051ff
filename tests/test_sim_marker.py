"""The suite's `sim` marker check (tests/conftest.py), run on small throwaway suites: an
unmarked test that would start the simulator stops the run or fails, a marked one does not."""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE_CONFTEST = (Path(__file__).parent / "conftest.py").read_text(encoding="utf-8")
MARKERS_INI = """
[pytest]
markers =
    sim: starts the simulator
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch suite with this suite's conftest (its hooks and the simulator plugin)."""
    pytester.makeconftest(SUITE_CONFTEST)
    pytester.makeini(MARKERS_INI)
    return pytester


def test_an_unmarked_test_using_a_simulator_fixture_fails_before_its_fixtures_run(
        suite: pytest.Pytester) -> None:
    suite.makepyfile(test_unmarked="""
        import pytest

        @pytest.fixture
        def account(runpod_sim):
            raise AssertionError("the simulator fixture was set up")

        def test_plain():
            pass

        def test_through_another_fixture(account):
            pass
    """)
    result = suite.runpytest_subprocess("-m", "not sim")
    result.assert_outcomes(passed=1, errors=1)
    expected = ("*test_unmarked.py::test_through_another_fixture starts the simulator (through "
                "runpod_sim) but is not marked `sim`*")
    result.stdout.fnmatch_lines([expected])
    assert "the simulator fixture was set up" not in result.stdout.str()


def test_an_unmarked_test_starting_a_simulator_itself_fails_before_it_starts(
        suite: pytest.Pytester) -> None:
    suite.makepyfile(test_direct="""
        from runpod_sim.testing import Simulator

        def test_starts_one(tmp_path):
            Simulator.start(tmp_path / "sim").stop()  # stopped again should the guard fail
    """)
    result = suite.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_starts_one starts the simulator but is not marked `sim`*"])


def test_marked_tests_are_left_alone_and_deselected_by_not_sim(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_marked="""
        import pytest

        pytestmark = pytest.mark.sim

        def test_uses_the_fixture(runpod_sim):
            pass
    """)
    result = suite.runpytest_subprocess("-m", "not sim")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*1 deselected*"])
