"""``generate``, ``compare``, ``sweep`` and ``presets``: the commands that make images.

Options default to None so that ``--from IMAGE.png`` can tell which settings
the user overrode; the real defaults and help texts come from
``settings.GenerationRequest``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import typer

from ..errors import InvalidSettingError
from ..settings import GenerationRequest, parse_seed
from . import common

PromptArg = typer.Argument(
    None, help="What to draw, e.g. 'a mechanical watch'.", show_default=False
)


def register(app: typer.Typer) -> None:
    for command in (generate, compare, sweep):
        app.command(name=command.__name__)(common.image_command(command))
    app.command()(presets)


def generate(
    prompt: str | None = PromptArg,
    count: int = typer.Option(
        1, "--count", "-n", min=1, max=64, help="Images to make; seeds count up."
    ),
    from_image: Path | None = typer.Option(
        None,
        "--from",
        help="Reproduce an image from the settings stored in its PNG.",
        show_default=False,
    ),
    *,
    settings: dict,
    model: common.ModelOptions,
    output: common.OutputOptions,
) -> None:
    """Generate exploded-view / knolling images and save them with their settings."""
    base_request, source_record = _start_request(from_image, prompt, model)
    request = _validated(_apply_overrides(base_request, settings), model)
    engine = common.build_engine(model, quiet=output.json)
    if source_record is not None:
        common.warn_if_model_differs(engine, source_record, quiet=output.json)
    first = _default_loras(engine, request, source_record)
    results = []
    for i in range(count):
        job = replace(first, seed=(first.seed + i) % (2**32)) if i else first
        results.append(common.run_job(engine, job, output, label=f"image {i + 1}/{count}"))
    common.report(results, output)


def compare(
    prompt: str | None = PromptArg,
    *,
    settings: dict,
    model: common.ModelOptions,
    output: common.OutputOptions,
) -> None:
    """Same prompt and seed with the LoRA off and on, side by side (the design's comparison)."""
    from ..generate.sheets import compare as run_compare

    request = _validated(_apply_overrides(_fresh_request(prompt, model), settings), model)
    engine = common.build_engine(model, quiet=output.json)
    result = common.with_progress(
        output, "compare", request, lambda cb: run_compare(engine, request, cb), 2
    )
    common.report_sheet(result, output, kind="compare")


def sweep(
    prompt: str | None = PromptArg,
    setting: str = typer.Option(
        "lora_scale", "--setting", help="Setting to vary: lora_scale, cfg, steps or seed."
    ),
    values: str = typer.Option(
        "0,0.6,0.8,1.0", "--values", help="Comma-separated values of the setting."
    ),
    *,
    settings: dict,
    model: common.ModelOptions,
    output: common.OutputOptions,
) -> None:
    """A row of images over one setting (default: LoRA scale 0, 0.6, 0.8, 1.0), same seed."""
    from ..generate.sheets import parse_sweep_values
    from ..generate.sheets import sweep as run_sweep

    request = _validated(_apply_overrides(_fresh_request(prompt, model), settings), model)
    parsed = parse_sweep_values(setting, values)
    for value in parsed:  # every variant is checked before the first image is made
        replace(request, **{setting: value}).validated()
    engine = common.build_engine(model, quiet=output.json)
    result = common.with_progress(
        output,
        "sweep",
        request,
        lambda cb: run_sweep(engine, request, setting, parsed, cb),
        len(parsed),
    )
    common.report_sheet(result, output, kind="sweep")


def presets(
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
    preset_dir: Path | None = typer.Option(
        None, "--preset-dir", help="Folder of extra preset .toml files."
    ),
) -> None:
    """List the scenario presets, their trigger words and example prompts."""
    from ..prompt.presets import load_presets

    found = load_presets(preset_dir)
    if json_out:
        typer.echo(
            json.dumps({k: _preset_dict(p) for k, p in found.items()}, indent=1, ensure_ascii=False)
        )
        return
    for p in found.values():
        typer.echo(f"{p.id:20s} {p.title}: {p.description}")
        if p.trigger:
            typer.echo(f"{'':20s} trigger: {p.trigger}")
        typer.echo(f"{'':20s} e.g. {p.render(p.examples[0]) if p.examples else p.template}")


def _preset_dict(p) -> dict:
    return {
        "title": p.title,
        "description": p.description,
        "trigger": p.trigger,
        "template": p.template,
        "negative": p.negative,
        "examples": list(p.examples),
    }


# --- request building -------------------------------------------------------

_OVERRIDABLE = ("preset", "lora_scale", "cfg", "steps", "width", "height", "sampler")


def _start_request(from_image: Path | None, prompt: str | None, model: common.ModelOptions):
    """The request to start from: the model's defaults, or the one stored in ``--from``'s PNG."""
    if from_image is None:
        return _fresh_request(prompt, model), None
    from ..gallery.png import read_record

    record = read_record(from_image)
    request = record.request
    if prompt is not None:
        request = replace(request, prompt=prompt)
    return request, record


def _apply_overrides(request: GenerationRequest, given: dict) -> GenerationRequest:
    changes = {name: given[name] for name in _OVERRIDABLE if given.get(name) is not None}
    if given.get("negative") is not None:
        changes["negative_prompt"] = given["negative"]
    if given.get("seed") is not None:
        seed = given["seed"]
        changes["seed"] = None if str(seed).strip().lower() == "random" else parse_seed(seed)
    return replace(request, **changes)


def _fresh_request(prompt: str | None, model: common.ModelOptions) -> GenerationRequest:
    """The user's prompt on the model's recommended settings (the demo has its own)."""
    return replace(common.request_defaults(model), prompt=_need_prompt(prompt))


def _validated(request: GenerationRequest, model: common.ModelOptions) -> GenerationRequest:
    """Check settings and preset before any model work (loading SDXL takes a while)."""
    from ..prompt.presets import get_preset, load_presets

    get_preset(load_presets(model.preset_dir), request.preset)
    return request.validated()


def _default_loras(engine, request: GenerationRequest, record) -> GenerationRequest:
    """With --from, keep the recorded LoRA weights for the LoRAs loaded now under the same name."""
    if record is None or request.loras is None:
        return request
    kept = tuple(lw for lw in request.loras if lw.name in engine.loras)
    return replace(request, loras=kept)


def _need_prompt(prompt: str | None) -> str:
    if prompt is None:
        if not sys.stdin.isatty():
            raise InvalidSettingError(
                'no prompt given: pass it as the first argument ("" for none)'
            )
        raise InvalidSettingError('no prompt given: try nano-banana generate "a mechanical watch"')
    return prompt
