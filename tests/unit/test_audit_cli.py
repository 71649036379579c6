"""Tests for the ``taskward audit`` command: exit statuses, output formats (text, JSON, SARIF,
GitHub), pyproject settings, the cache and the process pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import taskward.audit.cli
import taskward.audit.scan
from taskward.audit import Kind, main, scan_paths
from taskward.audit.cache import default_cache_dir

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREE = FIXTURES / "audit_tree"
CONFIGURED = FIXTURES / "audit_config"
CASES = FIXTURES / "audit_cases"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Send the default cache to a temporary folder, never into the repository."""
    folder = tmp_path / "default-cache"
    monkeypatch.setattr(taskward.audit.cli, "default_cache_dir", lambda project: folder)
    return folder


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- exit statuses and the text format -----------------------------------------------------------


def test_clean_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([str(TREE / "spawn_clean.py")], capsys)
    assert (code, err) == (0, "")
    assert out == "0 dangling, 0 unsupervised, 2 fine; scanned 1 file.\n"


def test_dangling_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = TREE / "spawn_aliases.py"
    code, out, err = run([str(path)], capsys)
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{path}:13:5: dangling: ct in start: a bare statement drops its result [fixable]",
        f"{path}:14:13: unsupervised: aio.create_task in start: returned by start() to callers "
        "outside this module; nothing awaits it or reads its exception",
        f"{path}:15:5: dangling: ensure_future in start: a bare statement drops its result "
        "[fixable]",
        "2 dangling, 1 unsupervised, 0 fine; scanned 1 file; 2 fixable with --fix.",
    ]


def test_unsupervised_fails_only_with_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "kept.py"
    target.write_text("import asyncio\nBACKGROUND = asyncio.ensure_future(c())\n")
    assert run([str(target)], capsys)[0] == 0
    assert run([str(target), "--strict"], capsys)[0] == 1


def test_fine_tasks_are_listed_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    path = TREE / "spawn_clean.py"
    code, out, _ = run([str(path), "--show-fine"], capsys)
    assert code == 0
    assert out.splitlines()[0] == (
        f"{path}:14:9: fine: tg.create_task in supervised: supervised by its task group"
    )


def test_suppressed_findings_are_summarised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mod.py"
    target.write_text("loop.create_task(c())  # taskward: ignore\n")
    assert run([str(target)], capsys) == (
        0,
        "0 dangling, 0 unsupervised, 0 fine; scanned 1 file; 1 suppressed.\n",
        "",
    )


def test_unparseable_exits_2_even_with_findings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([str(TREE), "--format", "json"], capsys)
    assert code == 2
    assert len(json.loads(out)) == 8  # dangling and unsupervised
    assert err == f"{TREE / 'spawn_broken.py'}: error: syntax error: invalid syntax (line 6)\n"


def test_missing_path_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    code, out, err = run([str(missing)], capsys)
    assert code == 2
    assert err == f"{missing}: error: no such file or directory\n"
    assert out.endswith("1 path could not be scanned.\n")


@pytest.mark.parametrize("argv", [[], ["--format", "xml", "a.py"], ["--bogus", "a.py"]])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: taskward audit" in capsys.readouterr().err


def test_help_exits_0_and_explains_kinds_and_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: taskward audit" in out
    for text in ("dangling", "unsupervised", "fine", "exit status", "taskward: ignore"):
        assert text in out


def test_python_dash_m(tmp_path: Path) -> None:
    target = tmp_path / "mod.py"
    target.write_text("loop.create_task(c())\n")
    proc = subprocess.run(
        [sys.executable, "-m", "taskward.audit", str(target), "--no-cache", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["kind"] == "dangling"


# --- JSON -----------------------------------------------------------------------------------------


def test_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(TREE / "spawn_service.py"), "--format", "json", "--show-fine"], capsys)
    assert code == 1
    rows = json.loads(out)
    assert [(r["line"], r["kind"], r["fixable"]) for r in rows] == [
        (6, "unsupervised", False),
        (15, "dangling", False),
        (16, "unsupervised", False),
        (20, "dangling", True),
    ]
    assert set(rows[0]) == {
        "path",
        "line",
        "col",
        "end_line",
        "end_col",
        "call",
        "function",
        "kind",
        "reason",
        "fixable",
    }


# --- SARIF ----------------------------------------------------------------------------------------


