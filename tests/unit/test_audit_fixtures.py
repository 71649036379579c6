"""Precision and recall of taskward audit on the project's own fixture trees.

Every task start in ``tests/fixtures/audit_*`` carries the kind it must get in a trailing
``# expect: <kind>[, <kind>...]`` comment (one kind per start on the line, in column order);
a line without one must not be reported. A finding counts as correct only with the right kind.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from taskward.audit import DEFAULT_SKIP_DIRS, scan_paths

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREES = sorted(p for p in FIXTURES.glob("audit_*") if p.is_dir())
MARKER = re.compile(r"#\s*expect:\s*([a-z, ]+)")

Site = tuple[str, int, str]  # (path relative to the fixtures, line, kind)


def expected_sites(tree: Path) -> Counter[Site]:
    found: Counter[Site] = Counter()
    for path in sorted(tree.rglob("*.py")):
        if DEFAULT_SKIP_DIRS.intersection(path.relative_to(tree).parts):
            continue  # never walked into, so never reported
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = MARKER.search(line)
            if match:
                for kind in match.group(1).split(","):
                    found[(path.relative_to(FIXTURES).as_posix(), number, kind.strip())] += 1
    return found


def reported_sites(tree: Path) -> Counter[Site]:
    report = scan_paths([tree])
    return Counter(
        (Path(f.path).relative_to(FIXTURES).as_posix(), f.line, str(f.kind))
        for f in report.findings
    )


def score(trees: list[Path]) -> tuple[float, float, Counter[Site], Counter[Site]]:
    expected: Counter[Site] = Counter()
    reported: Counter[Site] = Counter()
    for tree in trees:
        expected += expected_sites(tree)
        reported += reported_sites(tree)
    hits = sum((expected & reported).values())
    precision = hits / sum(reported.values())
    recall = hits / sum(expected.values())
    return precision, recall, expected - reported, reported - expected


def test_fixture_trees_exist() -> None:
    names = [tree.name for tree in TREES]
    assert {"audit_cases", "audit_config", "audit_programs", "audit_tree"} <= set(names)


def test_precision_and_recall_are_100_percent(capsys: pytest.CaptureFixture[str]) -> None:
    precision, recall, missed, wrong = score(TREES)
    with capsys.disabled():
        print(f"\naudit fixtures: precision {precision:.0%}, recall {recall:.0%}")
    assert (dict(missed), dict(wrong)) == ({}, {})
    assert (precision, recall) == (1.0, 1.0)


@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.name)
def test_each_tree_has_expectations(tree: Path) -> None:
    assert expected_sites(tree)


# The cases issue 18 names, each found in the fixtures with the kind it must get.
ISSUE_CASES = [
    ("returns.py", "return loop.create_task(work())", "dangling"),
    ("returns.py", "return self.loop.create_task(coro)", "dangling"),
    ("names.py", "fut = asyncio.ensure_future(work())", "dangling"),
    ("names.py", "x = asyncio.create_task(work())", "dangling"),
    ("expressions.py", "asyncio.create_task(work()).add_done_callback(cb)", "dangling"),
    ("expressions.py", "asyncio.create_task(work()) if c else None", "dangling"),
    ("expressions.py", "c and asyncio.create_task(work())", "dangling"),
    ("expressions.py", "[asyncio.create_task(work()) for _ in range(2)]", "dangling"),
    ("callables.py", "loop.call_soon_threadsafe(loop.create_task, work())", "dangling"),
    ("callables.py", "lambda: asyncio.create_task(work()))", "dangling"),
    ("aliases.py", "spawn(work())", "dangling"),
    ("aliases.py", "asyncio.Task(work())", "dangling"),
    ("receivers.py", "tg.create_task(work())", "fine"),
    ("receivers.py", "task = asyncio.get_running_loop().create_task(coro)", "fine"),
    ("names.py", "_, second = asyncio.create_task", "dangling, fine"),
]


@pytest.mark.parametrize(("name", "snippet", "kinds"), ISSUE_CASES)
def test_issue_cases_are_in_the_fixtures(name: str, snippet: str, kinds: str) -> None:
    lines = (FIXTURES / "audit_cases" / name).read_text().splitlines()
    [line] = [line for line in lines if snippet in line and "expect:" in line][:1]
    match = MARKER.search(line)
    assert match is not None
    assert match.group(1).strip() == kinds


def test_another_class_create_task_is_not_reported() -> None:
    lines = (FIXTURES / "audit_cases" / "receivers.py").read_text().splitlines()
    own = [n for n, line in enumerate(lines, 1) if "self.create_task(work())  # the class" in line]
    reported = {f.line for f in scan_paths([FIXTURES / "audit_cases" / "receivers.py"]).findings}
    assert own
    assert not reported.intersection(own)
