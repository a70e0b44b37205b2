"""The Create page's frictions, fixed (issue 14), in a real browser at 1400x900 on the demo model.

A press of Generate answers in view without scrolling (a refusal, the queue
place or progress, the preview, the result), Generate is disabled while the job
runs, Cancel says "Cancelling…" within a second, and the seed lock is on screen
and keeps or draws seeds. Screenshots go to artifacts/ for a human to look at.
A reload keeps the page: the last result, the form and this tab's earlier images.
The studio and browser helpers are test_studio_browser's.
"""

from __future__ import annotations

import time

import pytest
from test_studio_browser import (
    UI_TIMEOUT_MS,
    create_page,
    launched_chromium,
    running_studio,
    shot,
    sync_api,
    type_prompt,
)

pytestmark = pytest.mark.slow  # a real studio server driven by a real browser

LAPTOP = {"width": 1400, "height": 900}  # the size the issue was found at
CANCEL_ANSWER_S = 1.0  # from the press to "Cancelling…" on screen (the issue saw 6-17 s)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    with running_studio([], tmp_path_factory.mktemp("create-gallery"), "studio-create.log") as url:
        yield url


@pytest.fixture(scope="module")
def chromium():
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium, demo_url):
    with create_page(chromium, demo_url, LAPTOP) as page:
        yield page


def in_view(locator) -> bool:
    """On screen without scrolling: inside the window's 1400x900."""
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"]


def generate_button(page):
    return page.locator(".st-key-generate button")


def seed_box(page):
    return page.locator(".st-key-f_seed input")


def seed_lock(page):
    return page.locator(".st-key-f_seed_lock input")


def choose_sweep_of_many_steps(page) -> None:
    """A job long enough to watch: three images of the most steps the slider offers."""
    page.locator(".st-key-f_mode").get_by_text("LoRA scale sweep", exact=True).click()
    page.get_by_text("One image per LoRA scale").wait_for()  # the rerun is done
    page.get_by_text("Sampling and size").click()
    steps = page.locator(".st-key-f_steps").get_by_role("slider")
    steps.wait_for()
    steps.focus()
    steps.press("End")
    sync_api.expect(steps).to_have_value("80")
    page.get_by_text("Sampling and size").click()


def test_a_press_answers_by_the_button_without_scrolling(page):
    button = generate_button(page)
    for widget in (button, seed_box(page), page.get_by_role("button", name="Vary")):
        assert in_view(widget)
    button.click()  # nothing typed: the grey example is not a prompt
    refusal = page.get_by_text("the prompt is empty")
    refusal.wait_for()
    assert in_view(refusal)
    sync_api.expect(page.get_by_test_id("stProgress")).to_have_count(0)

    type_prompt(page, "a mechanical watch")
    sync_api.expect(refusal).to_have_count(0)  # the prompt is there now
    page.locator(".st-key-f_mode").get_by_text("Base vs LoRA", exact=True).click()
    button.click()
    # The same press: the button says it is busy, and the job's state shows under it.
    sync_api.expect(button).to_be_disabled()
    sync_api.expect(button).to_have_text("Generating…")
    answer = page.get_by_test_id("stProgress").or_(page.get_by_test_id("stImage")).first
    answer.wait_for()
    assert in_view(answer)
    page.get_by_role("button", name="Download side-by-side sheet").wait_for()
    sync_api.expect(button).to_be_enabled()
    sync_api.expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # run is over
    assert in_view(page.get_by_test_id("stImage").first)  # the result's top, in view
    shot(page, "studio-create-result-in-view.png")


def round_trip_s(page) -> float:
    """Seconds from a press to its answer on screen for a plain click (Vary): what this machine
    takes for any answer now (a shared 2-core box under load takes up to a second itself)."""
    seed = int(seed_box(page).input_value())
    page.get_by_role("button", name="Vary").click()
    pressed = time.monotonic()
    sync_api.expect(seed_box(page)).to_have_value(str(seed + 1))
    return time.monotonic() - pressed


