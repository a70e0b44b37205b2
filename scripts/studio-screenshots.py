"""Retake the README's studio screenshots (docs/studio-*.png) with the built-in demo model.

    .venv/bin/python scripts/studio-screenshots.py [--seed 7]

Starts `nano-banana studio` as a user would (no --base: the demo model), drives it in Debian's
headless Chromium through Playwright, and saves the Create page with a result, a base-vs-LoRA
comparison and the gallery. Uses a throwaway gallery so the pictures show only this run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS.parent / "tests"))
from chromium import BROWSER_ARGS, CHROMIUM  # noqa: E402  (the tests' browser setup)

VIEWPORT = {"width": 1400, "height": 1250}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_studio(gallery: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "NANO_BANANA_GALLERY": str(gallery), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "nano_banana.cli", "studio", "--port", str(port)],
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the studio did not start within 2 minutes")


def shot(page, name: str) -> None:
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(DOCS / name))
    print(DOCS / name)


def type_prompt(page, text: str) -> None:
    box = page.get_by_role("textbox", name="What to take apart")
    box.fill(text)
    box.press("Control+Enter")
    expect(page.get_by_test_id("stCode").first).to_contain_text(text)


def set_seed(page, seed: int) -> None:
    """A locked seed, so the README's pictures can be reproduced (a typed seed locks itself)."""
    box = page.locator(".st-key-f_seed input")
    box.fill(str(seed))
    box.press("Enter")
    expect(page.locator(".st-key-f_seed_lock input")).to_be_checked()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as gallery:
        process, url = start_studio(Path(gallery))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=BROWSER_ARGS
                )
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(120_000)
                page.goto(url)
                page.get_by_role("button", name="Generate").wait_for()
                type_prompt(page, "a mechanical watch")
                set_seed(page, args.seed)
                page.get_by_role("button", name="Generate").click()
                page.get_by_role("button", name="Download PNG").first.wait_for()
                shot(page, "studio-create.png")

                type_prompt(page, "a professional camera")
                page.locator(".st-key-f_mode").get_by_text("Base vs LoRA", exact=True).click()
                page.get_by_role("button", name="Generate").click()
                page.get_by_role("button", name="Download side-by-side sheet").wait_for()
                shot(page, "studio-compare.png")

                page.get_by_role("link", name="Gallery").click()
                page.get_by_role("textbox", name="Search prompts").wait_for()
                expect(page.get_by_test_id("stImage").first).to_be_visible()
                shot(page, "studio-gallery.png")
                browser.close()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)


if __name__ == "__main__":
    main()
