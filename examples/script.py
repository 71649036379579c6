"""A plain script (no web app, no event loop of its own) that uses durable jobs.

It enqueues a few jobs, runs them itself with ``drain`` (no separate worker needed), prints
their results and closes the manager. A real script might enqueue here and leave the running
to ``taskward worker`` processes; ``drain`` is for scripts that want the answers now::

    python examples/script.py                          # on ./script.db (SQLite)
    TASKWARD_URL=memory:// python examples/script.py   # nothing kept on disk

Importing this module starts nothing; ``main()`` does the work.
"""

from __future__ import annotations

import os

from taskward import InvalidJob, TaskManager

tw = TaskManager(os.environ.get("TASKWARD_URL", "sqlite:///script.db"))

LINES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "durable jobs survive a crash",
]


@tw.task(name="script.count_words", max_attempts=3)
def count_words(text: str) -> int:
    """Count the words of ``text`` (a stand-in for real work: a report, an export…)."""
    return len(text.split())


def main() -> None:
    """Enqueue one job per line, run them, print what each returned, close the manager."""
    try:
        # Every blocking call goes through tw.sync (or a Task's *_sync methods).
        jobs = [count_words.enqueue_sync(line) for line in LINES]
        print(f"enqueued {len(jobs)} jobs: {', '.join(str(job.id) for job in jobs)}")
        try:
            count_words.enqueue_sync()  # the function needs its text: refused, nothing stored
        except InvalidJob as refused:
            print(f"refused: {refused}")
        ran = tw.sync.drain()  # runs every due job in this process, then returns
        print(f"ran {ran.total} jobs: {ran.counts}")
        for job in jobs:
            done = tw.sync.get_task_status(job.id)
            print(f"job {done.id}: {done.state.value}, {done.result} words in {done.args[0]!r}")
    finally:
        tw.sync.shutdown()  # closes the manager and stops its background loop thread


if __name__ == "__main__":
    main()
