import subprocess
import sys
from datetime import datetime

from resources.ingest.metrics_agent import STREAM, sample
from resources.storage.landing import LandingLog


def test_append_is_durable_per_day_and_a_torn_line_is_kept_as_text(tmp_path):
    log = LandingLog(tmp_path)
    day = datetime(2026, 11, 20, 10)
    assert log.append("s", [{"id": 1}, {"id": 2}], day) == 2
    with log.path("s", day.date()).open("a") as handle:
        handle.write('{"id": 3, "trunc')  # a writer died mid-line (kill -9 inside a multi-page write)
    # The next append was acknowledged: it must not be glued to the torn line and lost with it.
    assert log.append("s", [{"id": 4}, {"id": 5}], day) == 2
    records = list(log.read("s", day.date()))
    assert [r["id"] for r in records if isinstance(r, dict)] == [1, 2, 4, 5]
    assert [r for r in records if isinstance(r, str)] == ['{"id": 3, "trunc']


def test_metrics_agent_samples_the_real_machine(tmp_path):
    reading = sample("host-a")
    assert reading["host"] == "host-a"
    assert 0 <= reading["cpu_percent"] <= 100 * reading["cpu_count"]
    assert 0 < reading["memory_used_bytes"] <= reading["memory_total_bytes"]
    out = subprocess.run([sys.executable, "-m", "resources.ingest.metrics_agent", "--once"],
                         env={"CC_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    [path] = (tmp_path / "landing" / STREAM).glob("date=*.jsonl")
    [record] = LandingLog(tmp_path / "landing").read(STREAM, datetime.fromisoformat(path.stem[5:]).date())
    assert record["disk_total_bytes"] > 0
