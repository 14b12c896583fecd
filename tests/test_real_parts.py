"""tests/real_parts.py: a test needing the real parts must say so, and only such tests are rerun."""

from __future__ import annotations

import pytest

from tests import real_parts

CONFTEST = """
import pytest

pytest_plugins = ("tests.real_parts",)

@pytest.fixture(scope="session")
def session_sandbox():
    return "the sandbox"

@pytest.fixture
def deployed(session_sandbox):
    return session_sandbox
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A test directory whose conftest defines ``session_sandbox`` like tests/conftest.py does."""
    monkeypatch.setattr(real_parts, "_TESTS", pytester.path)
    monkeypatch.setattr(real_parts, "RERUN", pytest.mark.flaky(reruns=1, reruns_delay=0))
    pytester.makeconftest(CONFTEST)
    pytester.makeini(
        "[pytest]\n"
        "markers =\n    integration: needs the real parts\n"
        "addopts = -p no:cacheprovider -p no:hypothesispytest\n"
    )
    return pytester


class TestUnmarked:
    def test_a_test_reaching_a_real_fixture_through_another_is_refused(self, suite: pytest.Pytester) -> None:
        """The error names the test and the fixture chain that reaches the real part."""
        suite.makepyfile(test_one="def test_deploys(deployed):\n    assert deployed\n")
        result = suite.runpytest_inprocess()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*test_one.py::test_deploys uses deployed -> session_sandbox (fixture) but is not marked*"]
        )

    def test_a_module_importing_docker_is_refused(self, suite: pytest.Pytester) -> None:
        """Importing docker (or moto, or a sandbox launcher) at the top of a test module needs the marker."""
        suite.makepyfile(
            test_two="from docker.errors import NotFound\n\ndef test_x():\n    assert NotFound\n"
        )
        result = suite.runpytest_inprocess()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*test_two.py::test_x uses NotFound (imported by its module)*"])

    def test_a_unit_test_marked_flaky_is_refused(self, suite: pytest.Pytester) -> None:
        """Only integration tests are retried; a unit test may not ask for it."""
        suite.makepyfile(
            test_three="import pytest\n\n@pytest.mark.flaky(reruns=3)\ndef test_x():\n    pass\n"
        )
        result = suite.runpytest_inprocess()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["*test_three.py::test_x is marked flaky: only integration tests are rerun"]
        )


class TestReruns:
    def test_a_failing_integration_test_is_rerun_once_and_named(self, suite: pytest.Pytester) -> None:
        """An integration test failing once passes on its rerun; the summary names it and why it failed."""
        suite.makepyfile(
            test_four="""
            import pytest

            pytestmark = pytest.mark.integration
            tries = []

            def test_flaky(deployed):
                tries.append(1)
                assert len(tries) == 2
            """
        )
        result = suite.runpytest_inprocess()
        assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
        result.stdout.fnmatch_lines(
            [
                "rerun: 1 test(s) needing the real parts: test_four.py::test_flaky",
                "  first try of test_four.py::test_flaky (call): assert 1 == 2*",
            ]
        )

    def test_a_failing_unit_test_is_not_rerun(self, suite: pytest.Pytester) -> None:
        """A unit test fails on its first failure, and the summary says nothing was rerun."""
        suite.makepyfile(test_five="def test_x():\n    assert False\n")
        result = suite.runpytest_inprocess()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["rerun: 0"])
