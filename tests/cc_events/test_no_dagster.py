import subprocess
import sys


def test_the_normalizer_imports_without_dagster():
    """The sidecar calls the same normalizer per webhook; it must not drag Dagster in."""
    code = "import sys, cc_events, cc_events.registry; print(sorted(m for m in sys.modules if 'dagster' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
