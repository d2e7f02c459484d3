"""Debian's Chromium for the developer scripts that drive it through Playwright (screenshots,
bench-page): Playwright's own browser download needs the internet."""

from __future__ import annotations

import shutil

MISSING = "no chromium: apt-get install chromium (make install does it as root)"


def chromium() -> str | None:
    """The Chromium executable on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright):
    """A headless Chromium from `chromium()` (root in a container needs `--no-sandbox`)."""
    return playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
