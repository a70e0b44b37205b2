"""From the user's words to the prompt the text encoders see: scenario presets (data files) and the prompt plan.

Each module is one job; the names below are the stage's public API, imported on first use."""

from ..lazy import lazy_exports

_EXPORTS = {
    "Preset": ".presets",
    "load_presets": ".presets",
    "get_preset": ".presets",
    "user_preset_dir": ".presets",
    "PromptPlan": ".plan",
    "plan_prompt": ".plan",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
