"""The browser the end-to-end tests and the studio benchmark drive: Debian's Chromium
(scripts/install-browser) through Playwright, with flags for a headless, quiet, offline run."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Two users are two pages of one browser here: keep the one not in front polling at full speed.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
