"""Small helpers the benchmark scripts share."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


def quantile(values: list[float], q: float) -> float:
    """The `q` quantile of `values` (nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class MemorySampler:
    """Samples resident memory every `interval_s` in a thread: this process plus its children
    (dbt, normalize workers) as one figure, and the processes in `apart` (the sandbox) as another,
    so a stage's peak can be read for any stretch of wall time afterwards. A child that lives
    shorter than one interval can be missed; `interval_s` of 0.2 s catches dbt and the workers."""

    interval_s: float = 0.2
    apart: set[int] = field(default_factory=set)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (time.time(), pipeline, apart)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            pipeline = apart = 0
            try:
                processes = [me, *me.children(recursive=True)]
            except psutil.Error:
                processes = [me]
            sandbox_tree = set(self.apart)
            for proc in processes:
                try:
                    if proc.pid in sandbox_tree or proc.ppid() in sandbox_tree:
                        sandbox_tree.add(proc.pid)
                        apart += proc.memory_info().rss
                    else:
                        pipeline += proc.memory_info().rss
                except psutil.Error:
                    continue  # it ended between the listing and the reading
            self.samples.append((time.time(), pipeline, apart))
            self._stop.wait(self.interval_s)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> tuple[int, int]:
        """Peak bytes (pipeline, apart) sampled between `start` and `end` (time.time()); a stretch
        shorter than one interval gets the sample just before its end (what it ran beside)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            inside = [s for s in self.samples if s[0] <= end][-1:]
        return max((s[1] for s in inside), default=0), max((s[2] for s in inside), default=0)
