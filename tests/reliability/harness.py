"""Shared machinery of the reliability suite: worker process groups, the run log, the store.

The run log is the witness that does not trust the store: every job body appends
``start i gen pid`` and ``done i gen pid`` (see ``tests_support.reliability_app``), so lost,
duplicate and overlapping runs are counted from outside the job store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskward import Job, JobState, TaskManager

TESTS = Path(__file__).resolve().parents[1]
LONG = os.environ.get("TASKWARD_LONG", "") not in ("", "0")
TASK = "tests_support.reliability_app:record"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def sized(ci: int, long: int) -> int:
    """The CI size, or the issue's full size when TASKWARD_LONG=1."""
    return long if LONG else ci


def wait_until(condition: Callable[[], Any], timeout: float = 60, what: str = "") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds (a bound, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what or condition}")


def report(name: str, **figures: Any) -> None:
    """Print the figures of a run and append them to $TASKWARD_REL_REPORT (JSON lines) if set."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(line)
    path = os.environ.get("TASKWARD_REL_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


# -- the run log ---------------------------------------------------------------------------------
@dataclass
class RunLog:
    """The parsed run log: who started and finished which job, in which generation."""

    lines: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> RunLog:
        text = path.read_text() if path.exists() else ""
        return cls([line.split() for line in text.splitlines()])

    def of(self, kind: str) -> list[list[str]]:
        return [parts for parts in self.lines if parts[0] == kind]

    @property
    def starts(self) -> Counter[int]:
        return Counter(int(p[1]) for p in self.of("start"))

    @property
    def dones(self) -> Counter[int]:
        return Counter(int(p[1]) for p in self.of("done"))

    def unfinished(self) -> set[int]:
        """Jobs with more starts than dones (a run that never finished)."""
        dones = self.dones
        return {job for job, n in self.starts.items() if n > dones[job]}

    def overlaps(self) -> list[int]:
        """Jobs started again while a run of theirs was live in the same generation.

        Every worker of a generation is killed before the next generation starts, so a run left
        open by an earlier generation is dead; two open runs in one generation ran at once.
        """
        open_runs: dict[tuple[int, str], list[str]] = defaultdict(list)
        found = []
        for parts in self.lines:
            if parts[0] not in ("start", "done"):
                continue
            job, gen, pid = int(parts[1]), parts[2], parts[3]
            runs = open_runs[(job, gen)]
            if parts[0] == "start":
                if runs:
                    found.append(job)
                runs.append(pid)
            elif pid in runs:
                runs.remove(pid)
        return found


@dataclass
class LogTail:
    """A run log read as it grows: only the bytes appended since the last :meth:`read`.

    A long run writes hundreds of thousands of lines; re-reading the whole file at every look
    would cost more than the run. ``done_times`` and ``last_done_times`` hold the monotonic
    time of each job's first and last ``done`` line (the fifth field that
    :func:`tests_support.reliability_app.record` writes).
    """

    path: Path
    offset: int = 0
    starts: Counter[int] = field(default_factory=Counter)
    dones: Counter[int] = field(default_factory=Counter)
    done_times: dict[int, float] = field(default_factory=dict)
    last_done_times: dict[int, float] = field(default_factory=dict)
    _open: set[tuple[int, str]] = field(default_factory=set)

    def read(self) -> LogTail:
        """Take in every whole line appended since the last read (a partial line waits)."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
            whole = data.rfind(b"\n") + 1
            self.offset += whole
            for line in data[:whole].decode().splitlines():
                self._take(line.split())
        return self

    def _take(self, parts: list[str]) -> None:
        if parts[0] == "start":
            self.starts[int(parts[1])] += 1
            self._open.add((int(parts[1]), parts[2]))
        elif parts[0] == "done":
            job = int(parts[1])
            self.dones[job] += 1
            self._open.discard((job, parts[2]))
            if len(parts) > 4:
                self.done_times.setdefault(job, float(parts[4]))
                self.last_done_times[job] = float(parts[4])

    def open_runs(self, generation: int) -> set[int]:
        """Jobs started and not (yet) done in ``generation``: running, or killed mid-body."""
        return {job for job, gen in self._open if gen == str(generation)}


