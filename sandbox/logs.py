"""Log files being written and rotated: JSON-lines app logs and syslog, as a live host has them.

`LogWriter(dir, seed)` appends realistic lines to a few files and rotates them the two ways
logrotate does: rename (`app.log` → `app.log.1` ..., keep N, optionally gzip the older ones) and
copytruncate (copy to `app.log.1`, truncate in place). Everything it writes is decided by the
seed, so two writers with the same seed and the same calls produce the same bytes; only the pace
of the background thread (`start(rate=...)`) depends on the clock. `written` is the ground
truth: every line, per file, in the order written.

Files (each with its own dialect, as real hosts mix them):
- `api.log`      JSON lines, `ts/level/service/msg` plus request fields
- `worker.log`   JSON lines, `time/severity/app/message` plus job fields
- `charlie.log`  JSON lines from the Charlie bot instances, `@timestamp/lvl/logger/msg`
- `syslog`       RFC 3164 without PRI, as `/var/log/syslog`
- `relay.log`    what a syslog relay stores: RFC 5424 and RFC 3164 with PRI

Some lines name Linear issues (`ENG-12`), GitHub pull requests (`acme/api#45`) or carry a
`correlation_id`/`trace_id`; a few name decoys (`UTF-8`, `SHA-256`) that are not keys.
`corrupt_rate` mixes in broken lines (cut JSON, invalid UTF-8, NULs); `split_rate` writes some
lines in two `write` calls, so a reader sees half a line now and then.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandbox import text

FILES = ("api.log", "worker.log", "charlie.log", "syslog", "relay.log")
_WEIGHTS = (0.35, 0.2, 0.2, 0.15, 0.1)
CHARLIE_INSTANCES = ("charlie-alpha", "charlie-beta", "charlie-gamma", "charlie-epsilon")
TEAM_KEYS = ("ENG", "OPS", "DATA")
REPOS = ("acme/api", "acme/web", "acme/worker", "acme/infra")
DEFAULT_START = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
_ROUTES = ("/v1/issues", "/v1/pulls", "/v1/workflows", "/v1/instances", "/health", "/v1/events", "/v1/search")
_JOBS = ("sync_linear", "sync_github", "poll_charlie", "rebuild_marts", "compact_lake", "send_digest")
_SYSTEM = (
    ("sshd", "Accepted publickey for deploy from 10.0.{a}.{b} port {port} ssh2"),
    ("sshd", "Disconnected from user deploy 10.0.{a}.{b} port {port}"),
    ("CRON", "(root) CMD (cd / && run-parts --report /etc/cron.hourly)"),
    ("systemd", "Started Daily apt download activities."),
    ("systemd", "logrotate.service: Deactivated successfully."),
    ("kernel", "[{uptime}.{frac}] EXT4-fs (vda1): re-mounted. Quota mode: none."),
    ("dockerd", "level=info msg=\"ignoring event\" module=libcontainerd namespace=moby"),
    ("dockerd", "level=warning msg=\"Health check for container {hex} took longer than 5s\""),
    ("postgres", "LOG:  checkpoint complete: wrote {n} buffers"),
    ("api", "ERROR upstream timeout talking to linear while loading {key}"),
    ("worker", "WARN retrying {job} after a 502 from api.github.com"),
)


@dataclass(frozen=True, slots=True)
class Written:
    file: str
    line: bytes  # without its newline


class LogWriter:
    """Writes and rotates log files under `directory`; deterministic for a given `seed`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        seed: int = 0,
        *,
        keep: int = 5,
        compress: bool = False,
        corrupt_rate: float = 0.0,
        split_rate: float = 0.0,
        start: datetime | None = None,
        host: str = "cc-sandbox-1",
        files: tuple[str, ...] = FILES,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.keep = keep
        self.compress = compress
        self.corrupt_rate = corrupt_rate
        self.split_rate = split_rate
        self.now = start or DEFAULT_START
        self.host = host
        self.files = tuple(files)
        self.weights = [_WEIGHTS[FILES.index(f)] if f in FILES else 0.1 for f in self.files]
        self.written: list[Written] = []
        self.rotations: list[tuple[str, str]] = []  # (file, "rename" | "copytruncate")
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pause = 0.0  # between the two halves of a split line (only in the thread)

    # --- writing ---------------------------------------------------------------------------------

    def write(self, n: int = 1, file: str | None = None) -> list[Written]:
        """Append `n` lines, each to `file` or to a file picked at random."""
        out = []
        for _ in range(n):
            name = file or self.rng.choices(self.files, self.weights)[0]
            out.append(self._write_line(name, self._line(name)))
        return out

    def append(self, file: str, data: bytes) -> None:
        """Raw bytes, as they are (tests use it for half lines); not recorded in `written`."""
        with self._lock:
            os.write(self._fd(file), data)

    def _write_line(self, name: str, line: bytes) -> Written:
        with self._lock:
            fd = self._fd(name)
            if len(line) > 8 and self.rng.random() < self.split_rate:
                cut = self.rng.randrange(1, len(line))
                os.write(fd, line[:cut])
                if self._pause:
                    time.sleep(self._pause)
                os.write(fd, line[cut:] + b"\n")
            else:
                os.write(fd, line + b"\n")
            record = Written(name, line)
            self.written.append(record)
            return record

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = os.open(self.dir / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._fds[name] = fd
        return fd

    def close(self) -> None:
        self.stop()
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rotation --------------------------------------------------------------------------------

    def rotate(self, file: str) -> None:
        """Rename rotation: `.k` → `.k+1` (dropping the oldest), the file → `.1`, a new empty file."""
        with self._lock:
            path = self.dir / file
            self._shift(file)
            fd = self._fds.pop(file, None)
            if fd is not None:
                os.close(fd)
            if path.exists():
                os.replace(path, self.dir / f"{file}.1")
            self._compress(file)
            self._fd(file)  # logrotate's `create`: the new file exists at once
            self.rotations.append((file, "rename"))

    def copytruncate(self, file: str) -> None:
        """copytruncate rotation: copy the file to `.1` (not atomically, as cp does), truncate it."""
        with self._lock:
            path = self.dir / file
            self._shift(file)
            if path.exists():
                shutil.copyfile(path, self.dir / f"{file}.1")
                os.truncate(path, 0)  # the writer's O_APPEND descriptor goes on at the new end
            self._compress(file)
            self.rotations.append((file, "copytruncate"))

    def _shift(self, file: str) -> None:
        for k in range(self.keep, 0, -1):
            for ext in ("", ".gz"):
                src = self.dir / f"{file}.{k}{ext}"
                if src.exists():
                    if k >= self.keep:
                        src.unlink()
                    else:
                        os.replace(src, self.dir / f"{file}.{k + 1}{ext}")

    def _compress(self, file: str) -> None:
        """delaycompress: `.1` stays plain (a writer may still be finishing it), `.2` is gzipped."""
        src = self.dir / f"{file}.2"
        if self.compress and src.exists():
            with open(src, "rb") as fin, gzip.open(self.dir / f"{file}.2.gz", "wb") as fout:
                shutil.copyfileobj(fin, fout)
            src.unlink()

    # --- background ------------------------------------------------------------------------------

    def start(
        self,
        rate: float = 200.0,
        *,
        rotate_every: int | None = 500,
        copytruncate_share: float = 0.0,
        split_pause: float = 0.002,
    ) -> LogWriter:
        """Write about `rate` lines a second in a thread until `stop()`; each file is rotated after
        about `rotate_every` of its lines (renamed, or copytruncated with `copytruncate_share`)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stop.clear()
        self._pause = split_pause
        self._thread = threading.Thread(target=self._run, args=(rate, rotate_every, copytruncate_share),
                                        name="log-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pause = 0.0

    def _run(self, rate: float, rotate_every: int | None, copytruncate_share: float) -> None:
        due = {f: self._rotation_due(rotate_every) for f in self.files}
        tick = 0.01
        started, written = time.monotonic(), 0
        while not self._stop.is_set():
            target = int((time.monotonic() - started) * rate)
            for _ in range(max(0, target - written)):
                name = self.rng.choices(self.files, self.weights)[0]
                self._write_line(name, self._line(name))
                written += 1
                if due[name] is not None:
                    due[name] -= 1
                    if due[name] <= 0:
                        if self.rng.random() < copytruncate_share:
                            self.copytruncate(name)
                        else:
                            self.rotate(name)
                        due[name] = self._rotation_due(rotate_every)
            self._stop.wait(tick)

    def _rotation_due(self, every: int | None) -> int | None:
        return None if not every else self.rng.randint(max(1, every // 2), every * 3 // 2)

    # --- content ---------------------------------------------------------------------------------

    def lines(self, file: str | None = None) -> list[bytes]:
        with self._lock:
            return [w.line for w in self.written if file is None or w.file == file]

    def _line(self, name: str) -> bytes:
        rng = self.rng
        self.now += timedelta(milliseconds=rng.randint(1, 900))
        if name == "api.log":
            line = self._api()
        elif name == "worker.log":
            line = self._worker()
        elif name == "charlie.log":
            line = self._charlie()
        elif name == "relay.log":
            line = self._relay()
        else:
            line = self._syslog()
        if rng.random() < self.corrupt_rate:
            line = self._corrupt(line)
        return line

    def _iso(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.now.microsecond // 1000:03d}Z"

    def _hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def _issue(self) -> str:
        return f"{self.rng.choice(TEAM_KEYS)}-{self.rng.randint(1, 60)}"

    def _level(self, weights=(0.1, 0.7, 0.13, 0.07)) -> str:
        return self.rng.choices(("debug", "info", "warn", "error"), weights)[0]

    def _api(self) -> bytes:
        rng = self.rng
        level = self._level()
        route = rng.choice(_ROUTES)
        status = {"error": rng.choice((500, 502, 503)), "warn": rng.choice((404, 409, 429))}.get(level, 200)
        duration = int(rng.lognormvariate(3.5, 0.8))
        msg = f"{rng.choice(('GET', 'GET', 'POST', 'PATCH'))} {route} {status} in {duration}ms"
        if rng.random() < 0.15:
            msg += f" for {self._issue()}"
        if level == "error":
            msg += rng.choice((" (upstream timeout)", " (pool exhausted)", " (invalid UTF-8 in body)"))
        record = {"ts": self._iso(), "level": level, "service": "api", "host": f"api-{rng.randint(1, 3)}",
                  "msg": msg, "request_id": f"req_{self._hex(12)}", "status": status, "duration_ms": duration}
        if rng.random() < 0.3:
            record["trace_id"] = self._hex(32)
        return _json(record)

    def _worker(self) -> bytes:
        rng = self.rng
        level = self._level((0.15, 0.6, 0.15, 0.1))
        job = rng.choice(_JOBS)
        msg = {
            "debug": f"{job}: fetched page {rng.randint(1, 40)}",
            "info": f"{job}: done, {rng.randint(0, 500)} records in {rng.uniform(0.1, 30):.1f}s",
            "warn": f"{job}: rate limited, retrying in {rng.randint(1, 60)}s",
            "error": f"{job}: failed after {rng.randint(2, 5)} attempts: HTTP 502",
        }[level]
        if rng.random() < 0.2:
            msg += f" ({self._issue()})"
        record = {"time": self._iso(), "severity": level.upper(), "app": rng.choice(("worker", "scheduler")),
                  "message": msg, "job": job, "attempt": rng.randint(1, 3)}
        return _json(record)

    def _charlie(self) -> bytes:
        rng = self.rng
        instance = rng.choice(CHARLIE_INSTANCES)
        issue, repo = self._issue(), rng.choice(REPOS)
        level, msg = rng.choice((
            ("info", f"picked up {issue}: {rng.choice(text.VERBS).lower()} {rng.choice(text.TOPICS['ENG'])}"),
            ("info", f"{rng.choice(text.PROGRESS)} for {issue}"),
            ("info", f"opened {repo}#{rng.randint(1, 400)} for {issue}"),
            ("warn", f"CI failed on {repo}#{rng.randint(1, 400)}, retrying"),
            ("error", f"task for {issue} failed: tool call timed out"),
            ("debug", f"heartbeat ok, queue_depth={rng.randint(0, 9)}"),
            ("info", "verified artifact SHA-256 before upload"),
        ))
        record = {"@timestamp": self._iso(), "lvl": level, "logger": instance, "msg": msg,
                  "correlation_id": f"run-{self._hex(10)}"}
        return _json(record)

    def _syslog(self) -> bytes:
        rng = self.rng
        tag, template = rng.choice(_SYSTEM)
        msg = template.format(a=rng.randint(0, 255), b=rng.randint(1, 254), port=rng.randint(1024, 65535),
                              uptime=rng.randint(100, 999999), frac=f"{rng.randint(0, 999999):06d}",
                              hex=self._hex(12), n=rng.randint(10, 9000), key=self._issue(),
                              job=rng.choice(_JOBS))
        pid = "" if tag == "kernel" else f"[{rng.randint(1, 65000)}]"
        stamp = self.now.strftime("%b ") + f"{self.now.day:>2}" + self.now.strftime(" %H:%M:%S")
        return f"{stamp} {self.host} {tag}{pid}: {msg}".encode()

    def _relay(self) -> bytes:
        rng = self.rng
        host = f"web-{rng.randint(1, 4)}"
        severity = rng.choices((3, 4, 5, 6, 7), (0.08, 0.12, 0.1, 0.6, 0.1))[0]
        if rng.random() < 0.6:
            facility = 16 + rng.randint(0, 3)  # local0..local3
            app = rng.choice(("api", "web", "nginx", "charlie-alpha"))
            request_id = f"req_{self._hex(12)}"
            sd = f'[meta@32473 request_id="{request_id}" issue="{self._issue()}"]' if rng.random() < 0.5 else "-"
            msg = rng.choice(("request finished", "cache miss for user settings", "slow query (820ms)",
                              f"deploy of {rng.choice(REPOS)} started"))
            return (f"<{facility * 8 + severity}>1 {self._iso()} {host} {app} {rng.randint(100, 9999)} "
                    f"{rng.choice(('REQ', 'DEPLOY', '-'))} {sd} {msg}").encode()
        stamp = self.now.strftime("%b ") + f"{self.now.day:>2}" + self.now.strftime(" %H:%M:%S")
        tag, template = rng.choice(_SYSTEM[:5])
        msg = template.format(a=rng.randint(0, 255), b=rng.randint(1, 254), port=rng.randint(1024, 65535))
        return f"<{4 * 8 + severity}>{stamp} {host} {tag}[{rng.randint(1, 65000)}]: {msg}".encode()

    def _corrupt(self, line: bytes) -> bytes:
        kind = self.rng.choice(("cut", "utf8", "nul"))
        if kind == "cut" and line.startswith(b"{"):
            return line[: self.rng.randint(5, max(6, len(line) - 5))]
        if kind == "nul":
            return b"\x00" * self.rng.randint(1, 16) + line
        at = self.rng.randrange(len(line))
        return line[:at] + b"\xff\xfe" + line[at:]


def _json(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()
