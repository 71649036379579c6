"""Real servers for the test suite: a throwaway PostgreSQL cluster on loopback.

The cluster lives in a temp dir, listens on a free port of 127.0.0.1 only, trusts local
connections and is stopped (and deleted) at the end. PostgreSQL refuses to run as root, so when
the tests run as root the server runs as the ``postgres`` user through ``runuser`` (the Debian
package creates that user). Durability is switched off (``fsync=off``): these clusters hold
test data only, and a crash-safety test restarts the server cleanly.

``TASKWARD_REQUIRE_PG=1`` (set by ``make test`` and CI) turns a missing server into a failure
instead of a skip, so CI can never pass by silently skipping the PostgreSQL suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PostgresServer",
    "find_pg_bin",
    "find_pgbouncer",
    "free_port",
    "private_pgbouncer",
    "private_postgres",
    "require_pg",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_pg() -> bool:
    """True when a missing PostgreSQL must fail the run rather than skip it."""
    return os.environ.get("TASKWARD_REQUIRE_PG", "") not in ("", "0")


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH), or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return candidates[0].parent if candidates else None


@dataclass
class PostgresServer:
    """One PostgreSQL cluster: ``start()``, connect to ``url(db)``, ``stop()``."""

    bin_dir: Path
    durable: bool = False
    """Keep fsync and synchronous commits on (benchmarks); off by default (tests)."""
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taskward-pg-")))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """A connection URL for ``database`` as the superuser ``postgres`` (trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}"
            )

    def init(self) -> None:
        """Create the cluster (``initdb``), owned by the ``postgres`` user when we are root."""
        if os.geteuid() == 0:
            # pytest's and mkdtemp's folders are 0700: the server user must reach its dir.
            shutil.chown(self.root, user="postgres")
            path = self.root
            while path != path.parent:
                path.chmod(path.stat().st_mode | 0o001)
                path = path.parent
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--locale=C",
        )  # fmt: skip

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) the server and wait until it accepts."""
        if not self.data_dir.exists():
            self.init()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=300 -c shared_buffers=64MB"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port and data."""
        self.stop()
        self.start()

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts TCP connections."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def destroy(self) -> None:
        """Stop the server if it runs and delete its files."""
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """A started cluster of the caller's own (tests that stop or restart it), destroyed after.

    Raises ``RuntimeError`` when the server binaries are missing: callers run inside a suite
    whose ``pg_server`` fixture already turned that into a skip or a failure.
    """
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries (pg_ctl) not found")
    server = PostgresServer(bin_dir, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def find_pgbouncer() -> Path | None:
    """The ``pgbouncer`` binary (Debian installs it in /usr/sbin), or None."""
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    return Path(found) if found else None


@contextlib.contextmanager
def private_pgbouncer(server: PostgresServer, *, pool_mode: str = "transaction") -> Iterator[int]:
    """A PgBouncer in front of ``server`` on a free loopback port (trust auth); yields the port.

    Like PostgreSQL it refuses to run as root: it runs as ``postgres`` through ``runuser``.
    """
    binary = find_pgbouncer()
    if binary is None:
        raise RuntimeError("pgbouncer not found")
    root = Path(tempfile.mkdtemp(prefix="taskward-pgbouncer-"))
    port = free_port()
    (root / "userlist.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(
        f"[databases]\n* = host=127.0.0.1 port={server.port}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root}/userlist.txt\npool_mode = {pool_mode}\n"
        "max_client_conn = 500\ndefault_pool_size = 20\n"
        f"logfile = {root}/pgbouncer.log\n"
    )
    cmd = [str(binary), str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
        for item in root.iterdir():
            shutil.chown(item, user="postgres")
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "pgbouncer.log").read_text(errors="replace")
                    raise RuntimeError(f"pgbouncer did not start:\n{log}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)
