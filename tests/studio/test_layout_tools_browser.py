"""The layout tools in a real browser on the demo model: a comparison's before/after slider
and a board's callout editor, edited by hand. Screenshots of both go to artifacts/
(studio-compare-slider.png, studio-callouts.png) for the README. The studio and browser
helpers are test_studio_browser's.
"""

from __future__ import annotations

import contextlib
import csv

import pytest
from test_studio_browser import (
    ARTIFACTS,
    create_page,
    launched_chromium,
    running_studio,
    shot,
    sync_api,
    type_prompt,
)

pytestmark = pytest.mark.slow  # a real studio server driven by a real browser

TALL = {"width": 1400, "height": 2400}  # Streamlit scrolls its own pane: show the whole result
# The data editor's geometry with the editor's fixed column widths (Streamlit's "small" is 75 px,
# "medium" 200 px; rows are 35 px, the header is row 0).
ROW_PX, SMALL_PX, MEDIUM_PX = 35, 75, 200
NAME_X = 2 * SMALL_PX + MEDIUM_PX / 2  # the middle of the name column (show, order, name)
NICER = {"case": "steel case", "dial": "sunburst dial", "crown": "winding crown",
         "strap top": "leather strap (top)", "buckle": "pin buckle"}  # fmt: skip


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    gallery = tmp_path_factory.mktemp("layout-tools-gallery")
    with running_studio([], gallery, "studio-layout-tools.log") as url:
        yield url


def view_source(page) -> str:
    return page.locator("[class*='st-key-compare_view_'] img").get_attribute("src")


def rename_first_row(page, editor, name: str) -> None:
    """Select the first row's name cell and type the new name over it (the grid opens its
    cell editor on the first key), then send it with Enter."""
    sync_api.expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()  # no rerun running
    editor.locator("canvas").first.wait_for()
    editor.click(position={"x": NAME_X, "y": ROW_PX * 1.5})
    page.keyboard.type(name[0])
    cell = page.get_by_test_id("portal").locator("textarea")
    cell.wait_for(timeout=5_000)
    cell.fill(name)
    page.keyboard.press("Enter")


def downloaded_rows(page, box, tmp_path) -> list[dict]:
    with page.expect_download() as download_info:
        box.get_by_role("button", name="Download parts list (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    return list(csv.DictReader(saved.open(encoding="utf-8")))


def renamed(page, box, name: str, tmp_path) -> list[dict]:
    """Rename the first part until the parts list says so: an edit typed while the page is
    still redrawing (the slider's reruns) can be lost, as a user would see and type again."""
    drawing = box.get_by_test_id("stImage").locator("img")
    for _ in range(3):
        before = drawing.get_attribute("src")
        rename_first_row(page, box.get_by_test_id("stDataFrame"), name)
        with contextlib.suppress(AssertionError):  # the callouts drawn again (or not yet)
            sync_api.expect(drawing).not_to_have_attribute("src", before, timeout=20_000)
        rows = downloaded_rows(page, box, tmp_path)
        if rows[0]["name"] == name:
            return rows
    pytest.fail(f"the name {name!r} typed into the callout table never reached its parts list")


def test_the_compare_slider_and_a_boards_callout_editor(tmp_path, demo_url):
    with launched_chromium() as browser, create_page(browser, demo_url, TALL) as page:
        type_prompt(page, "a mechanical watch")
        page.locator(".st-key-f_mode").get_by_text("Base vs LoRA", exact=True).click()
        page.get_by_text("Parts-first board", exact=True).click()  # a third panel: the board
        page.get_by_role("button", name="Generate").click()
        page.get_by_role("button", name="Download side-by-side sheet").wait_for()

        # 1. The slider moves the split: the view is drawn again with the new one.
        slider = page.get_by_role("slider", name="Before / after split")
        sync_api.expect(slider).to_have_value("50")
        before = view_source(page)
        slider.focus()
        for _ in range(10):
            page.keyboard.press("ArrowLeft")
        sync_api.expect(slider).to_have_value("40")
        page.wait_for_function(
            "old => document.querySelector(\"[class*='st-key-compare_view_'] img\").src != old",
            arg=before,
        )
        view = page.locator("[class*='st-key-compare_view_']")
        shot(page, "studio-compare-slider-page.png")  # every image loaded first
        view.screenshot(path=str(ARTIFACTS / "studio-compare-slider.png"))

        # 2. The board's callouts, from its plan: rename the first part by hand.
        page.get_by_text("Board: composed board").click()
        box = page.locator("[class*='st-key-callout_editor_board_']")
        box.get_by_test_id("stDataFrame").wait_for()
        first = page.get_by_role("listitem").first.inner_text().split(" · ")[0].split(". ")[-1]
        new_name = NICER.get(first.strip(), f"{first.strip()} (edited)")
        rows = renamed(page, box, new_name, tmp_path)
        assert rows[0]["number"] == "1"
        assert list(rows[0]) == ["number", "name", "copy", "count", "look", "x0", "y0", "x1", "y1"]
        page.keyboard.press("Escape")
        shot(page, "studio-callouts-page.png")
        box.screenshot(path=str(ARTIFACTS / "studio-callouts.png"))
