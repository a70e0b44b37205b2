"""The final prompt is counted with both tokenizers; truncation is reported and recorded."""

import re

import pytest

from nano_banana.model.tiny import build_tokenizer
from nano_banana.prompt.plan import fit_to_window, plan_prompt
from nano_banana.prompt.presets import load_presets


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A tokenizer that knows every word of the shipped presets (as a real CLIP vocabulary does)."""
    words = re.findall(
        r"[a-z]+", " ".join(p.template + " " + p.trigger for p in load_presets().values())
    )
    return build_tokenizer(words + ["watch"], tmp_path_factory.mktemp("tok"))


def test_short_prompt_is_untouched(tokenizer, tmp_path):
    plan = plan_prompt(load_presets(tmp_path)["knolling"], "a watch", None, [tokenizer, tokenizer])
    assert not plan.truncated and plan.warning() is None
    assert plan.prompt.startswith("disassemble, knolling")
    assert plan.negative == load_presets(tmp_path)["knolling"].negative
    assert 0 < plan.tokens <= plan.limit == 75


def test_long_prompt_is_cut_reported_and_exact(tokenizer, tmp_path):
    long = " ".join(["watch"] * 100)
    plan = plan_prompt(load_presets(tmp_path)["none"], long, "", [tokenizer, tokenizer])
    assert plan.truncated and plan.tokens == 100
    assert plan.prompt == " ".join(["watch"] * 75)  # the used prompt is a prefix of what was asked
    assert plan.dropped.strip() == " ".join(["watch"] * 25)
    assert "100 tokens" in plan.warning() and "75" in plan.warning()


def test_non_ascii_survives_unchanged(tokenizer):
    text = "a watch ⌚ with مرحبا and ü"
    kept, tokens, _ = fit_to_window(text, [tokenizer])
    assert kept == text and tokens > 5


def test_strictest_tokenizer_wins(tokenizer, tmp_path):
    narrow = build_tokenizer([], tmp_path)  # no merges: every letter is a token
    text = "watch " * 20
    kept, tokens, _ = fit_to_window(text, [tokenizer, narrow])
    assert tokens > 75 and len(kept) < len(text.strip())
