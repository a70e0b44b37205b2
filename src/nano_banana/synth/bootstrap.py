"""``lora bootstrap``: a structure LoRA from nothing but a base model, in one resumable command.

The stages, each also a command of its own:

1. ``synth``: parts-first boards the base draws itself (``dataset synth``) into OUT/boards;
2. ``check``: the trainer's dataset check on them (``dataset check``);
3. ``train``: the LoRA on the boards (``train``) into OUT/lora, checkpointing as it goes;
4. ``eval``: LoRA off against on, per preset (``eval``), into OUT/eval-PRESET.

``OUT/bootstrap.json`` records the settings and the stages done. A rerun with the
same settings skips finished stages and picks up the unfinished one where it
stopped: the set makes only its missing boards, training resumes from its latest
checkpoint. Other settings in the same folder are refused rather than mixed.

The training defaults (``sdxl_train_config``) are chosen for real SDXL on a 24 GB
GPU; a demo base gets the demo LoRA's own recipe (``demo.build.demo_train_config``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import InvalidSettingError
from .dataset import SynthConfig, SynthReport, check_names, make_set, prepare_synth

STAGES = ("synth", "check", "train", "eval")
STATE_FILE = "bootstrap.json"
LORA_NAME = "structure_lora"
Log = Callable[[str], None]


@dataclass(frozen=True)
class BootstrapConfig:
    """The set to draw, how long to train, and how many seeds the eval takes."""

    synth: SynthConfig
    steps: int | None = None  # None: the recipe's own (2000 for SDXL, the demo's for a demo)
    eval_seeds: int = 4  # per object and preset, each drawn with the LoRA off and on
    quick: bool = False  # a small run of every stage, to check the recipe (see quick_config)

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise InvalidSettingError(f"--steps must be at least 1, got {self.steps}")
        if self.eval_seeds < 0:
            raise InvalidSettingError(
                f"--eval-seeds must be 0 (no eval) or more, got {self.eval_seeds}"
            )

    def settings(self) -> dict[str, Any]:
        """What decides the run's outputs, as JSON data (stored to refuse a mixed rerun)."""
        return json.loads(json.dumps(asdict(self)))


# Every design scenario and a spread of common products: the LoRA should learn to take things
# apart, not one object.
SDXL_OBJECTS = ("watch", "camera", "speaker", "controller", "sneaker", "jacket", "smartphone",
                "headphones", "toaster", "drone", "keyboard", "desk lamp", "backpack")  # fmt: skip


def default_objects(spec) -> tuple[str, ...]:
    """The objects a base can draw the parts of: a demo base knows only its world's."""
    from ..demo.assets import demo_settings_path

    base = spec.resolve().base if spec.base is None else spec.base
    if demo_settings_path(base) is not None:
        from ..demo.objects import OBJECTS

        return tuple(o.phrase for o in OBJECTS)
    return SDXL_OBJECTS


# --quick: under 15 minutes for the whole recipe on the demo base on a 2-core CPU.
QUICK_BOARDS = 40
QUICK_STEPS = 300
QUICK_EVAL_SEEDS = 2


def quick_config(config: BootstrapConfig) -> BootstrapConfig:
    """A small run of every stage: few boards, a short training, two eval seeds."""
    return replace(
        config, synth=replace(config.synth, count=min(config.synth.count, QUICK_BOARDS)),
        steps=min(config.steps or QUICK_STEPS, QUICK_STEPS),
        eval_seeds=min(config.eval_seeds, QUICK_EVAL_SEEDS), quick=True,
    )  # fmt: skip


@dataclass
class BootstrapResult:
    out_dir: Path
    lora_path: Path
    synth: SynthReport | None  # None when the stage was already done
    evals: dict[str, Any]  # preset -> EvalReport (empty with --eval-seeds 0)


# --- the state file --------------------------------------------------------------------------


def read_state(out: Path, settings: dict[str, Any]) -> list[str]:
    """The stages done in ``out`` by a run with these settings; other settings are refused."""
    path = out / STATE_FILE
    if not path.is_file():
        return []
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("settings") != settings:
        changed = sorted(k for k in settings if state.get("settings", {}).get(k) != settings[k])
        raise InvalidSettingError(
            f"'{out}' holds a bootstrap run with other settings ({', '.join(changed)} differ); "
            "rerun with the same options to resume it, or choose a new --out"
        )
    return list(state.get("done", []))


