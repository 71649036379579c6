"""Throwaway Redis and PostgreSQL servers on loopback for `make bench`.

    python bench/servers.py start   # prints the URLs as shell exports, writes data/servers.json
    python bench/servers.py stop    # stops exactly the PIDs it started (pidfiles), never by name

Redis: persistence off (`save ""`, `appendonly no`), as in the reference peer runs.
PostgreSQL 15: a fresh cluster in data/pg (initdb, trust auth on loopback), default durability
(fsync on, synchronous_commit on), max_connections=200. The server refuses to run as root, so
as root it runs as the OS user `postgres` through `runuser`. Ports: free loopback ports picked
at start (override with BENCH_REDIS_PORT / BENCH_PG_PORT).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# run.py sets BENCH_DATA_DIR to a directory of its own: concurrent runs never touch each
# other's servers or files.
DATA = Path(os.environ.get("BENCH_DATA_DIR") or BENCH / "data")
STATE = DATA / "servers.json"
PG_BIN = Path(os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = os.environ.get("BENCH_PG_OS_USER", "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_pg(argv: list[str]) -> list[str]:
    return ["runuser", "-u", PG_OS_USER, "--", *argv] if os.geteuid() == 0 else argv


def start_redis(port: int) -> int:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    d = DATA / "redis"
    d.mkdir(parents=True, exist_ok=True)
    pidfile = d / "redis.pid"
    subprocess.run(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
         "--dir", str(d), "--save", "", "--appendonly", "no", "--daemonize", "yes",
         "--pidfile", str(pidfile), "--logfile", str(d / "redis.log")],
        check=True,
    )  # fmt: skip
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG") and pidfile.exists():
                    return int(pidfile.read_text().strip())
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("redis did not start; see bench/data/redis/redis.log")


def start_postgres(port: int) -> int:
    pgdata = DATA / "pg"
    if pgdata.exists():
        shutil.rmtree(pgdata)
    pgdata.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(pgdata, PG_OS_USER)
        os.chmod(DATA, 0o755)
    subprocess.run(
        as_pg([str(PG_BIN / "initdb"), "-D", str(pgdata), "-U", "bench", "--auth=trust",
               "-E", "UTF8", "--no-sync"]),
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
        "-c max_connections=200"
    )
    subprocess.run(
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "server.log"),
               "-w", "-o", opts, "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    import psycopg

    with psycopg.connect(f"postgresql://bench@127.0.0.1:{port}/postgres", autocommit=True) as c:
        c.execute("CREATE DATABASE bench")
    return pid


def start() -> dict[str, object]:
    DATA.mkdir(parents=True, exist_ok=True)
    if STATE.exists():
        raise SystemExit(f"{STATE} exists: servers of this data dir may be running (stop first)")
    rport = int(os.environ.get("BENCH_REDIS_PORT") or free_port())
    pport = int(os.environ.get("BENCH_PG_PORT") or free_port())
    state: dict[str, object] = {
        "redis_pid": start_redis(rport),
        "redis_url": f"redis://127.0.0.1:{rport}/0",
    }
    STATE.write_text(json.dumps(state))  # so that `stop` finds Redis if Postgres fails
    state["pg_pid"] = start_postgres(pport)
    state["pg_dsn"] = f"postgresql://bench@127.0.0.1:{pport}/bench"
    STATE.write_text(json.dumps(state))
    return state


def _kill_wait(pid: int, sig: int, seconds: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    end = time.time() + seconds
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def stop() -> None:
    if not STATE.exists():
        return
    state = json.loads(STATE.read_text())
    if "redis_pid" in state:
        _kill_wait(int(state["redis_pid"]), signal.SIGTERM, 10)
    if "pg_pid" in state:
        _kill_wait(int(state["pg_pid"]), signal.SIGINT, 30)  # SIGINT = "fast" shutdown
    STATE.unlink()


def versions() -> dict[str, str]:
    out = {}
    r = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    out["redis"] = r.stdout.split()[2].removeprefix("v=") if r.returncode == 0 else "?"
    r = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True)
    out["postgres"] = r.stdout.strip().split()[-1] if r.returncode == 0 else "?"
    return out


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "start":
        s = start()
        print(f"export BENCH_REDIS_URL={s['redis_url']} BENCH_PG_DSN={s['pg_dsn']}")
    elif cmd == "stop":
        stop()
    else:
        raise SystemExit("usage: servers.py start|stop")
