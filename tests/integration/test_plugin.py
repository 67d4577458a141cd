"""The pytest plugin, end to end with pytester: fixtures, a passing parity test, a failing one's report."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_plugin_fixtures_pass_and_failures_carry_differences(pytester: pytest.Pytester, other_project, engine):
    pytester.makepyfile(
        test_parity="""
        from harness.plugin import assert_reproducible

        def test_parity(mlrepro_report):
            assert_reproducible(mlrepro_report)

        def test_fails_on_purpose(mlrepro_report, mlrepro_runs):
            image_run, host_run = mlrepro_runs
            assert image_run.where == "image" and host_run.where == "host"
            assert mlrepro_report.project == "not-this-project"
        """
    )
    result = pytester.runpytest_subprocess("--mlrepro-config", str(other_project), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*mlrepro differences*", "*REPRODUCIBLE*", "*mlrepro image log: fit*"])
