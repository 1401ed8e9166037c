"""The suite's pytest-xdist scheduling: modules whose tests one worker must run together."""

from __future__ import annotations

import pytest

from tests.conftest import ONE_WORKER_MODULES, pytest_xdist_make_scheduler


def test_the_modules_listed_run_in_one_worker_and_the_others_test_by_test(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request.config.option, "dist", "loadgroup")
    monkeypatch.setattr(request.config.option, "tx", ["2*popen"])  # as `-n 2` sets it
    sched = pytest_xdist_make_scheduler(request.config, None)
    served = [f"tests/test_serve.py::{name}" for name in ("test_a", "test_b[1]", "test_c[x-y]")]
    assert "tests/test_serve.py" in ONE_WORKER_MODULES
    assert {sched._split_scope(nodeid) for nodeid in served} == {"tests/test_serve.py"}
    others = ["tests/test_cli.py::test_a", "tests/test_cli.py::test_b[1]"]
    assert [sched._split_scope(nodeid) for nodeid in others] == others  # one unit each
    # a group mark still groups, where pytest-xdist's suffix takes
    assert sched._split_scope("tests/test_cli.py::test_a@mine") == "mine"
    monkeypatch.setattr(request.config.option, "dist", "load")  # the user's choice stands
    assert pytest_xdist_make_scheduler(request.config, None) is None


def test_pytest_still_ignores_the_group_suffix_xdist_appends(
    request: pytest.FixtureRequest,
) -> None:
    """What conftest's scheduler works around (pytest 9.2.0, pytest-xdist 3.8.0): xdist marks a
    grouped test by setting `item._nodeid` to its id plus "@group" (xdist/remote.py), which
    pytest's `nodeid` no longer reads (pytest-dev/pytest-xdist#1386). When this fails, the
    `xdist_group` mark works again: ONE_WORKER_MODULES can become marks."""
    node = request.node
    before = node.nodeid
    had = "_nodeid" in vars(node)
    saved = vars(node).get("_nodeid")
    node._nodeid = f"{before}@probe"  # exactly what xdist's worker does
    try:
        honoured = node.nodeid.endswith("@probe")
    finally:
        if had:
            node._nodeid = saved
        else:
            del node._nodeid
    assert node.nodeid == before
    assert not honoured, "pytest honours xdist's group suffix again: use xdist_group marks"