def mark_done(out: Path, settings: dict[str, Any], done: list[str], stage: str) -> None:
    done.append(stage)
    write_text(out / STATE_FILE, json.dumps({"settings": settings, "done": done}, indent=1))


# --- the training recipe -----------------------------------------------------------------------


def sdxl_train_config(base: str, data_dir: Path, out_dir: Path, seed: int):
    """Defaults for real SDXL on a 24 GB GPU: 1024 px, bf16 with gradient checkpointing, one
    image a step with 4 accumulated (batch 4), rank 16 on attention, feed-forward and
    convolutions (layout is spatial), 2000 steps at 1e-4, a validation split, best kept."""
    from ..training import config as tc

    return tc.TrainConfig(
        seed=seed,
        model=tc.ModelConfig(base=base, precision="bf16", grad_checkpointing=True),
        dataset=tc.DatasetConfig(data=str(data_dir), resolution=1024, trigger=""),
        adapter=tc.AdapterConfig(rank=16, alpha=16.0, targets="attn-ff-conv"),
        optim=tc.OptimConfig(lr=1e-4, warmup_steps=100, max_steps=2000, batch_size=1,
                             grad_accum=4),  # fmt: skip
        loss=tc.LossConfig(min_snr_gamma=5.0, noise_offset=0.05),
        samples=tc.SampleConfig(sample_every=0),
        output=tc.OutputConfig(out=str(out_dir), name=LORA_NAME, checkpoint_every=250),
        validation=tc.ValidationConfig(val_split=0.05, val_every=250, keep_best=True),
    )  # fmt: skip


