"""User text shown in the studio's Markdown is shown as written: no image, link or markup."""

import html

import pytest
from markdown_it import MarkdownIt

from nano_banana.studio.ui_common import plain

HOSTILE = [
    "![t](http://host/x.png) watch",
    "[click](javascript:alert(1)) a watch",
    "<img src=x onerror=alert(1)> a watch",
    "a **bold** _watch_ `code` # heading",
    ":red[alert] :smile: $x^2$ a watch",
    "1. list\n- item\n> quote",
    "back\\slash and \\! escapes",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_text_renders_as_its_own_characters(text):
    rendered = MarkdownIt("commonmark").render(plain(text))
    assert "<img" not in rendered and "<a " not in rendered and "<strong>" not in rendered
    assert "<code>" not in rendered and "<h1>" not in rendered and "<li>" not in rendered
    # what a reader sees: the text itself (line breaks aside)
    seen = html.unescape(rendered.replace("<p>", "").replace("</p>", "")).strip()
    assert seen.split() == text.split()


def test_unescaped_markdown_would_have_fetched_the_image():
    """The check above can fail: the same text unescaped is an image."""
    assert "<img" in MarkdownIt("commonmark").render(HOSTILE[0])