def test_cancel_answers_within_a_second_and_the_preview_shows(page):
    type_prompt(page, "a professional camera")
    choose_sweep_of_many_steps(page)
    generate_button(page).click()
    progress = page.get_by_test_id("stProgress")
    sync_api.expect(progress).to_contain_text(" / 80")  # "Step n / 80 · image 1 of 3 · …"
    sync_api.expect(progress).to_contain_text("left")
    preview = page.get_by_text("Rough preview")
    preview.wait_for()
    assert in_view(preview)
    shot(page, "studio-create-progress.png")

    # From the moment the press lands (Playwright's click may first wait out a redraw of the
    # button: the watcher redraws it every second) to an answer on screen: "Cancelling…", or
    # already "Cancelled." when the job stopped before the page was redrawn.
    baseline = round_trip_s(page)
    page.get_by_role("button", name="Cancel").click()
    pressed = time.monotonic()
    answer = progress.filter(has_text="Cancelling…").or_(page.get_by_text("Cancelled."))
    answer.first.wait_for(timeout=5000)
    answered = time.monotonic() - pressed
    limit = max(CANCEL_ANSWER_S, 2 * baseline)
    assert answered < limit, f"Cancel answered after {answered:.2f} s (a click: {baseline:.2f} s)"
    page.get_by_text("Cancelled.").wait_for()
    sync_api.expect(generate_button(page)).to_be_enabled()


def result_caption(page, seed: int | str):
    """The result's "Seed N" caption (the history strip shows earlier images as buttons)."""
    return page.get_by_test_id("stImageCaption").get_by_text(f"Seed {seed}", exact=True)


def press_and_wait_for_seed(page, old_seed: int | None) -> None:
    """Generate, then wait for the new result (the old one is put away while the job runs)."""
    generate_button(page).click()
    if old_seed is not None:
        sync_api.expect(result_caption(page, old_seed)).to_have_count(0)
    sync_api.expect(generate_button(page)).to_be_enabled()
    page.get_by_role("button", name="Download PNG").wait_for()


def test_the_seed_lock_is_on_screen_and_keeps_or_draws_the_seed(page):
    type_prompt(page, "a sneaker")
    assert in_view(seed_lock(page)) and not seed_lock(page).is_checked()
    first = int(seed_box(page).input_value())
    page.get_by_role("button", name="Vary").click()
    sync_api.expect(seed_box(page)).to_have_value(str(first + 1))
    sync_api.expect(seed_lock(page)).to_be_checked()  # a varied seed is a seed wanted
    locked = result_caption(page, first + 1)
    press_and_wait_for_seed(page, None)
    sync_api.expect(locked).to_be_visible()
    press_and_wait_for_seed(page, first + 1)
    sync_api.expect(locked).to_be_visible()  # locked: the same seed again

    page.locator(".st-key-f_seed_lock").get_by_text("Lock seed").click()  # unlock
    sync_api.expect(seed_lock(page)).not_to_be_checked()
    press_and_wait_for_seed(page, first + 1)
    drawn = seed_box(page).input_value()
    assert drawn != str(first + 1)  # unlocked: a new seed, and the box shows it
    sync_api.expect(result_caption(page, drawn)).to_be_visible()
    shot(page, "studio-create-seed-lock.png")


def test_a_reload_keeps_the_result_the_form_and_this_sessions_images(page):
    """A reload (the tab's id stays in the address) shows the last press's grid again, the form
    as it was, and the earlier images as thumbnails that can be shown again."""
    type_prompt(page, "a mechanical watch")
    press_and_wait_for_seed(page, None)
    first_seed = seed_box(page).input_value()  # unlocked: the seed drawn, shown in the box
    type_prompt(page, "a professional camera")
    count = page.locator(".st-key-f_count input")
    count.fill("2")
    count.press("Enter")
    sync_api.expect(count).to_have_value("2")
    generate_button(page).click()
    downloads = page.get_by_role("button", name="Download PNG")
    sync_api.expect(downloads).to_have_count(2, timeout=UI_TIMEOUT_MS)  # the grid of two
    assert "c=" in page.url

    page.reload()
    generate_button(page).wait_for()
    sync_api.expect(page.get_by_role("textbox", name="What to take apart")).to_have_value(
        "a professional camera"
    )
    sync_api.expect(count).to_have_value("2")
    sync_api.expect(downloads).to_have_count(2, timeout=UI_TIMEOUT_MS)  # the last press again
    page.get_by_text("This session's images").wait_for()
    earlier = page.locator("[class*='st-key-hist_'] button").filter(has_text=f"Seed {first_seed}")
    sync_api.expect(earlier).to_have_count(1)
    earlier.scroll_into_view_if_needed()
    shot(page, "studio-create-history.png")
    earlier.click()
    sync_api.expect(page.get_by_text(f"· seed {first_seed}")).to_be_visible()
    page.get_by_role("button", name="Back to the latest result").click()
    sync_api.expect(downloads).to_have_count(2)
