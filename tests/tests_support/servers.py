"""Real servers for the test suite: throwaway PostgreSQL and Redis servers on loopback.

A PostgreSQL cluster lives in a temp dir, listens on a free port of 127.0.0.1 only, trusts local
connections and is stopped (and deleted) at the end. PostgreSQL refuses to run as root, so when
the tests run as root the server runs as the ``postgres`` user through ``runuser`` (the Debian
package creates that user). Durability is switched off (``fsync=off``): these clusters hold
test data only, and a crash-safety test restarts the server cleanly.

Redis runs as any user (root included): ``redis-server`` processes on free ports with their
whole configuration on the command line, persistence off unless a test asks for AOF or RDB,
and Redis Clusters of such nodes built by ``redis-cli --cluster create``.

``TASKWARD_REQUIRE_PG=1`` and ``TASKWARD_REQUIRE_REDIS=1`` (set by ``make test`` and CI) turn
a missing server into a failure instead of a skip, so CI can never pass by silently skipping
the PostgreSQL or Redis suite.
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
from typing import BinaryIO
from urllib.parse import urlencode

__all__ = [
    "PostgresServer",
    "RedisCluster",
    "RedisReplyError",
    "RedisServer",
    "Reply",
    "find_pg_bin",
    "find_pgbouncer",
    "find_redis_server",
    "free_port",
    "private_pgbouncer",
    "private_postgres",
    "private_redis",
    "private_redis_cluster",
    "redis_command",
    "require_pg",
    "require_redis",
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


# -- Redis --------------------------------------------------------------------------------------
Reply = str | int | None | list["Reply"]
"""A decoded RESP2 reply: simple and bulk strings as ``str``, integers, nil, arrays."""


class RedisReplyError(RuntimeError):
    """The server answered a command with an error reply (``-ERR ...``, ``-LOADING ...``)."""


def require_redis() -> bool:
    """True when a missing Redis must fail the run rather than skip it."""
    return os.environ.get("TASKWARD_REQUIRE_REDIS", "") not in ("", "0")


def find_redis_server() -> Path | None:
    """The ``redis-server`` binary (Debian's ``redis-server`` package), or None."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    return Path(found) if found else None


def _find_redis_cli() -> Path | None:
    # Debian's redis-tools (a dependency of redis-server) puts it beside the server.
    found = shutil.which("redis-cli")
    if found:
        return Path(found)
    server = find_redis_server()
    beside = server.parent / "redis-cli" if server else None
    return beside if beside and beside.exists() else None


def _read_reply(stream: BinaryIO) -> Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the Redis server")
    kind, body = line[:1], line[1:-2].decode("utf-8", "replace")
    if kind == b"+":
        return body
    if kind == b"-":
        raise RedisReplyError(body)
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else stream.read(size + 2)[:-2].decode("utf-8", "replace")
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply from the Redis server: {line!r}")


def redis_command(port: int, *args: str | int, timeout: float = 5) -> Reply:
    """Send one command to the Redis server on ``127.0.0.1:port`` and return its reply.

    A dependency-free RESP2 client for admin commands (PING, SHUTDOWN, CLUSTER ...), so the
    helpers work before and without redis-py; tests talk to their data through redis-py.
    Raises ``RedisReplyError`` on an error reply and ``OSError`` when nobody answers.
    """
    parts = [str(arg).encode() for arg in args]
    request = b"".join(
        [f"*{len(parts)}\r\n".encode(), *(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)]
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


@dataclass
class RedisServer:
    """One redis-server on loopback: ``start()``, connect to ``url()``, ``stop()``.

    Persistence is off by default (``save ""``, ``appendonly no``): a plain test store. Crash
    and durability tests turn it on, e.g. ``RedisServer(appendonly=True, appendfsync="always")``,
    write, :meth:`kill`, :meth:`restart` (same port and dir, so the AOF or RDB is reloaded) and
    read back. ``extra`` adds any other directive (``{"maxmemory": "10mb"}``); it wins over the
    named fields. The whole configuration is on the command line: no config file to keep.
    """

    appendonly: bool = False
    appendfsync: str = "everysec"
    """``always``, ``everysec`` or ``no``; matters only with ``appendonly``."""
    save: str = ""
    """RDB snapshot points (``"60 1000"``); empty: no snapshots."""
    extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taskward-redis-")))
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    started_once: bool = field(default=False, init=False, repr=False)

    @property
    def log_file(self) -> Path:
        """The server's log (``--logfile``)."""
        return self.root / "redis.log"

    @property
    def output_file(self) -> Path:
        """Its stdout and stderr: errors from before the log opens (a bad directive)."""
        return self.root / "redis.out"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def url(self, db: int = 0, **params: str | int | bool) -> str:
        """``redis://127.0.0.1:PORT/DB``, plus ``?k=v&...`` for ``params`` (bools as true/false)."""
        url = f"redis://127.0.0.1:{self.port}/{db}"
        if params:
            query = {
                k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()
            }
            url += "?" + urlencode(query)
        return url

    def command(self, *args: str | int, timeout: float = 5) -> Reply:
        """Send one (admin) command to this server; see :func:`redis_command`."""
        return redis_command(self.port, *args, timeout=timeout)

    def argv(self) -> list[str]:
        """The full command line of the server."""
        binary = find_redis_server()
        if binary is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        config = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.root),
            "daemonize": "no",
            "protected-mode": "no",
            "logfile": str(self.log_file),
            "save": self.save,
            "appendonly": "yes" if self.appendonly else "no",
            "appendfsync": self.appendfsync,
            **self.extra,
        }
        # redis-server quotes each value into a config line itself, so "" stays an empty value.
        return [str(binary), *(part for k, v in config.items() for part in (f"--{k}", v))]

    def _log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.output_file, self.log_file):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def _launch(self, timeout: float) -> None:
        with self.output_file.open("ab") as out:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                # -LOADING (an AOF or RDB being read back) is an error reply: keep waiting.
                if self.command("PING", timeout=1) == "PONG":
                    return
            except (OSError, RedisReplyError):
                pass
            code = self.process.poll()
            if code is not None or time.monotonic() > deadline:
                self.kill()
                why = f"exited with code {code}" if code is not None else f"no PONG in {timeout} s"
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start ({why}):\n{self._log_tail()}"
                )
            time.sleep(0.01)

    def start(self, timeout: float = 10) -> None:
        """Start (or start again after :meth:`stop` or :meth:`kill`); wait until PING answers."""
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        for attempt in range(3):
            try:
                self._launch(timeout)
                break
            except RuntimeError:
                # free_port() races with other processes; before the first start nothing
                # depends on the port yet, so take another one. A restart keeps its port.
                lost_port = "Address already in use" in self._log_tail()
                if self.started_once or not lost_port or attempt == 2:
                    raise
                self.port = free_port()
        self.started_once = True

    def stop(self, *, save: bool | None = None, timeout: float = 10) -> None:
        """Shut down cleanly and wait; a no-op when not running.

        ``save=None`` does what Redis does on its own (an RDB snapshot only when ``save``
        points are set; the AOF is always flushed), ``False`` is ``SHUTDOWN NOSAVE``,
        ``True`` forces a snapshot. ``NOW`` skips waiting for lagging replicas.
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            mode = [] if save is None else ["SAVE" if save else "NOSAVE"]
            with contextlib.suppress(OSError, RedisReplyError):
                self.command("SHUTDOWN", *mode, "NOW", timeout=timeout)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server and wait for it (a crash: nothing flushed beyond the fsync policy)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self._reap()

    def _reap(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and dir: persisted data reloads."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server if it runs (no snapshot) and delete its files."""
        self.stop(save=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_redis(
    *,
    appendonly: bool = False,
    appendfsync: str = "everysec",
    save: str = "",
    extra: dict[str, str] | None = None,
) -> Iterator[RedisServer]:
    """A started redis-server of the caller's own (see :class:`RedisServer`), destroyed after.

    Raises ``RuntimeError`` when redis-server is missing: callers run inside a suite whose
    ``redis_server`` fixture already turned that into a skip or a failure.
    """
    if find_redis_server() is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    server = RedisServer(
        appendonly=appendonly, appendfsync=appendfsync, save=save, extra=dict(extra or {})
    )
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@dataclass
class RedisCluster:
    """A Redis Cluster of private nodes on loopback (see :func:`private_redis_cluster`).

    ``nodes`` are in creation order: ``redis-cli --cluster create`` makes the first
    ``masters`` of them masters, and the rest their replicas. Roles change on a failover:
    :meth:`master_of` asks the cluster who serves a slot now.
    """

    nodes: list[RedisServer]
    replicas: int = 0

    def url(self, **params: str | int | bool) -> str:
        """``redis://127.0.0.1:PORT/0?cluster=true`` plus ``params``; PORT is the first node's.

        (The first running node's, once a test has killed the first.) The client discovers
        the other nodes from it; ``cluster=true`` makes the backend use redis-py's cluster
        client.
        """
        return self.live_node().url(0, cluster=True, **params)

    def live_node(self) -> RedisServer:
        """A running node (the first one that runs), to ask the cluster something."""
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError("no node of the cluster is running")

    def slot_of(self, key: str) -> int:
        """The hash slot of ``key`` (hash tags included), as the cluster computes it."""
        reply = self.live_node().command("CLUSTER", "KEYSLOT", key)
        if not isinstance(reply, int):
            raise RuntimeError(f"CLUSTER KEYSLOT answered {reply!r}")
        return reply

    def master_of(
        self, slot_or_key: int | str, *, asking: RedisServer | None = None
    ) -> RedisServer:
        """The master serving a slot (or a key's slot), as ``asking`` (or a live node) sees it."""
        slot = slot_or_key if isinstance(slot_or_key, int) else self.slot_of(slot_or_key)
        for start, end, master_port in _slot_ranges(asking or self.live_node()):
            if start <= slot <= end:
                return self._node_at(master_port)
        raise RuntimeError(f"no master serves slot {slot}")

    def _node_at(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise RuntimeError(f"port {port} is not a node of this cluster")

    def kill_master(self, slot_or_key: int | str = 0) -> RedisServer:
        """SIGKILL the master serving a slot (or key); returns it (its ``restart()`` rejoins).

        With replicas, follow with :meth:`wait_failover`; without, the cluster is down
        (``cluster_state:fail``) until the node is restarted.
        """
        master = self.master_of(slot_or_key)
        master.kill()
        return master

    def wait_ok(self, timeout: float = 30) -> None:
        """Wait until every running node says ``cluster_state:ok``, each replica linked up.

        A replica counts once its link to its master is up: a failover then has a synced
        replica to promote.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._node_ok(node) for node in self.nodes if node.running):
                    return
            except (OSError, RedisReplyError):
                pass  # a node still joining or loading: ask again
            if time.monotonic() > deadline:
                states = {
                    node.port: self._cluster_info(node) for node in self.nodes if node.running
                }
                raise RuntimeError(f"cluster not ok within {timeout} s: {states}")
            time.sleep(0.05)

    def wait_failover(self, slot_or_key: int | str = 0, timeout: float = 30) -> RedisServer:
        """After :meth:`kill_master`: wait for a new master of the slot; returns it.

        Every running node must name the same running master and the cluster be ok. The
        failure is noticed after ``cluster-node-timeout`` (2 s), then a replica is elected.
        """
        slot = slot_or_key if isinstance(slot_or_key, int) else self.slot_of(slot_or_key)
        deadline = time.monotonic() + timeout
        while True:
            promoted = self._agreed_master(slot)
            if promoted is not None:
                self.wait_ok(max(0.1, deadline - time.monotonic()))
                return promoted
            if time.monotonic() > deadline:
                raise RuntimeError(f"no running master for slot {slot} within {timeout} s")
            time.sleep(0.05)

    def _agreed_master(self, slot: int) -> RedisServer | None:
        # Right after a failover the nodes' views differ for a moment: wait for one answer.
        try:
            views = {self.master_of(slot, asking=node).port for node in self.nodes if node.running}
        except (OSError, RedisReplyError, RuntimeError):
            return None  # a node without a master for the slot yet, or unreachable
        if len(views) != 1:
            return None
        master = self._node_at(views.pop())
        return master if master.running else None

    @staticmethod
    def _cluster_info(node: RedisServer) -> str:
        try:
            return str(node.command("CLUSTER", "INFO"))
        except (OSError, RedisReplyError) as exc:
            return f"unreachable: {exc}"

    @staticmethod
    def _node_ok(node: RedisServer) -> bool:
        if "cluster_state:ok" not in str(node.command("CLUSTER", "INFO")):
            return False
        replication = str(node.command("INFO", "replication"))
        return "role:master" in replication or "master_link_status:up" in replication

    def destroy(self) -> None:
        """Stop every node and delete their files."""
        for node in self.nodes:
            node.destroy()


def _slot_ranges(node: RedisServer) -> list[tuple[int, int, int]]:
    """``CLUSTER SLOTS`` of ``node``: (first slot, last slot, master's port) triples."""
    reply = node.command("CLUSTER", "SLOTS")
    ranges: list[tuple[int, int, int]] = []
    for entry in reply if isinstance(reply, list) else []:
        match entry:
            case [int(start), int(end), [_, int(port), *_], *_]:
                ranges.append((start, end, port))
            case _:
                raise RuntimeError(f"unexpected CLUSTER SLOTS entry: {entry!r}")
    return ranges


def _cluster_node() -> RedisServer:
    # The cluster bus defaults to port+10000, past 65535 for half of the ephemeral range that
    # free_port() draws from: give it a free port of its own (cluster-port, Redis >= 7).
    return RedisServer(
        extra={
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": "2000",
            "cluster-port": str(free_port()),
            # A master waits 5 s by default for more replicas before a diskless full sync:
            # every replica's first sync (and wait_ok) would take 5 s more.
            "repl-diskless-sync-delay": "0",
        }
    )


@contextlib.contextmanager
def private_redis_cluster(masters: int = 3, replicas: int = 0) -> Iterator[RedisCluster]:
    """A started Redis Cluster of ``masters * (1 + replicas)`` private nodes, destroyed after.

    Each node is a :class:`RedisServer` (own temp dir, free port, persistence off) in cluster
    mode with a 2 s node timeout (quick failovers); ``redis-cli --cluster create`` spreads the
    16384 slots over the masters. Yields once every node reports ``cluster_state:ok``.
    """
    if masters < 3:
        raise ValueError("redis-cli --cluster create needs at least 3 masters")
    cli = _find_redis_cli()
    if find_redis_server() is None or cli is None:
        raise RuntimeError("redis-server or redis-cli not found (apt-get install redis-server)")
    cluster = RedisCluster([_cluster_node() for _ in range(masters * (1 + replicas))], replicas)
    try:
        for node in cluster.nodes:
            node.start()
        create = [
            str(cli), "--cluster", "create",
            *(f"127.0.0.1:{node.port}" for node in cluster.nodes),
            "--cluster-replicas", str(replicas), "--cluster-yes",
        ]  # fmt: skip
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(create)} failed:\n{done.stdout}\n{done.stderr}")
        cluster.wait_ok(30)
        yield cluster
    finally:
        cluster.destroy()