def sarif(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code, out, err = run([*argv, "--format", "sarif"], capsys)
    assert err == ""
    return code, json.loads(out)


def test_sarif_log_structure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    code, log = sarif(["audit_tree"], capsys)
    assert code == 2
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    [sarif_run] = log["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "taskward-audit"
    rules = driver["rules"]
    assert [rule["id"] for rule in rules] == ["dangling-task", "unsupervised-task"]
    for rule in rules:
        assert rule["shortDescription"]["text"]
        assert rule["fullDescription"]["text"]
    assert sarif_run["columnKind"] == "unicodeCodePoints"
    results = sarif_run["results"]
    assert len(results) == 8
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning")
        assert result["message"]["text"]
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert physical["artifactLocation"]["uri"].startswith("audit_tree/")
        region = physical["region"]
        assert all(isinstance(region[k], int) and region[k] >= 1 for k in region)
        assert (region["endLine"], region["endColumn"]) > (
            region["startLine"],
            region["startColumn"],
        )
    first = results[0]
    assert first["ruleId"] == "unsupervised-task"
    assert first["level"] == "warning"
    assert first["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 7,
        "startColumn": 12,
        "endLine": 7,
        "endColumn": 26,
    }
    [invocation] = sarif_run["invocations"]
    assert invocation["executionSuccessful"] is False
    [notification] = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error"
    assert notification["message"]["text"] == "syntax error: invalid syntax (line 6)"


def test_sarif_levels_follow_strict(capsys: pytest.CaptureFixture[str]) -> None:
    _, log = sarif([str(TREE / "spawn_aliases.py"), "--strict", "--show-fine"], capsys)
    results = log["runs"][0]["results"]
    assert [r["level"] for r in results] == ["error", "error", "error"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["dangling-task", "unsupervised-task", "supervised-task"]


def test_sarif_uri_outside_the_working_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "with space.py"
    target.write_text("loop.create_task(c())\n")
    monkeypatch.chdir(FIXTURES)
    _, log = sarif([str(target)], capsys)
    artifact = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": target.as_uri()}
    assert "%20" in artifact["uri"]


# --- GitHub annotations ---------------------------------------------------------------------------


def test_github_annotations(capsys: pytest.CaptureFixture[str]) -> None:
    path = TREE / "spawn_aliases.py"
    code, out, err = run([str(path), "--format", "github"], capsys)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"::error file={path},line=13,col=5,endLine=13,endColumn=15,"
        "title=taskward audit%3A dangling task::ct in start: a bare statement drops its result"
    )
    assert lines[1].startswith(f"::warning file={path},line=14,col=13,")
    assert lines[-1].startswith("2 dangling, 1 unsupervised")


def test_github_annotations_escape_and_report_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "a,b:c%"
    folder.mkdir()
    (folder / "mod.py").write_text("loop.create_task(c())\n")
    (folder / "broken.py").write_text("def f(:\n")
    code, out, _ = run([str(folder), "--format", "github", "--strict"], capsys)
    assert code == 2
    escaped = str(folder).replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
    assert f"::error file={escaped}/mod.py,line=1," in out
    assert f"::error file={escaped}/broken.py::cannot scan: syntax error" in out


# --- settings in pyproject.toml -------------------------------------------------------------------


def test_pyproject_exclude(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(CONFIGURED), "--format", "json"], capsys)
    assert code == 1
    assert [Path(r["path"]).name for r in json.loads(out)] == ["app.py"]
    report = scan_paths([CONFIGURED])
    assert report.files_scanned == 1


def test_pyproject_exclude_applies_to_named_files() -> None:
    report = scan_paths([CONFIGURED / "generated" / "client.py", CONFIGURED / "legacy_jobs.py"])
    assert (report.findings, report.files_scanned) == ((), 0)


def test_isolated_ignores_pyproject(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(CONFIGURED), "--format", "json", "--isolated"], capsys)
    assert code == 1
    names = sorted(Path(r["path"]).name for r in json.loads(out))
    assert names == ["app.py", "client.py", "legacy_jobs.py"]


def test_nearest_pyproject_with_settings_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.taskward.audit]\nexclude = ["skipped"]\n')
    inner = tmp_path / "inner"
    (inner / "skipped").mkdir(parents=True)
    (inner / "pyproject.toml").write_text("[project]\nname = 'inner'\n")  # no audit settings
    (inner / "skipped" / "mod.py").write_text("loop.create_task(c())\n")
    (inner / "kept.py").write_text("loop.create_task(c())\n")
    report = scan_paths([inner])
    assert [Path(f.path).name for f in report.findings] == ["kept.py"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("exclude = 'generated'", "[tool.taskward.audit] exclude must be a list of strings"),
        ("exclude = [1]", "[tool.taskward.audit] exclude must be a list of strings"),
        ("excludes = []", "unknown key 'excludes' in [tool.taskward.audit] (exclude)"),
    ],
)
def test_bad_settings_exit_2(
    table: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.taskward.audit]\n{table}\n")
    (tmp_path / "mod.py").write_text("x = 1\n")
    code, _, err = run([str(tmp_path)], capsys)
    assert code == 2
    assert err == f"{tmp_path / 'pyproject.toml'}: error: {message}\n"


