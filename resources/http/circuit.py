"""One circuit breaker per source, shared by every process that calls it.

After `failure_threshold` consecutive failed requests a source's circuit opens for
`open_seconds`: calls fail at once with `CircuitOpen` (no request is sent), and sensors skip with
the reason instead of hammering. After that a single trial request is let through (half-open):
success closes the circuit, failure opens it again. The state lives in a small JSON file per
source, so the sensor daemon, run workers and a restarted process all see the same circuit. `resources.http.HttpClient` consults it before every request.

The file also keeps `last_success_at`, when the source last answered: a source whose change probe
answers "nothing new" lands nothing, and the stale-data alert (cc_alerts/rules/data_quality.py)
must not take its quiet lake for a silent source. It is written at most once per
`SUCCESS_WRITE_S`, so a run of a thousand requests is a handful of writes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# `last_success_at` is written at most this often per source (every process reads the file first).
SUCCESS_WRITE_S = 10.0


@dataclass
class CircuitState:
    failures: int = 0
    opened_at: float | None = None
    last_error: str = ""
    last_success_at: float | None = None  # epoch seconds; refreshed at most every SUCCESS_WRITE_S

    def open_until(self, open_seconds: float) -> float | None:
        return None if self.opened_at is None else self.opened_at + open_seconds


class CircuitBreaker:
    def __init__(
        self,
        source: str,
        state_dir: Path | None = None,
        failure_threshold: int = 5,
        open_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.path = None if state_dir is None else Path(state_dir) / f"{source}.json"
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._memory = CircuitState()
        # The file as last read, by its (inode, mtime, size): every request consults the breaker
        # twice, and a `stat` is a fraction of opening, reading and parsing the file. A save
        # replaces the file (a new inode), so another process's change is never missed.
        self._read: tuple[tuple[int, int, int], CircuitState] | None = None

    # --- state, in a file when there is a folder for it -------------------------------------
    def _load(self) -> CircuitState:
        if self.path is None:
            return self._memory
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return CircuitState()
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._read is None or self._read[0] != version:
            try:
                state = CircuitState(**json.loads(self.path.read_text()))
            except (FileNotFoundError, ValueError, TypeError):
                state = CircuitState()
            self._read = (version, state)
        return replace(self._read[1])  # a copy: `record_failure` changes what it loads

    def _save(self, state: CircuitState) -> None:
        if self.path is None:
            self._memory = state
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.path)
        self._read = None  # read back next time, whatever a file reused for it looks like

    # --- the breaker ------------------------------------------------------------------------
    def state(self) -> CircuitState:
        with self._lock:
            return self._load()

    def is_open(self) -> bool:
        """Open and still cooling down (a half-open circuit lets one trial through)."""
        until = self.state().open_until(self.open_seconds)
        return until is not None and self._clock() < until

    def reason(self) -> str:
        state = self.state()
        until = state.open_until(self.open_seconds)
        if until is None:
            return f"{self.source} circuit closed"
        stamp = time.strftime("%H:%M:%S", time.gmtime(until))
        return (f"{self.source} circuit open until {stamp} UTC after {state.failures} consecutive failures; "
                f"last error: {state.last_error}")

    def refusal(self) -> str | None:
        """Why a call must not be sent now, or None when it may go."""
        return self.reason() if self.is_open() else None

    def record_success(self) -> None:
        with self._lock:
            state = self._load()
            now = self._clock()
            stale = state.last_success_at is None or now - state.last_success_at >= SUCCESS_WRITE_S
            if state.failures or state.opened_at is not None or stale:
                self._save(CircuitState(last_success_at=now))

    def record_failure(self, error: str) -> None:
        with self._lock:
            state = self._load()
            state.failures += 1
            state.last_error = error[:300]
            half_open = state.opened_at is not None
            if half_open or state.failures >= self.failure_threshold:
                state.opened_at = self._clock()
            self._save(state)
