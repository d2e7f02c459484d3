"""`python -m scripts.docs_screenshot`: the README's pictures of the dbt docs site.

Opens the static site `make docs-generate` wrote (`$CC_DATA_DIR/docs/site/index.html`, one file: no
server) in Debian's Chromium (Playwright, `executable_path`) on the `fct_workflows` page and writes
`docs/dbt-docs.png` (owner, columns and their types from the catalog) and `docs/dbt-docs-lineage.png`
(its lineage graph `1+fct_workflows+`: what it reads, and the models and exposures that read it).
Run `make demo` and `make docs-generate` first.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.browser import MISSING, chromium, launch

ROOT = Path(__file__).resolve().parent.parent
MODEL = "model.command_center.fct_workflows"


def shot(page, name: str) -> None:
    out = ROOT / "docs" / name
    page.screenshot(path=str(out), full_page=False)
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> int:
    from playwright.sync_api import sync_playwright

    from resources.settings import Settings

    site = Settings.from_env().data_dir / "docs" / "site" / "index.html"
    if not site.exists():
        print(f"no {site}: run `make docs-generate` first", file=sys.stderr)
        return 2
    if chromium() is None:
        print(MISSING, file=sys.stderr)
        return 2
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{site.resolve().as_uri()}#!/model/{MODEL}")
        page.wait_for_selector("text=workflow_id", timeout=30_000)
        page.wait_for_timeout(500)
        shot(page, "dbt-docs.png")
        # The lineage graph, as the button at the bottom right opens it, expanded, one level upstream.
        page.locator(".launcher-btn").first.click()
        page.locator("[ng-click='showExpanded()']").click()
        select = page.locator("input[ng-model='selectorService.selection.dirty.include']")
        select.fill("1+fct_workflows+")
        select.press("Enter")
        page.mouse.move(700, 450)  # no tooltip over the graph
        page.wait_for_timeout(2500)  # the graph's layout
        shot(page, "dbt-docs-lineage.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