def test_unreadable_pyproject_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.taskward.audit\n")
    (tmp_path / "mod.py").write_text("x = 1\n")
    code, _, err = run([str(tmp_path)], capsys)
    assert code == 2
    assert "pyproject.toml: error: cannot read it:" in err


# --- the cache ------------------------------------------------------------------------------------


def test_cache_reuses_results_of_unchanged_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cold = run([str(CASES), "--cache-dir", str(cache), "--show-fine"], capsys)
    [stored] = cache.glob("findings-*.json")

    def no_analysis(path: str, data: bytes) -> None:
        raise AssertionError(f"{path} was analysed again")

    monkeypatch.setattr(taskward.audit.scan, "analyse_file", no_analysis)
    warm = run([str(CASES), "--cache-dir", str(cache), "--show-fine"], capsys)
    assert warm == cold
    assert list(cache.glob("findings-*.json")) == [stored]


def test_cache_notices_changes_and_keeps_failures(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tree = tmp_path / "tree"
    tree.mkdir()
    module = tree / "mod.py"
    module.write_text("loop.create_task(c())\n")
    (tree / "broken.py").write_text("def f(:\n")
    first = scan_paths([tree], cache_dir=cache)
    assert [f.kind for f in first.findings] == [Kind.DANGLING]
    module.write_text("import asyncio\nasync def f():\n    await asyncio.create_task(c())\n")
    second = scan_paths([tree], cache_dir=cache)
    assert [f.kind for f in second.findings] == [Kind.FINE]
    assert second.errors == first.errors
    copy = tmp_path / "copy.py"  # same bytes elsewhere: a hit, reported at its own path
    copy.write_bytes(module.read_bytes())
    [finding] = scan_paths([copy], cache_dir=cache).findings
    assert finding.path == str(copy)


def test_damaged_or_outdated_cache_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "findings-0000.json").write_text("{}")  # another audit version's
    module = tmp_path / "mod.py"
    module.write_text("loop.create_task(c())\n")
    scan_paths([module], cache_dir=cache)
    [current] = cache.glob("findings-*.json")
    current.write_text("{not json")
    assert len(scan_paths([module], cache_dir=cache).findings) == 1
    assert json.loads(current.read_text())  # rewritten
    assert not (cache / "findings-0000.json").exists()


def test_no_cache_writes_nothing(
    tmp_path: Path, private_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mod.py").write_text("loop.create_task(c())\n")
    run([str(tmp_path / "mod.py"), "--no-cache"], capsys)
    assert not private_cache.exists()
    run([str(tmp_path / "mod.py")], capsys)
    assert list(private_cache.glob("findings-*.json"))


def test_default_cache_dir_is_beside_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_cache_dir(tmp_path) == tmp_path / ".taskward_cache" / "audit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir(None) == tmp_path / "xdg" / "taskward" / "audit"
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (project / "mod.py").write_text("x = 1\n")
    scan_paths([project], cache_dir=default_cache_dir(project))
    assert (project / ".taskward_cache" / ".gitignore").read_text().endswith("*\n")


# --- the process pool -----------------------------------------------------------------------------


def test_many_files_are_analysed_in_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(taskward.audit.scan.PARALLEL_THRESHOLD + 20):
        body = (
            "loop.create_task(c())\n" if i % 2 else "import asyncio\nasyncio.ensure_future(c())\n"
        )
        (tmp_path / f"mod_{i:03}.py").write_text(body)
    (tmp_path / "broken.py").write_text("def f(:\n")
    sequential = scan_paths([tmp_path], jobs=1)
    pools: list[int] = []
    real = taskward.audit.scan.ProcessPoolExecutor

    class CountingPool(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(taskward.audit.scan, "ProcessPoolExecutor", CountingPool)
    parallel = scan_paths([tmp_path], jobs=2)
    assert pools == [2]
    assert parallel == sequential
    assert len(parallel.findings) == taskward.audit.scan.PARALLEL_THRESHOLD + 20
    assert len(parallel.errors) == 1


def test_few_files_are_analysed_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mod.py").write_text("loop.create_task(c())\n")

    def no_pool(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no pool for one file")

    monkeypatch.setattr(taskward.audit.scan, "ProcessPoolExecutor", no_pool)
    assert len(scan_paths([tmp_path], jobs=os.cpu_count()).findings) == 1