# -- worker processes ----------------------------------------------------------------------------
@dataclass
class Workers:
    """Worker processes of one store; each generation is one process group."""

    url: str
    tmp: Path
    base_env: dict[str, str] = field(default_factory=dict)
    generation: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    group: int | None = None
    _first_of_group: int = 0

    @property
    def log_path(self) -> Path:
        return self.tmp / "run.log"

    def log(self) -> RunLog:
        return RunLog.read(self.log_path)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TASKWARD_TEST_URL": self.url,
            "TASKWARD_TEST_LOG": str(self.log_path),
            "REL_GEN": str(self.generation),
            "NO_COLOR": "1",
            **self.base_env,
            **extra,
        }

    def start(self, n: int = 1, **extra: str) -> list[subprocess.Popen[bytes]]:
        """Start ``n`` workers in this generation's process group."""
        started = []
        for _ in range(n):
            out = (self.tmp / f"worker-{len(self.procs)}.out").open("wb")
            with out:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests_support.reliability_app"],
                    env=self.env(**extra),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    process_group=0 if self.group is None else self.group,
                )
            if self.group is None:
                self.group = proc.pid
            self.procs.append(proc)
            started.append(proc)
        return started

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"worker-{self.procs.index(proc)}.out").read_text()

    def kill_group(self) -> None:
        """SIGKILL the whole current generation at once; the next start opens a new one."""
        if self.group is not None:
            with contextlib.suppress(ProcessLookupError):  # the group may have died already
                os.killpg(self.group, signal.SIGKILL)
        for proc in self.procs:
            proc.poll()  # reap: a worker of an older group is still running only if not killed
        for proc in self.procs[self._first_of_group :]:
            proc.wait(10)
        self._first_of_group = len(self.procs)
        self.group = None
        self.generation += 1

    def stop_all(self, timeout: float = 30) -> list[int | None]:
        """SIGTERM every live worker and wait: their exit codes (0 = graceful).

        First waits until each has recorded itself in the store: its SIGTERM handler is
        installed by then (a worker still importing would die of the signal instead).
        """
        live = [p for p in self.procs if p.poll() is None]
        wanted = {p.pid for p in live}
        wait_until(lambda: wanted <= run(worker_pids(self.url)), 60, "workers registered")
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout) for proc in live]

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


# -- the store, seen from the test process -------------------------------------------------------
def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def worker_pids(url: str) -> set[int]:
    """Pids of every worker recorded in the store (dead ones too, until they expire)."""
    async with TaskManager(url) as tw:
        return {w.pid for w in await tw.backend.list_workers(alive_since=EPOCH)}


async def enqueue(url: str, n: int, *, max_attempts: int = 25, **options: Any) -> list[int]:
    async with TaskManager(url) as tw:
        jobs = await tw.enqueue_many(
            TASK, [[i] for i in range(n)], max_attempts=max_attempts, **options
        )
        return [j.id for j in jobs]


async def counts(url: str) -> dict[JobState, int]:
    """The exact count of each state of the default queue's jobs."""
    async with TaskManager(url) as tw:
        stats = await tw.backend.stats()
        if not any(queue == "default" for queue, _ in stats.estimated):
            return dict(stats.counts.get("default", {}))
    # PostgreSQL estimates a finished state past 10,000 jobs (Stats.estimated): an estimate
    # may never equal the number a test waits for, so those are counted one by one.
    return dict(Counter(job.state for job in await all_jobs(url) if job.queue == "default"))


def count_of(url: str, state: JobState) -> int:
    return int(run(counts(url)).get(state, 0))


async def all_jobs(url: str) -> list[Job]:
    async with TaskManager(url) as tw:
        out: list[Job] = []
        for page in _pages():
            items = (await tw.list_tasks(page=page, per_page=1000, sort_by="id")).items
            out.extend(items)
            if len(items) < 1000:
                return out
    return out


def _pages() -> Iterator[int]:
    page = 1
    while True:
        yield page
        page += 1


async def running_numbers(url: str) -> set[int]:
    """The ``i`` of every job the store holds as running (cheap: the running jobs only)."""
    async with TaskManager(url) as tw:
        out: set[int] = set()
        for page in _pages():
            items = (await tw.list_tasks(state="running", page=page, per_page=1000)).items
            out |= {job_number(j) for j in items}
            if len(items) < 1000:
                return out
    return out


def rss_kib(pid: int) -> int | None:
    """The resident set size of a live process in KiB (``VmRSS``); None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None  # a zombie has no VmRSS line


def job_number(job: Job) -> int:
    """The ``i`` a job was enqueued with (what its body writes to the run log)."""
    return int(job.args[0])


# -- producers with a ledger ---------------------------------------------------------------------
def start_producer(url: str, ledger: Path, out: Path, **options: float) -> subprocess.Popen[bytes]:
    """A ``tests_support.ledger_producer`` process on ``url``; returns once its manager is open.

    ``options`` are its command-line options (``first``, ``batch``, ``count``, ``pause``).
    """
    from tests_support.ledger_producer import Ledger

    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [f"--{name}={value}" for name, value in options.items()]
    with out.open("ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests_support.ledger_producer", url, str(ledger), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: Ledger.read(ledger).opened or proc.poll() is not None, 60, "producer open")
    assert proc.poll() is None, out.read_text()
    return proc
