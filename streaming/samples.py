"""Host samples this sidecar has seen, so `/dashboard/metrics` shows a host before the next dbt build.

Fed from the `metrics:realtime` room's messages (`Sidecar._from_broker`), so every replica keeps
the samples any replica accepted, as its clients see them. Keyed by sample id (a resend is one
sample) and bounded: a day of samples at most (the rollups of a dbt build hold the older ones),
and at most `max_samples`. Only what the host rollups read is kept.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from cc_events import InvalidRecord
from cc_events.registry import RAW_TABLES
from streaming.data.marts import utcnow

log = logging.getLogger(__name__)

ROOM = "metrics:realtime"
MAX_AGE = timedelta(hours=24)
DEFAULT_MAX_SAMPLES = 100_000  # a day of 35 hosts every 30 s, ~20 MB


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    host: str
    sampled_at: datetime  # naive UTC
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None


class LiveSamples:
    """Thread-safe: the event loop adds, REST reads (in the thread pool) read."""

    def __init__(self, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._samples: OrderedDict[str, Sample] = OrderedDict()  # arrival order

    def __len__(self) -> int:
        return len(self._samples)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._samples

    def add(self, record: Any) -> bool:
        """Keep a sample (a `raw/system/metrics` record); False if it is not one, too old, or known."""
        try:
            row = RAW_TABLES["system", "metrics"].flatten(record)
        except InvalidRecord:
            return False
        oldest = utcnow() - MAX_AGE
        if row["sampled_at"] < oldest or row["id"] in self._samples:
            return False
        sample = Sample(row["id"], row["host"], row["sampled_at"], row["cpu_percent"], row["memory_percent"],
                        row["disk_percent"])
        with self._lock:
            self._samples[sample.id] = sample
            while self._samples and (len(self._samples) > self.max_samples
                                     or next(iter(self._samples.values())).sampled_at < oldest):
                self._samples.popitem(last=False)
        return True

    def add_message(self, text: str) -> None:
        """Keep the sample of a `metrics:realtime` message (`{"type", "room", "timestamp", "payload"}`)."""
        try:
            self.add(orjson.loads(text).get("payload"))
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("not a metrics message: %.200s", text)

    def between(self, lo: datetime, hi: datetime) -> list[Sample]:
        """The samples taken in [lo, hi), oldest first."""
        with self._lock:
            found = [s for s in self._samples.values() if lo <= s.sampled_at < hi]
        return sorted(found, key=lambda s: (s.sampled_at, s.id))
