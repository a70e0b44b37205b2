"""The studio end to end: `nano-banana studio` on a free port, driven by headless Chromium.

Debian's /usr/bin/chromium (scripts/install-browser) through Playwright's Python
API; screenshots go to artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chromium import BROWSER_ARGS, CHROMIUM

if not CHROMIUM.exists() and os.environ.get("CI"):
    # CI installs the browser (make test -> scripts/install-browser); never skip these there.
    raise RuntimeError("CI run without /usr/bin/chromium: scripts/install-browser failed")
if not CHROMIUM.exists():
    pytest.skip(
        "needs Debian's chromium at /usr/bin/chromium (run scripts/install-browser)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")

from nano_banana.gallery.png import read_record  # noqa: E402
from nano_banana.gallery.store import Gallery  # noqa: E402

pytestmark = pytest.mark.slow  # a real studio server driven by a real browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WATCH_PARTS = ("strap top", "dial", "case", "crown", "movement", "strap bottom", "buckle")
VIEWPORT = {"width": 1400, "height": 1250}
TALL_HEIGHT = 2400  # a board's result: the board, its check, parts list and callouts
START_TIMEOUT_S = 120
UI_TIMEOUT_MS = 90_000  # first page load loads the model; CI boxes are slow and shared


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"studio exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"studio did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-gallery")


@contextlib.contextmanager
def running_studio(model_args: list[str], gallery: Path, log_name: str):
    """The real command, as a user starts it, on a free port with a temporary gallery."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    log = ARTIFACTS / log_name
    env = {
        **os.environ,
        "NANO_BANANA_GALLERY": str(gallery),
        "OMP_NUM_THREADS": "1",  # shared CI cores: spinning BLAS threads make jobs 10x slower
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-c",
        "from nano_banana.cli import main; main()",
        "studio",
        "--port",
        str(port),
        *model_args,
        "--device",
        "cpu",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def studio_url(tiny_sdxl_dir, tiny_lora, gallery_dir):
    """The studio on the tiny model and LoRA."""
    model = ["--base", str(tiny_sdxl_dir), "--lora", str(tiny_lora), "--max-lora-mb", "2"]
    with running_studio(model, gallery_dir, "studio-server.log") as url:
        yield url


@pytest.fixture(scope="module")
def demo_studio_url(tmp_path_factory):
    """The studio on the built-in demo model (no --base): its base draws parts a board can use."""
    gallery = tmp_path_factory.mktemp("browser-demo-gallery")
    with running_studio([], gallery, "studio-demo-server.log") as url:
        yield url


@contextlib.contextmanager
def launched_chromium():
    """Debian's Chromium through Playwright; every launch gets a fresh, empty profile folder."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as chromium:
        yield chromium


@contextlib.contextmanager
def create_page(browser, url: str, viewport: dict = VIEWPORT):
    """A fresh browser context on the studio's Create page."""
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    open_create(page, url)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser, studio_url):
    with create_page(browser, studio_url) as page:
        yield page


