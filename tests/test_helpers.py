"""The test suite's own switch: a missing required part skips on a laptop and fails under CI."""

from __future__ import annotations

import pytest
from helpers import in_ci, require, require_module


def test_require_skips_without_ci_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()
    require(True, "anything")  # present: nothing happens
    with pytest.raises(pytest.skip.Exception, match="missing: the part"):
        require(False, "the part")
    with pytest.raises(pytest.skip.Exception, match="the module no_such_module_x"):
        require_module("no_such_module_x", "pip install it")
    assert require_module("json", "stdlib").dumps([]) == "[]"
    for value in ("true", "1", "TRUE"):
        monkeypatch.setenv("CI", value)
        assert in_ci()
        with pytest.raises(pytest.fail.Exception, match="CI=true and a required part is missing"):
            require(False, "the part")
    monkeypatch.setenv("CI", "false")
    assert not in_ci()
