"""The access token (studio.auth) through Streamlit's AppTest: without it no page runs and the
model is never touched; the link's ?token= or the form lets a session in; a wrong one says so."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from nano_banana.generate.spec import EngineSpec  # noqa: E402
from nano_banana.studio import APP_PATH  # noqa: E402
from nano_banana.studio.auth import token_matches  # noqa: E402
from nano_banana.studio.config import ENV_VAR, StudioConfig  # noqa: E402

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(tiny_sdxl_dir, tmp_path, monkeypatch):
    config = StudioConfig(
        engine=EngineSpec(base=str(tiny_sdxl_dir), device="cpu"),
        gallery=str(tmp_path / "gallery"),
        upload_dir=str(tmp_path / "uploads"),
        workers=0,
        token=TOKEN,
    )
    monkeypatch.setenv(ENV_VAR, config.to_env()[ENV_VAR])
    return config


def app() -> AppTest:
    return AppTest.from_file(str(APP_PATH), default_timeout=60)


def generate_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.label == "Generate"]


def test_without_the_token_only_the_token_form_shows(guarded):
    at = app().run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Access token"]
    assert not generate_buttons(at) and not at.error


def test_the_links_token_lets_the_session_in(guarded):
    at = app()
    at.query_params["token"] = TOKEN
    at.run()
    assert not at.exception and generate_buttons(at)


def test_a_typed_token_lets_the_session_in_and_a_wrong_one_is_named(guarded):
    at = app().run()
    at.text_input[0].input("wrong").run()
    assert any("not this studio's" in e.value for e in at.error) and not generate_buttons(at)
    at.text_input[0].input(TOKEN).run()
    assert not at.exception and generate_buttons(at)


def test_token_comparison():
    assert token_matches("abc", "abc")
    assert not token_matches("abd", "abc") and not token_matches(None, "abc")
    assert not token_matches(["abc"], "abc")
