"""Where the shipped demo model lives, and its recommended settings.

``nano-banana demo build`` writes ``assets/demo/`` inside the package: ``base/``
(a diffusers SDXL folder), ``structure_lora.safetensors`` and ``demo.toml``.
``generate.spec.EngineSpec`` resolves to them when no base is given, which is
the CLI's and the studio's default. The settings live here rather than beside the
build (``build.py``: torch, the trainer) so that generating with the demo imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..options import reject_unknown

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEMO_NAME = "nano-banana demo (tiny SDXL architecture)"
BASE_DIR_NAME = "nano-banana-demo"  # the folder name is the base's display name in records


@dataclass(frozen=True)
class DemoSettings:
    """The demo model's recommended generation settings (written to ``demo.toml``)."""

    width: int = 128  # the native size it was trained at
    height: int = 128
    steps: int = 20  # enough for the tiny model; keeps one image around a second on a CPU
    cfg: float = 1.5  # chosen on seeds 100+ (not eval's 0..15): higher CFG oversaturates colours
    lora_scale: float = 1.0  # the demo LoRA was trained for full strength
    sampler: str = "euler-a"  # a settings.Sampler value

    def request(self):
        """These settings as request defaults (the prompt and preset stay the user's)."""
        from ..settings import GenerationRequest, parse_sampler

        return GenerationRequest(
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg=self.cfg,
            lora_scale=self.lora_scale,
            sampler=parse_sampler(self.sampler.replace("_", "-")),  # older files wrote euler_a
        )


def demo_dir() -> Path:
    """The folder the demo assets are shipped in (it may be empty in a source checkout)."""
    return DEMO_DIR


def demo_base_dir() -> Path | None:
    """The demo base model folder, or None when the assets are not there."""
    base = DEMO_DIR / BASE_DIR_NAME
    return base if (base / "model_index.json").is_file() else None


def demo_lora_path() -> Path:
    """The demo structure LoRA file."""
    return DEMO_DIR / "structure_lora.safetensors"


def recommended_request(base: str | Path):
    """Request defaults for a base model: a demo build's own settings, SDXL's otherwise.

    ``base`` is a resolved one (``EngineSpec.resolve`` turns "no --base" into the demo).
    A demo model rebuilt elsewhere (``nano-banana demo build --out DIR``) has its
    ``demo.toml`` beside it, and that file's settings apply to it the same way.
    """
    from ..settings import GenerationRequest

    settings = demo_settings_path(base)
    return demo_settings(settings).request() if settings else GenerationRequest()


def demo_settings_path(base: str | Path) -> Path | None:
    """The ``demo.toml`` of a resolved base that is a demo model (shipped or rebuilt), else None."""
    demo = demo_base_dir()
    if demo is not None and Path(base).resolve() == demo.resolve():
        return DEMO_DIR / "demo.toml"
    if Path(base).is_dir():
        beside = Path(base).resolve().parent / "demo.toml"
        if beside.is_file():
            return beside
    return None


def demo_settings(path: Path | None = None) -> DemoSettings:
    """The demo's recommended generation settings from ``demo.toml`` (defaults if it is missing)."""
    path = path or DEMO_DIR / "demo.toml"
    data = demo_toml_table(path, "settings")
    reject_unknown(data, DemoSettings, where=f"'{path}'", what="demo setting")
    return DemoSettings(**data)


def recorded_timings(path: Path) -> dict[str, float]:
    """The ``[build_seconds]`` of a ``demo.toml``, named as ``build_demo`` names its steps."""
    seconds = demo_toml_table(path, "build_seconds")
    return {k.replace("_", " "): float(v) for k, v in seconds.items()}


def demo_toml_table(path: Path, table: str) -> dict:
    """One table of a ``demo.toml`` (empty when the file or the table is missing)."""
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8")).get(table, {})
