"""A throwaway PostgreSQL cluster with `wal_level=logical`, for CDC tests, the demo and benchmarks.

The shared server (127.0.0.1:5432) runs `wal_level=replica` and must not be restarted, so logical
replication gets a cluster of its own: `initdb` into a temporary folder, start it on a free
loopback port with trust authentication (replication included), and on exit stop it and remove
the folder, also when the body raised. Postgres refuses to run as root: as root the binaries run
as the `postgres` OS user. The cluster trades durability for speed (`fsync=off`): it is thrown
away, and a crash the chaos suite causes (`PgCluster.kill`) kills the postmaster, not the machine,
so the OS still has every write. `synchronous_commit` stays on:
walsenders only send flushed WAL, so with it off every change would wait for the WAL writer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# Settings the cluster starts with (postgresql.conf syntax is key = value).
_CONFIG = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "max_connections": "60",
    "shared_buffers": "'32MB'",
    "fsync": "off",
    "full_page_writes": "off",
    "timezone": "'UTC'",
    "log_min_messages": "warning",
}

_RUN_AS = "postgres"


class PgClusterError(RuntimeError):
    pass


def find_pg_bin() -> Path | None:
    """The folder holding `initdb`, `pg_ctl` and `postgres`: the newest Debian-style install, else PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_root() -> bool:
    return os.geteuid() == 0


def _command(args: list[str]) -> list[str]:
    if not _as_root():
        return args
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", _RUN_AS, "--", *args]
    return ["su", _RUN_AS, "-s", "/bin/sh", "-c", " ".join(_shell_quote(a) for a in args)]


def _shell_quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _run(args: list[str], cwd: Path, timeout: float) -> None:
    # PG* variables of the caller (PGDATA, PGPORT...) must not redirect the throwaway cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    result = subprocess.run(_command(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise PgClusterError(f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")


def _make_base_dir(tmp_dir: Path | str | None) -> Path:
    """A fresh folder the cluster owns; as root, one the `postgres` user can reach."""
    base = Path(tempfile.mkdtemp(prefix="cc-pg-", dir=tmp_dir))
    if not _as_root():
        return base
    user = pwd.getpwnam(_RUN_AS)
    os.chown(base, user.pw_uid, user.pw_gid)
    # pytest's tmp folders are private to root (mode 700): the postgres user cannot enter them.
    reachable = subprocess.run(_command(["test", "-w", str(base)]), capture_output=True).returncode == 0
    if reachable:
        return base
    shutil.rmtree(base, ignore_errors=True)
    base = Path(tempfile.mkdtemp(prefix="cc-pg-"))
    os.chown(base, user.pw_uid, user.pw_gid)
    return base


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError, PermissionError):
        return None


def _stop(bin_dir: Path, base: Path, data: Path) -> None:
    if (data / "postmaster.pid").exists():
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "20", "stop"], base, 30)
        except (PgClusterError, subprocess.TimeoutExpired):
            pid = _postmaster_pid(data)
            if pid:
                # The postmaster's children exit on their own once it is gone.
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
    shutil.rmtree(base, ignore_errors=True)


class PgCluster:
    """A started throwaway cluster that a chaos test may stop, kill and start again on its port."""

    def __init__(self, bin_dir: Path, base: Path, port: int, start_timeout_s: float) -> None:
        self.bin_dir, self.base, self.data, self.port = bin_dir, base, base / "data", port
        self.start_timeout_s = start_timeout_s

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start on the same port; after a kill, until the old backends have let go of shared memory."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                      "-t", str(int(self.start_timeout_s)), "-o", f"-p {self.port}", "start"], self.base,
                     self.start_timeout_s + 10)
                return
            except PgClusterError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop`: `fast` rolls back open transactions and closes every connection."""
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"], self.base, 40)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster: a crash. The next start runs crash recovery."""
        pid = _postmaster_pid(self.data)
        if pid is None:
            raise PgClusterError("the cluster is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@contextmanager
def restartable_cluster(tmp_dir: Path | str | None = None, bin_dir: Path | None = None,
                        start_timeout_s: float = 60) -> Iterator[PgCluster]:
    """Start a logical-replication cluster and yield it; stop and delete it on exit."""
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise PgClusterError("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")
    base = _make_base_dir(tmp_dir)
    data = base / "data"
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync",
              "-E", "UTF8", "--locale=C"], base, start_timeout_s)
        # Root may append to the postgres-owned file; ownership and mode stay as initdb left them.
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("\n# throwaway_cluster\n" + "".join(f"{k} = {v}\n" for k, v in _CONFIG.items()))
        port = None
        # The free port may be taken between probing and binding: try a few.
        for attempt in range(3):
            port = _free_port()
            try:
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
                      "-t", str(int(start_timeout_s)), "-o", f"-p {port}", "start"], base, start_timeout_s + 10)
                break
            except PgClusterError as exc:
                if attempt == 2:
                    log = base / "server.log"
                    tail = log.read_text()[-3000:] if log.exists() else ""
                    raise PgClusterError(f"cluster did not start: {exc}\n{tail}") from exc
        yield PgCluster(bin_dir, base, port, start_timeout_s)
    finally:
        _stop(bin_dir, base, data)


@contextmanager
def throwaway_cluster(tmp_dir: Path | str | None = None, bin_dir: Path | None = None,
                      start_timeout_s: float = 60) -> Iterator[str]:
    """Start a logical-replication cluster and yield its superuser DSN; stop and delete it on exit."""
    with restartable_cluster(tmp_dir, bin_dir, start_timeout_s) as cluster:
        yield cluster.dsn
