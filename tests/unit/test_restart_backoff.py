"""The supervisor's pure parts: restart delays per child slot, and how an exit is described."""

from __future__ import annotations

import signal

from taskward.runtime.supervised import RECYCLE_EXIT
from taskward.runtime.supervisor import RestartBackoff, describe_exit


def test_delays_double_up_to_the_maximum() -> None:
    backoff = RestartBackoff(initial=0.5, maximum=30.0, reset_after=30.0)
    delays = [backoff.after_exit(uptime=0.1) for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_long_enough_run_starts_the_delays_again() -> None:
    backoff = RestartBackoff(initial=0.5, maximum=30.0, reset_after=30.0)
    for _ in range(4):
        backoff.after_exit(uptime=1.0)
    assert backoff.after_exit(uptime=29.9) == 8.0  # crashed again too soon: still growing
    assert backoff.after_exit(uptime=30.0) == 0.5  # it ran a while: a fresh failure
    assert backoff.after_exit(uptime=0.1) == 1.0


def test_a_recycle_forgets_earlier_exits() -> None:
    backoff = RestartBackoff()
    backoff.after_exit(uptime=0.0)
    backoff.after_exit(uptime=0.0)
    backoff.reset()
    assert backoff.after_exit(uptime=0.0) == backoff.initial


def test_many_failures_never_overflow() -> None:
    backoff = RestartBackoff(maximum=30.0)
    for _ in range(5000):
        delay = backoff.after_exit(uptime=0.0)
    assert delay == 30.0


def test_exits_are_described_by_status_or_signal_name() -> None:
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert describe_exit(-200) == "was killed by signal 200"
    assert describe_exit(RECYCLE_EXIT) == "exited to be recycled"
