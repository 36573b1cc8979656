"""The suite holds on a busy machine: every test runs under a deadline, so
a hang fails in minutes with the test named instead of holding the run."""


def test_every_test_runs_under_a_per_test_timeout(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pip install '.[test]' (pytest-timeout)"
    assert 0 < float(pytestconfig.getini("timeout")) <= 900