def open_create(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Generate").wait_for()


def type_prompt(page, text: str) -> None:
    box = page.get_by_role("textbox", name="What to take apart")
    box.fill(text)
    box.press("Control+Enter")  # Streamlit sends a text area's value on Ctrl+Enter or blur
    sync_api.expect(page.get_by_test_id("stCode").first).to_contain_text(text)


def press_generate_and_wait(page, done_label: str = "Download PNG") -> None:
    page.get_by_role("button", name="Generate").click()
    page.get_by_role("button", name=done_label).first.wait_for()


def shot(page, name: str) -> None:
    """A screenshot once every image on the page has loaded."""
    page.wait_for_function(
        "[...document.images].every(img => img.complete && img.naturalWidth > 0)"
    )
    page.screenshot(path=str(ARTIFACTS / name))


def result_images(page):
    return page.get_by_test_id("stImage")


def test_generate_download_and_find_it_in_the_gallery(page, studio_url, gallery_dir, tmp_path):
    type_prompt(page, "a mechanical watch")
    press_generate_and_wait(page)
    sync_api.expect(page.get_by_text("Layout tools")).to_be_visible()
    sync_api.expect(result_images(page)).to_have_count(1)
    shot(page, "studio-create.png")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download PNG").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    record = read_record(saved)
    assert record.request.prompt == "a mechanical watch"
    assert record.prompt_used.startswith("disassemble, knolling")
    (entry,) = Gallery.open(gallery_dir).list(query="a mechanical watch")
    assert saved.read_bytes() == entry.path.read_bytes()  # the saved file itself

    page.reload()
    page.get_by_role("button", name="Generate").wait_for()  # the new session is live
    page.get_by_role("link", name="Gallery").click()
    page.get_by_role("textbox", name="Search prompts").wait_for()
    sync_api.expect(page.get_by_text("a mechanical watch", exact=True)).to_have_count(1)
    open_buttons = page.locator("[class*='st-key-g_open_'] button")  # one per gallery card
    sync_api.expect(open_buttons).to_have_count(1)
    sync_api.expect(page.get_by_test_id("stImage")).to_have_count(1)  # the thumbnail
    shot(page, "studio-gallery.png")
    open_buttons.click()
    page.get_by_role("button", name="Reuse settings").wait_for()
    sync_api.expect(page.get_by_text("All metadata")).to_be_visible()
    shot(page, "studio-gallery-detail.png")


def test_compare_shows_base_and_lora_side_by_side(page):
    type_prompt(page, "a professional camera")
    page.locator(".st-key-f_mode").get_by_text("Base vs LoRA", exact=True).click()
    sync_api.expect(page.get_by_text("The base model alone beside base + LoRA")).to_be_visible()
    press_generate_and_wait(page, "Download side-by-side sheet")
    sync_api.expect(result_images(page)).to_have_count(3)  # and the before/after view
    sync_api.expect(page.get_by_text("base model (LoRA off)")).to_be_visible()
    sync_api.expect(page.get_by_text("base + LoRA (scale 0.8)")).to_be_visible()
    sync_api.expect(page.get_by_role("button", name="Download PNG")).to_have_count(2)
    shot(page, "studio-compare.png")


def test_a_bad_lora_upload_is_a_message(page, tmp_path):
    fake = tmp_path / "totally-a-lora.safetensors"
    fake.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00not safetensors but a pickle")
    page.get_by_text("Upload a LoRA").click()
    page.locator('input[type=file][accept*=".safetensors"]').set_input_files(str(fake))
    message = page.get_by_text("LoRA refused")
    message.wait_for()
    sync_api.expect(message).to_contain_text("totally-a-lora")
    shot(page, "studio-bad-lora.png")
    # The page still works after the refusal.
    type_prompt(page, "a sneaker")
    press_generate_and_wait(page)


def test_two_users_generating_at_once_get_their_own_images(browser, studio_url, tmp_path):
    users = []
    for prompt in ("a game controller", "a denim jacket"):
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        open_create(page, studio_url)
        type_prompt(page, prompt)
        users.append((context, page, prompt))
    try:
        for _, page, _ in users:  # both press Generate before either finishes
            page.get_by_role("button", name="Generate").click()
        for i, (_, page, prompt) in enumerate(users):
            page.bring_to_front()
            page.get_by_role("button", name="Download PNG").wait_for()
            shot(page, f"studio-two-users-{i}.png")
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Download PNG").click()
            path = tmp_path / f"user{i}.png"
            download_info.value.save_as(path)
            assert read_record(path).request.prompt == prompt
    finally:
        for context, _, _ in users:
            context.close()


def test_a_parts_first_board_shows_its_parts_list_and_check_and_gives_a_csv(
    browser, demo_studio_url, tmp_path
):
    with create_page(browser, demo_studio_url) as page:
        type_prompt(page, "a mechanical watch")
        page.get_by_text("Parts-first board", exact=True).click()
        sync_api.expect(
            page.get_by_text("Parts of a mechanical watch, from the parts")
        ).to_be_visible()
        sync_api.expect(page.get_by_test_id("stDataFrame")).to_have_count(1)  # the parts table
        press_generate_and_wait(page, "Download parts list (CSV)")
        sync_api.expect(page.get_by_text("Board check")).to_be_visible()
        parts = page.get_by_role("listitem")
        sync_api.expect(parts).to_have_count(7)  # the watch's catalog entry, numbered
        listed = [text.split(" · ")[0].strip() for text in parts.all_inner_texts()]
        assert sorted(listed) == sorted(WATCH_PARTS)
        sync_api.expect(page.get_by_text("Callouts from the board's plan")).to_be_visible()
        sync_api.expect(result_images(page)).to_have_count(2)  # the board and its callouts
        # Streamlit scrolls inside its own pane, not the document: a tall window shows it all.
        page.set_viewport_size({**VIEWPORT, "height": TALL_HEIGHT})
        shot(page, "studio-board.png")

        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download parts list (CSV)").click()
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        assert saved.name.endswith("_parts.csv")
        rows = list(csv.DictReader(saved.open(encoding="utf-8")))
        assert [r["number"] for r in rows] == [str(n) for n in range(1, 8)]
        assert [r["name"] for r in rows] == listed  # the page's list, in its order
        assert all(int(r["x1"]) > int(r["x0"]) and int(r["y1"]) > int(r["y0"]) for r in rows)
