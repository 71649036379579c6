"""Where a one-by-one enqueue's time goes on taskward's Redis backend (cProfile and splits).

    bench/.venv/bin/python bench/profile_redis.py --url redis://127.0.0.1:PORT/0 [--n 5000]

Under a fresh ``prefix=``: (1) N calls of ``Task.enqueue_sync`` timed, then again under cProfile
(top functions by own time); (2) the same insert script called directly with the arguments
taskward sends (redis-py's ``Script`` object, then a bare ``EVALSHA``): the client's share
vs the server's; (3) a bare ``LPUSH`` round trip for scale; (4) ``await Task.enqueue``.
Server time from ``INFO commandstats`` (µs per EVALSHA): the insert script, and variants of
it built here (empty body, no PUBLISH, 500 jobs per call); the bulk path's client splits. Leaves
its keys under the prefix (a throwaway server is assumed).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time
from typing import Any


def per_call_us(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1e6


def show(label: str, us: float) -> None:
    print(f"{label + ':':30s}{us:7.1f} µs/call")


def main() -> None:  # noqa: C901 - one straight sequence of measurements
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=5000)
    a = ap.parse_args()
    import redis

    from taskward import TaskManager
    from taskward.backends.redis import backend as rb
    from taskward.backends.redis.client import SOURCES

    base_url = a.url.split("?", 1)[0]
    url = f"{base_url}?prefix=prof-{os.getpid()}"
    tw = TaskManager(url)

    @tw.task(name="noop")
    async def noop(i: int, ts: float = 0.0) -> None:
        return None

    r = redis.Redis.from_url(base_url)
    r.config_resetstat()
    n = a.n
    noop.enqueue_sync(-1, 0.0)  # opens the sync client
    show("Task.enqueue_sync", per_call_us(lambda i: noop.enqueue_sync(i, 0.0), n))
    stats = r.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    print(f"  server side (commandstats):  {evalsha.get('usec_per_call', 0):7.1f} µs per EVALSHA")

    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        noop.enqueue_sync(i, 0.0)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(22)
    print(out.getvalue())
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
    print(out.getvalue())

    # The same insert, bypassing the manager: args built once, the script called n times.
    backend = tw.backend
    new = tw.build_job(noop, (1, 0.0), {})
    now = tw.clock.now()
    args = rb._insert_args([new], now)
    conns = backend._connections
    script = conns._sync_scripts["insert"]
    keys, full = conns.anchor, [conns.base, *args]
    show("redis-py Script(insert)", per_call_us(lambda i: script(keys=keys, args=full), n))
    sha = script.sha
    raw = redis.Redis.from_url(base_url)
    show("bare EVALSHA(insert)", per_call_us(lambda i: raw.evalsha(sha, 1, *keys, *full), n))
    show(
        "build_job + _insert_args",
        per_call_us(lambda i: rb._insert_args([tw.build_job(noop, (i, 0.0), {})], now), n),
    )
    replies = [str(i)]
    show("_inserted (reply -> Job)", per_call_us(lambda i: rb._inserted([new], replies, now), n))
    show("bare LPUSH", per_call_us(lambda i: raw.lpush("prof:list", b"x" * 30), n))
    r.config_resetstat()
    raw.evalsha(sha, 1, *keys, *full)
    for _ in range(n):
        raw.evalsha(sha, 1, *keys, *full)
    per_call = r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
    print(f"  server µs per insert EVALSHA (1 job): {per_call:.1f}")
    print(f"  insert script source: {len(SOURCES['insert'])} bytes")

    # Server side, per script call and per job (INFO commandstats, µs): what the insert
    # script's parts cost. Variants are built here from the shipped source (src untouched).
    def server_us(script_src: str, argv: list[Any], calls: int) -> float:
        sha_v = raw.script_load(script_src)
        raw.evalsha(sha_v, 1, *keys, *argv)
        r.config_resetstat()
        for _ in range(calls):
            raw.evalsha(sha_v, 1, *keys, *argv)
        return float(r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])

    common = SOURCES["insert"].split("-- Insert jobs:")[0]
    body = SOURCES["insert"][len(common) :]
    print("server µs per call (1 job):")
    print(f"  `return 1`, same args:           {server_us('return 1', full, n):6.1f}")
    print(f"  common.lua + `return 1`:         {server_us(common + 'return 1', full, n):6.1f}")
    no_pub = common + body.replace("redis.call('PUBLISH', WAKE, queue)", "local _ = queue")
    print(f"  insert.lua without PUBLISH:      {server_us(no_pub, full, n):6.1f}")
    print(f"  insert.lua:                      {server_us(SOURCES['insert'], full, n):6.1f}")
    jobs500 = [tw.build_job(noop, (i, 0.0), {}) for i in range(500)]
    full500 = [conns.base, *rb._insert_args(jobs500, now)]
    per500 = server_us(SOURCES["insert"], full500, 20) / 500
    print(f"  insert.lua, 500 jobs per call:   {per500:6.1f} per job")
    pipe_lpush = raw.pipeline(transaction=False)
    for _ in range(500):
        pipe_lpush.lpush("prof:list", b"x" * 30)
    r.config_resetstat()
    pipe_lpush.execute()
    lp = r.info("commandstats")["cmdstat_lpush"]["usec_per_call"]
    print(f"  LPUSH (pipelined):               {lp:6.1f} per job")
    t0 = time.perf_counter()
    for _ in range(20):
        batch = [tw.build_job(noop, (i, 0.0), {}) for i in range(500)]
        argv500 = [conns.base, *rb._insert_args(batch, now)]
    t_build = (time.perf_counter() - t0) / 10000 * 1e6
    t0 = time.perf_counter()
    for _ in range(20):
        replies500 = raw.evalsha(sha, 1, *keys, *argv500)
    t_call = (time.perf_counter() - t0) / 10000 * 1e6
    t0 = time.perf_counter()
    for _ in range(20):
        rb._inserted(batch, [x.decode() if isinstance(x, bytes) else x for x in replies500], now)
    t_back = (time.perf_counter() - t0) / 10000 * 1e6
    print(
        f"bulk, client µs per job: build NewJob+args {t_build:.1f}, EVALSHA round trip "
        f"{t_call:.1f}, replies -> Jobs {t_back:.1f}"
    )
    t0 = time.perf_counter()
    tw.sync.enqueue_many(noop, [[i, 0.0] for i in range(10000)])
    print(f"manager.sync.enqueue_many(10,000): {10000 / (time.perf_counter() - t0):,.0f} jobs/s")
    prof = cProfile.Profile()
    prof.enable()
    tw.sync.enqueue_many(noop, [[i, 0.0] for i in range(10000)])
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    print(out.getvalue())

    async def aenq() -> float:
        await noop.enqueue(-1, 0.0)
        t0 = time.perf_counter()
        for i in range(n):
            await noop.enqueue(i, 0.0)
        secs = (time.perf_counter() - t0) / n * 1e6
        await tw.close()
        return secs

    tw.sync.shutdown()
    show("await Task.enqueue", asyncio.run(aenq()))


if __name__ == "__main__":
    main()