def train_config_for(base: str, data_dir: Path, out_dir: Path, config: BootstrapConfig):
    """The recipe for this base (the demo's for a demo model), with the run's step count."""
    from ..demo.assets import demo_settings_path

    seed = config.synth.seed
    if demo_settings_path(base) is not None:
        from ..demo.build import BuildConfig, demo_train_config

        train = demo_train_config(Path(base), data_dir, out_dir, BuildConfig(seed=seed))
    else:
        train = sdxl_train_config(base, data_dir, out_dir, seed)
    if config.steps is not None:
        optim = replace(train.optim, max_steps=config.steps,
                        warmup_steps=min(train.optim.warmup_steps, config.steps // 4))  # fmt: skip
        train = replace(train, optim=optim)
    return train


# --- the stages -----------------------------------------------------------------------------------


def bootstrap(spec, config: BootstrapConfig, out_dir: str | Path, log: Log = print,
              synth_progress=None) -> BootstrapResult:  # fmt: skip
    """Run (or resume) every stage into ``out_dir``; ``spec`` is the base (an ``EngineSpec``)."""
    from ..prompt.presets import load_presets

    out = Path(out_dir)
    check_names(config.synth, load_presets(spec.preset_dir), out_dir=out)  # before the model
    spec = replace(spec.resolve() if spec.base is None else spec, loras=())
    settings = {"base": spec.base, **config.settings()}
    done = read_state(out, settings)
    boards, lora_dir = out / "boards", out / "lora"
    train_config = train_config_for(spec.base, boards, lora_dir, config)
    report = None
    if "synth" not in done:
        engine = spec.load()
        job = prepare_synth(engine, config.synth, boards)
        log(f"[1/4 synth] {config.synth.count} boards into {boards}")
        report = make_set(engine, job, spec.request_defaults(), synth_progress)
        log(report.format())
        mark_done(out, settings, done, "synth")
        del engine, job  # the trainer loads its own copy: two SDXLs would not fit 24 GB
        free_memory()
    if "check" not in done:
        log("[2/4 check] the trainer's dataset check")
        check_boards(boards, train_config.dataset.resolution, log)
        mark_done(out, settings, done, "check")
    lora_path = lora_dir / f"{LORA_NAME}.safetensors"
    if "train" not in done:
        log(f"[3/4 train] {train_config.optim.max_steps} steps into {lora_dir}")
        train_lora(train_config, lora_dir, log)
        stamp_lora(lora_path, config, spec.base)
        mark_done(out, settings, done, "train")
    evals = {}
    if "eval" not in done and config.eval_seeds:
        log(f"[4/4 eval] LoRA off vs on, {config.eval_seeds} seeds per object and preset")
        evals = run_evals(spec.load(), lora_path, config, out, spec, log)
        mark_done(out, settings, done, "eval")
    return BootstrapResult(out, lora_path, report, evals)


def free_memory() -> None:
    """Give back what the dropped engine held now (on a GPU, before the trainer loads the base)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_boards(boards: Path, resolution: int, log: Log) -> None:
    from ..training.check import check_dataset

    report = check_dataset(boards, resolution=resolution)
    log(report.format())
    if not report.ok:
        raise InvalidSettingError(
            f"the boards in '{boards}' failed the dataset check (above); fix or delete those "
            "files and rerun to resume"
        )


def train_lora(train_config, lora_dir: Path, log: Log):
    """Train, resuming from the latest checkpoint when an earlier run was stopped."""
    from ..training.checkpoint import find_latest
    from ..training.loop import format_summary, train

    if lora_dir.is_dir() and find_latest(lora_dir) is not None:
        log("  resuming from the latest checkpoint")
        train_config = replace(train_config, output=replace(train_config.output, resume="latest"))
    result = train(train_config, progress=True)
    log(format_summary(result))
    return result


def stamp_lora(lora_path: Path, config: BootstrapConfig, base: str) -> None:
    """The bootstrap's own settings and the presets' trigger words, in the LoRA's metadata and
    model card: the captions carried the triggers, so the trainer had none to record."""
    from safetensors.torch import load_file, save_file

    from ..atomic import atomic_path
    from ..lora.load import trigger_words_metadata
    from ..prompt.presets import load_presets

    presets = load_presets()
    triggers = [presets[p].trigger for p in config.synth.presets if p in presets]
    metadata = read_metadata(lora_path)
    metadata.update(trigger_words_metadata(triggers))
    metadata["nano_banana.bootstrap"] = json.dumps({"base": base, **config.settings()})
    tensors = load_file(lora_path)
    with atomic_path(lora_path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    card = lora_path.parent / "README.md"
    if card.is_file():
        lines = ["", "## Bootstrap", "",
                 f"Trained by `nano-banana lora bootstrap` on {config.synth.count} parts-first "
                 f"boards the base drew itself: objects {', '.join(config.synth.objects)}; "
                 f"presets {', '.join(config.synth.presets)}; seed {config.synth.seed}.",
                 f"Trigger words (from the presets): {'; '.join(triggers)}."]  # fmt: skip
        write_text(card, card.read_text(encoding="utf-8") + "\n".join(lines) + "\n")


def read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def run_evals(engine, lora_path: Path, config: BootstrapConfig, out: Path, spec,
              log: Log) -> dict[str, Any]:  # fmt: skip
    """LoRA off against on for every preset of the set, on the set's objects."""
    from ..analysis.evaluation import (
        EvalConfig,
        ObjectClassifier,
        evaluate,
        summary_rows,
        write_report,
    )
    from ..parts.catalog import find_object, load_catalog

    engine.add_lora(lora_path)
    catalog = load_catalog()
    prompts = tuple(find_object(o, catalog).phrase for o in config.synth.objects)
    defaults = spec.request_defaults()
    reports = {}
    first = EvalConfig(prompts=prompts)
    # fitted once for every preset, and only when a prompt is a demo object it can recognise
    classifier = (ObjectClassifier.fit_on_world()
                  if any(key for _, key in first.prompt_list()) else None)  # fmt: skip
    for preset in config.synth.presets:
        eval_config = EvalConfig(prompts=prompts, seeds=config.eval_seeds, preset=preset,
                                 steps=defaults.steps, cfg=defaults.cfg, sampler=defaults.sampler,
                                 grid_seeds=min(4, config.eval_seeds))  # fmt: skip
        report = evaluate(engine, eval_config, classifier=classifier)
        write_report(report, out / f"eval-{preset}")
        reports[preset] = report
        log(f"  {preset}: " + "; ".join(f"{label} {' -> '.join(cells)}"
                                        for label, *cells in summary_rows(report)[:4]))  # fmt: skip
    return reports
