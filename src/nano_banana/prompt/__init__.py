"""From the user's words to the prompt the text encoders see: scenario presets (data files) and the prompt plan."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".presets": "Preset load_presets get_preset user_preset_dir",
        ".plan": "PromptPlan plan_prompt",
    },
)
