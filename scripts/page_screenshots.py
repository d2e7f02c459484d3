"""`python -m scripts.page_screenshots`: the README's two pictures of the page, 1280 and 390 px wide.

A small sandbox world is landed and built (scripts/chaos/built.py), a sidecar serves it, and
Debian's Chromium (Playwright, `executable_path`) opens the page logged in and writes
`docs/page-1280.png` and `docs/page-390.png` once the tiles, feed and table are filled.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from scripts.browser import MISSING, chromium, launch

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = {1280: 900, 390: 844}


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    from scripts.chaos.built import built_sidecar

    if chromium() is None:
        print(MISSING, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work, built_sidecar(Path(work), events=800, days=2) as server, \
            sync_playwright() as playwright:
        browser = launch(playwright)
        for width, height in WIDTHS.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{server.url}/#token={server.token('operator', scopes=['commands', 'dashboards', 'alerts'])}")
            page.wait_for_selector("[data-testid=workflow-row]", timeout=30_000)
            expect(page.locator("[data-testid=connection-state]")).to_contain_text("live", timeout=30_000)
            page.wait_for_timeout(1500)  # the charts' first draw
            out = ROOT / "docs" / f"page-{width}.png"
            page.screenshot(path=str(out), full_page=False)
            print(f"wrote {out.relative_to(ROOT)}")
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
