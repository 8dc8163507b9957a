"""The quick subset (`-m "not slow"`): tests/slow_tests.txt, chosen from a measured run by tests/measure_slow.py,
names tests that exist, and conftest.py marks them slow."""

import re

from conftest import REPO_ROOT, listed_slow_tests
from measure_slow import choose_slow, measured_times


def test_every_listed_slow_test_exists():
    for nodeid in listed_slow_tests():
        path, _, name = nodeid.partition("::")
        function = re.sub(r"\[.*\]$", "", name)
        source = REPO_ROOT / path
        assert source.is_file(), nodeid
        assert re.search(rf"^\s*def {re.escape(function)}\(", source.read_text(encoding="utf-8"), re.M), nodeid


def test_conftest_marks_a_listed_test_slow_and_leaves_the_others(monkeypatch):
    import conftest

    class Item:
        def __init__(self, nodeid):
            self.nodeid, self.markers = nodeid, []

        def add_marker(self, marker):
            self.markers.append(marker.name)

    monkeypatch.setattr(conftest, "listed_slow_tests", lambda: {"tests/test_a.py::test_big[x]"})
    listed, other = Item("tests/test_a.py::test_big[x]"), Item("tests/test_a.py::test_big[y]")
    conftest.pytest_collection_modifyitems(None, [listed, other])
    assert listed.markers == ["slow"] and other.markers == []


def test_the_slowest_are_listed_until_the_rest_fit_the_budget():
    log = """
============================= slowest durations ==============================
12.50s call     tests/test_a.py::test_big
3.00s setup    tests/test_a.py::test_big
8.00s call     tests/test_b.py::test_mid[x]
2.00s call     tests/test_b.py::test_small
0.50s teardown tests/test_b.py::test_small
"""
    times = measured_times(log)
    assert times == {"tests/test_a.py::test_big": 15.5, "tests/test_b.py::test_mid[x]": 8.0, "tests/test_b.py::test_small": 2.5}
    assert choose_slow(times, budget=11) == ["tests/test_a.py::test_big"]  # 10.5 s left
    assert choose_slow(times, budget=10) == ["tests/test_a.py::test_big", "tests/test_b.py::test_mid[x]"]
    assert choose_slow(times, budget=100) == []
