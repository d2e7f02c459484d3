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


def test_each_writer_appends_to_its_own_file_and_every_reader_reads_them_all(tmp_path):
    from resources.storage.landing import day_of, writer_of

    at = datetime(2026, 11, 20, 10)
    LandingLog(tmp_path).append("s", [{"id": 1}], at)  # the data dir's one writer (the metrics agent)
    LandingLog(tmp_path, "w1").append("s", [{"id": 2}], at)
    LandingLog(tmp_path, "w2").append("s", [{"id": 3}, {"id": 4}], at)
    files = LandingLog(tmp_path).files("s", at.date())
    assert [p.name for p in files] == ["date=2026-11-20.jsonl", "date=2026-11-20.w1.jsonl", "date=2026-11-20.w2.jsonl"]
    assert [writer_of(p) for p in files] == [None, "w1", "w2"] and {day_of(p) for p in files} == {at.date()}
    assert sorted(r["id"] for r in LandingLog(tmp_path, "w1").read("s", at.date())) == [1, 2, 3, 4]
    assert LandingLog(tmp_path).days("s") == [at.date()]
    assert LandingLog(tmp_path).size("s", at.date()) == sum(p.stat().st_size for p in files)


def test_a_second_process_cannot_write_as_a_worker_that_is_writing(tmp_path):
    import pytest

    from resources.storage.landing import WriterLock

    assert WriterLock.held(tmp_path, "w1") is None  # never written here
    lock = WriterLock(tmp_path, "w1")
    assert WriterLock.held(tmp_path, "w1") is True
    with pytest.raises(RuntimeError, match="CC_SIDECAR_WORKER_ID"):
        WriterLock(tmp_path, "w1")
    WriterLock(tmp_path, "w2").release()  # another name is free
    lock.release()  # as the kernel does when the process dies
    assert WriterLock.held(tmp_path, "w1") is False
    WriterLock(tmp_path, "w1").release()
