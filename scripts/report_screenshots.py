"""`python -m scripts.report_screenshots [--world DATA_DIR]`: the README's pictures of the operations
report, `docs/report-daily.png` (the HTML page, Debian's Chromium through Playwright) and
`docs/report-pdf-page1.png` (the PDF's first page: poppler's `pdftoppm` when installed, else
Chromium's own PDF viewer without its toolbar).

With `--world DIR`, the report is rendered from that data folder (e.g. `make demo`'s `data/`), which
is built first (a small sandbox world: ingest, dbt, the daily tier move) when it has no serving
snapshot yet; without it such a world is built in a temporary folder. The report itself is written
to a temporary folder either way (the marts and alerts copied there): nothing lands in the world.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.browser import MISSING, chromium, launch

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _built_world(data_dir: Path, work: Path, events: int = 1500, days: int = 3) -> Iterator[Path]:
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from sandbox.process import run_sandbox

    end = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    first = (end - timedelta(days=days)).date().isoformat()
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": end.date().isoformat()}
    with run_sandbox(work / "sandbox", events=events, days=days, end=end) as sandbox, \
            DagsterInstance.ephemeral() as instance:
        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse="duckdb")
        for job, job_tags in (("ingest_job", tags), ("transform_job", {}), ("tiers_daily_job", tags)):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=job_tags, resources={"platform": platform}, raise_on_error=False)
            if not result.success:
                raise RuntimeError(f"{job} failed while building the world in {data_dir}")
    yield data_dir


def pdf_page_png(pdf: Path, out: Path, browser) -> str:
    """Page 1 of `pdf` as PNG at `out`; what drew it."""
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                        str(out.with_suffix(""))], check=True)
        return "pdftoppm"
    # A4 is 1:1.414; the viewer fits the page's width and shows page 1 first.
    page = browser.new_page(viewport={"width": 900, "height": 1273})
    page.goto(pdf.as_uri() + "#toolbar=0&navpanes=0&view=FitH")
    page.wait_for_timeout(2500)  # the viewer's first paint
    page.screenshot(path=str(out))
    page.close()
    return "Chromium's PDF viewer"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, help="a data folder with a built serving snapshot (else one is built)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from cc_assets.reports.assets import build
    from cc_assets.reports.data import Period
    from resources.settings import Settings

    if chromium() is None:
        print(MISSING, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        world = args.world or Path(work) / "world"
        if not (world / "serving" / "marts.duckdb").exists():
            stack.enter_context(_built_world(world, Path(work)))
        # The world's marts, the report in the temporary folder: nothing is written into the world.
        out_dir = Path(work) / "out"
        (out_dir / "serving").mkdir(parents=True)
        shutil.copy(world / "serving" / "marts.duckdb", out_dir / "serving" / "marts.duckdb")
        if (world / "sidecar" / "alerts.sqlite3").exists():
            (out_dir / "sidecar").mkdir()
            shutil.copy(world / "sidecar" / "alerts.sqlite3", out_dir / "sidecar" / "alerts.sqlite3")
        settings = Settings.from_env({"CC_DATA_DIR": str(out_dir)})
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
        folder = build(settings, Period.of("daily", yesterday))["folder"]
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.goto((folder / "report.html").as_uri())
            page.wait_for_timeout(300)
            shot = ROOT / "docs" / "report-daily.png"
            page.screenshot(path=str(shot), full_page=False)
            print(f"wrote {shot.relative_to(ROOT)}")
            shot = ROOT / "docs" / "report-pdf-page1.png"
            how = pdf_page_png(folder / "report.pdf", shot, browser)
            print(f"wrote {shot.relative_to(ROOT)} ({how})")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
