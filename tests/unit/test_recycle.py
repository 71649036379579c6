"""Recycling limits: the SIZE format, the job budget across concurrent claims, the RSS check."""

from __future__ import annotations

import pytest

from taskward.runtime.recycle import RecycleLimits, Recycler, current_rss, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1024**2),
        ("200MB", 200 * 1000**2),
        ("200 mb", 200 * 1000**2),
        ("1GiB", 1024**3),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("512M", 512 * 1024**2),
        ("64k", 64 * 1024),
        ("64KiB", 64 * 1024),
        ("64KB", 64_000),
        ("2T", 2 * 1024**4),
        ("10b", 10),
        (".5K", 512),
    ],
)
def test_sizes_are_read_with_their_unit(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "12XB", "-5MB", "1e9", "0", "0.1", "5 M B", "nan"])
def test_anything_else_is_refused_with_the_format(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_limits_must_be_positive() -> None:
    assert not RecycleLimits().active
    assert RecycleLimits(max_jobs=1).active
    with pytest.raises(ValueError, match="max_jobs"):
        RecycleLimits(max_jobs=0)
    with pytest.raises(ValueError, match="max_rss"):
        RecycleLimits(max_rss=0)


def test_the_job_budget_caps_concurrent_claims() -> None:
    recycler = Recycler(RecycleLimits(max_jobs=10))
    first = recycler.reserve(8)  # two queue loops claiming at the same moment
    second = recycler.reserve(8)
    assert (first, second) == (8, 2)
    assert recycler.exhausted
    for _ in range(5):  # the first claim brought 5 jobs, the second none
        recycler.job_started()
    recycler.release(first)
    recycler.release(second)
    assert not recycler.exhausted
    assert recycler.reserve(8) == 5  # what is left of the budget
    assert recycler.reserve(1) == 0


def test_the_recycle_is_due_when_the_last_budgeted_job_ends() -> None:
    recycler = Recycler(RecycleLimits(max_jobs=3))
    assert recycler.job_ended() is None
    assert recycler.job_ended() is None
    assert recycler.job_ended() == "it ran 3 jobs (limit 3)"


def test_no_budget_means_every_claim_is_granted() -> None:
    recycler = Recycler(RecycleLimits(max_rss=10**12), rss=lambda: 10)
    assert recycler.reserve(500) == 500
    assert not recycler.exhausted
    assert recycler.job_ended() is None


def test_the_memory_limit_reads_the_resident_set() -> None:
    rss = [100 * 1024**2]
    recycler = Recycler(RecycleLimits(max_rss=200 * 1024**2), rss=lambda: rss[0])
    assert recycler.memory_reached() is None
    rss[0] = 250 * 1024**2
    assert recycler.job_ended() == "its resident set is 250.0 MiB (limit 200.0 MiB)"
    assert Recycler(RecycleLimits(max_rss=1), rss=lambda: None).memory_reached() is None


def test_memory_never_recycles_a_process_before_a_job_ended() -> None:
    # A limit below what the process needs to start would otherwise replace every new
    # process at once, in a storm that runs nothing.
    recycler = Recycler(RecycleLimits(max_rss=10), rss=lambda: 10**9)
    assert recycler.memory_reached() is None
    assert recycler.job_ended() == "its resident set is 953.7 MiB (limit 0.0 MiB)"
    assert recycler.memory_reached() is not None


def test_the_resident_set_of_this_process_is_read() -> None:
    rss = current_rss()
    assert rss is not None
    assert 1024**2 < rss < 64 * 1024**3
