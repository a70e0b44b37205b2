"""From the user's words to the prompt the text encoders actually see.

The preset wraps the user's prompt with trigger words; then both CLIP
tokenizers count the tokens. CLIP reads 77 positions, two of them BOS/EOS, so
anything past 75 content tokens is dropped by the pipeline with only a log
line. We cut the text ourselves at the last token that fits, tell the user,
and hand the cut text to the pipeline, so the recorded prompt is the used one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .presets import Preset

CLIP_WINDOW = 77  # positions of both SDXL text encoders


@dataclass(frozen=True)
class PromptPlan:
    """The final prompts for one request and what the tokenizers made of them."""

    prompt: str  # final positive prompt as the text encoders get it (possibly cut)
    negative: str
    tokens: int  # content tokens of the full, uncut positive prompt
    limit: int  # content tokens that fit
    truncated: bool
    dropped: str  # text that did not fit ("" when nothing was cut)
    negative_truncated: bool

    def warning(self) -> str | None:
        if not (self.truncated or self.negative_truncated):
            return None
        if self.truncated:
            return (
                f"prompt has {self.tokens} tokens, CLIP reads {self.limit}: "
                f"ignored the end '{self.dropped.strip()}'"
            )
        return f"negative prompt is longer than {self.limit} CLIP tokens and was cut"


def plan_prompt(preset: Preset, user_prompt: str, negative: str | None, tokenizers) -> PromptPlan:
    """Apply the preset, then fit both prompts to the tokenizers' window."""
    full = preset.render(user_prompt)
    neg_full = preset.negative if negative is None else negative
    cut, tokens, limit = fit_to_window(full, tokenizers)
    neg_cut, _, _ = fit_to_window(neg_full, tokenizers)
    return PromptPlan(
        prompt=cut,
        negative=neg_cut,
        tokens=tokens,
        limit=limit,
        truncated=cut != full,
        dropped=full[len(cut) :],
        negative_truncated=neg_cut != neg_full,
    )


def fit_to_window(text: str, tokenizers) -> tuple[str, int, int]:
    """Cut ``text`` to what every tokenizer reads; return (text, tokens, limit).

    SDXL's two tokenizers share one vocabulary but we check both, since a
    user's model may pair different ones; the strictest cut wins.
    """
    kept, most = text, 0
    limit = CLIP_WINDOW - 2
    for tok in tokenizers:
        if tok is None:
            continue
        window = min(int(getattr(tok, "model_max_length", CLIP_WINDOW)), 10_000) - 2
        limit = min(limit, window)
        count, cut = _cut_at(tok, text, window)
        most = max(most, count)
        if len(cut) < len(kept):
            kept = cut
    return kept, most, limit


def _cut_at(tokenizer, text: str, window: int) -> tuple[int, str]:
    """Token count of ``text`` and its longest prefix that fits in ``window`` tokens."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError):
        # Slow (pure-Python) tokenizers have no offsets: cut by decoding instead.
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= window:
            return len(ids), text
        return len(ids), tokenizer.decode(ids[:window])
    if len(offsets) <= window:
        return len(offsets), text
    end = offsets[window - 1][1]
    return len(offsets), text[:end].rstrip()
