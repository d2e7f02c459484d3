"""The sidecar on every core: `CC_SIDECAR_WORKERS` worker processes on one port, supervised.

Each worker is the launcher itself (`python -m streaming.serve ... --reuse-port`) in a process of
its own: a whole uvicorn with uvloop, httptools, the guarded protocol and the app's lifespan, and
its own listening socket on the shared port (`SO_REUSEPORT`), so the kernel spreads connections
over the workers and each accepts only once its lifespan is done (the socket listens after it).
Each is a replica of its own (`CC_SIDECAR_WORKER_ID` w1, w2…, or `<id>-1`, `<id>-2`… when set),
sharing rooms, live rows and webhook dedupe through `CC_REDIS_URL` and writing its own landing
files (`resources.storage.landing`). Without Redis more than one worker is refused: a delivery
retried on another worker would be landed twice and its clients would miss the others' events.

The supervisor restarts a worker that dies (at once, then backing off while it keeps dying
young), stops them all on SIGTERM or SIGINT (each gets one SIGTERM and its graceful shutdown),
and exits when a worker's first start fails (a port taken, a bad setting: restarting would not
help). The workers sit in process groups of their own, so a terminal's Ctrl-C reaches the
supervisor alone, and they get SIGTERM if the supervisor dies (`PR_SET_PDEATHSIG`).

`/metrics` answers for every worker, whichever the kernel picked: the supervisor gives them a
directory of their own for prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`,
`streaming.telemetry`), removes a dead worker's live gauges from it, and deletes it on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from resources.settings import Settings

STARTUP_FAILURE = 3  # uvicorn's exit code when the lifespan or the bind fails
STOP_WAIT_S = 30.0  # a worker's graceful shutdown, then SIGKILL
YOUNG_S = 10.0  # a worker that dies younger than this is restarted after a growing pause
BACKOFF_MAX_S = 30.0
# prometheus-client's multiprocess mode: read by the library itself when a worker imports it.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def worker_names(settings: Settings) -> list[str]:
    base = settings.sidecar_worker_id
    return [f"{base}-{n}" if base else f"w{n}" for n in range(1, settings.sidecar_workers + 1)]


def check(settings: Settings) -> str | None:
    """Why these settings cannot run several workers (one line), or None."""
    if settings.sidecar_workers > 1 and not settings.redis_url:
        return (f"CC_SIDECAR_WORKERS={settings.sidecar_workers} needs CC_REDIS_URL (redis://host:6379/0): "
                "the workers share rooms, live state and webhook dedupe through Redis")
    return None


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` beside the other workers' (`SO_REUSEPORT`); it listens once
    uvicorn has run the app's lifespan."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _die_with_parent(parent: int) -> None:  # in the child, before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the supervisor died before the line above
        os._exit(1)


@dataclass
class Worker:
    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    backoff_s: float = 0.0
    due_at: float = 0.0  # when a dead worker is started again

    def start(self) -> None:
        parent = os.getpid()
        self.proc = subprocess.Popen(self.cmd, env=self.env, process_group=0,
                                     preexec_fn=lambda: _die_with_parent(parent))
        self.started_at = time.monotonic()
        self.starts += 1


class Stop(Exception):
    pass


def _on_signal(signum, frame) -> None:
    raise Stop(signal.Signals(signum).name)


def supervise(settings: Settings, host: str, port: int, child_args: list[str]) -> int:
    """Run the workers until a signal (0) or a worker's first start fails (its exit code)."""
    problem = check(settings)
    if problem:
        print(f"sidecar: {problem}", file=sys.stderr, flush=True)
        return 2
    try:  # the port, as the workers will bind it: a foreign listener stops us in one line
        reuse_port_socket(host, port).close()
    except OSError as exc:
        print(f"sidecar: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr, flush=True)
        return 2
    cmd = [sys.executable, "-m", "streaming.serve", "--host", host, "--port", str(port), "--reuse-port", *child_args]
    metrics_dir = tempfile.mkdtemp(prefix=f"cc-sidecar-metrics-{port}-")
    workers = [Worker(name, cmd, {**os.environ, "CC_SIDECAR_WORKERS": "1", "CC_SIDECAR_WORKER_ID": name,
                                  METRICS_DIR_VARIABLE: metrics_dir})
               for name in worker_names(settings)]
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        print(f"sidecar: {len(workers)} workers ({', '.join(w.name for w in workers)}) on {host}:{port}, "
              "sharing rooms, live state and dedupe through CC_REDIS_URL", file=sys.stderr, flush=True)
        return _watch(workers, metrics_dir)
    except Stop as stop:
        print(f"sidecar: {stop}: stopping {len(workers)} workers", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        _stop_all(workers)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker_died(pid: int, metrics_dir: str) -> None:
    """Its live gauges leave `/metrics`; its counters stay in the sums (they only ever grow)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, metrics_dir)


def _watch(workers: list[Worker], metrics_dir: str) -> int:
    while True:
        now = time.monotonic()
        for worker in workers:
            if worker.proc is None:
                if now >= worker.due_at:
                    worker.start()
                continue
            code = worker.proc.poll()
            if code is None:
                continue
            lived = now - worker.started_at
            _worker_died(worker.proc.pid, metrics_dir)
            if worker.starts == 1 and code == STARTUP_FAILURE:
                print(f"sidecar: worker {worker.name} could not start (exit {code}); stopping", file=sys.stderr,
                      flush=True)
                return code
            worker.backoff_s = min(BACKOFF_MAX_S, max(0.5, worker.backoff_s * 2)) if lived < YOUNG_S else 0.0
            worker.due_at = now + worker.backoff_s
            worker.proc = None
            print(f"sidecar: worker {worker.name} exited ({_how(code)}) after {lived:.0f} s; restarting"
                  + (f" in {worker.backoff_s:.1f} s" if worker.backoff_s else ""), file=sys.stderr, flush=True)
        time.sleep(0.1)


def _how(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit {code}"


def _stop_all(workers: list[Worker]) -> None:
    running = [w.proc for w in workers if w.proc is not None and w.proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
