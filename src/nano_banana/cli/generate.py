"""``generate``, ``compare``, ``sweep`` and ``presets``: the commands that make images.

Options default to None so that ``--from IMAGE.png`` can tell which settings
the user overrode; the real defaults and help texts come from
``settings.GenerationRequest``, the rules for remaking an image from
``generate.reproduce``, the compare and sweep checks from ``generate.sheets``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import typer

from ..errors import InvalidSettingError
from ..generate import reproduce
from ..generate.sheets import DEFAULT_SWEEP_SCALES, format_sweep_values
from ..generate.spec import EngineSpec
from ..settings import PHOTO_STRENGTH, GenerationRequest
from . import common
from .display import json_text, markup, visible

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
    callouts: bool = typer.Option(
        False,
        "--callouts",
        help="Also write IMAGE_annotated.png: numbered callouts and a parts list "
        "(from the plan with --compose, else from the parts found in the image).",
    ),
    plan_file: Path | None = typer.Option(
        None,
        "--plan",
        help="Draw the board from this plan file as it is (implies --compose): "
        "'show IMAGE --plan-json FILE' writes one to edit, '--from IMAGE --plan FILE' re-renders "
        "that board as edited.",
        show_default=False,
    ),
    server: bool = typer.Option(
        True,
        "--server/--no-server",
        help="Send the job to a running 'nano-banana serve' of the same model, if there is one.",
    ),
    photo_file: Path | None = typer.Option(
        None,
        "--image",
        help="Start from this product photo (PNG, JPEG or WebP): image to image, redrawn at "
        f"--strength ({PHOTO_STRENGTH} unless given) with the preset and the LoRA.",
        show_default=False,
    ),
    *,
    settings: dict,
    model: EngineSpec,
    output: common.OutputOptions,
) -> None:
    """Generate exploded-view / knolling images and save them with their settings."""
    record = _read_from(from_image)
    if plan_file is not None:
        settings = reproduce.plan_settings(plan_file, settings)
    if record is None:
        request = _fresh_request(prompt, model, settings)
    else:
        request = reproduce.request_from_record(record, {**settings, "prompt": prompt})
    photo = None
    if photo_file is not None:
        photo, request = _photo_request(photo_file, request, settings)
    request = model.check_request(request)
    if record is not None and not output.json:
        for note in reproduce.photo_differences(record, photo):
            common.err_console.print(f"[yellow]warning:[/] {markup(note)}")
    common.check_before_loading(model, output)
    engine = common.engine_or_server(model, output, server)
    first = request
    if record is not None:
        common.warn_if_model_differs(engine, record, quiet=output.json)
        first = reproduce.keep_loaded_loras(request, engine.loras)
    results = []
    for i in range(count):
        job = replace(first, seed=(first.seed + i) % (2**32)) if i else first
        label = f"image {i + 1}/{count}"
        results.append(common.run_job(engine, job, output, label=label, init_image=photo))
    common.report(results, output)
    if callouts:
        from ..parts.labels import write_callouts

        for result, path in results:
            written = write_callouts(result.image, result.record, path)
            # with --json, stdout holds only the JSON above: the callouts' path goes to stderr
            common.err_console.print(
                f"[dim]callouts:[/] {markup(written)}" if output.json else "[dim]callouts:[/]"
            )
            if not output.json:
                typer.echo(str(written))


def compare(
    prompt: str | None = PromptArg,
    *,
    settings: dict,
    model: EngineSpec,
    output: common.OutputOptions,
) -> None:
    """Same prompt and seed with the LoRA off and on, side by side (the design's comparison);
    with --compose a third panel, the parts-first board."""
    from ..generate.sheets import active_loras, check_compare, compare_images
    from ..generate.sheets import compare as run_compare

    request = model.check_request(_fresh_request(prompt, model, settings))
    # The LoRAs the model will load, checked before loading it (minutes for SDXL).
    check_compare(request, active_loras(request, model.resolve().loras))
    common.check_before_loading(model, output)
    engine = common.build_engine(model, quiet=output.json)
    result = common.with_progress(
        output,
        "compare",
        request,
        lambda cb: run_compare(engine, request, cb),
        compare_images(request),
    )
    common.report_sheet(result, output, kind="compare")


def sweep(
    prompt: str | None = PromptArg,
    setting: str = typer.Option(
        "lora_scale", "--setting", help="Setting to vary: lora_scale, cfg, steps or seed."
    ),
    values: str = typer.Option(
        format_sweep_values(DEFAULT_SWEEP_SCALES),
        "--values",
        help="Comma-separated values of the setting.",
    ),
    *,
    settings: dict,
    model: EngineSpec,
    output: common.OutputOptions,
) -> None:
    """A row of images over one setting (default: LoRA scale 0, 0.6, 0.8, 1.0), same seed."""
    from ..generate.sheets import check_sweep, parse_sweep_values
    from ..generate.sheets import sweep as run_sweep

    request = model.check_request(_fresh_request(prompt, model, settings))
    parsed = parse_sweep_values(setting, values)
    # Every variant, before the first image is made; a LoRA-scale sweep without a LoRA
    # is allowed here (a row of base-model images), as it always was on the CLI.
    check_sweep(request, setting, parsed, require_lora=False)
    common.check_before_loading(model, output)
    engine = common.build_engine(model, quiet=output.json)
    paths: list[Path] = []

    def save_panel(panel) -> None:  # each image as it is made: an interrupted sweep keeps them
        paths.append(common.save_result(panel.result, output))

    result = common.with_progress(
        output,
        "sweep",
        request,
        lambda cb: run_sweep(
            engine, request, setting, parsed, cb, require_lora=False, on_panel=save_panel
        ),
        len(parsed),
    )
    common.report_sheet(result, output, kind="sweep", paths=paths)


def presets(
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
    preset_dir: Path | None = common.model_option("preset_dir"),
) -> None:
    """List the scenario presets, their trigger words and example prompts."""
    from ..prompt.presets import load_presets

    found = load_presets(preset_dir)
    for problem in found.problems.values():  # the other presets still work
        typer.echo(f"warning: {visible(problem)}", err=True)
    if json_out:
        typer.echo(json_text({k: _preset_dict(p) for k, p in found.items()}))
        return
    for p in found.values():  # user preset files are text anyone may have written
        typer.echo(visible(f"{p.id:20s} {p.title}: {p.description}"))
        if p.trigger:
            typer.echo(visible(f"{'':20s} trigger: {p.trigger}"))
        example = p.render(p.examples[0]) if p.examples else p.template
        typer.echo(visible(f"{'':20s} e.g. {example}"))


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


def _read_from(from_image: Path | None):
    """The record stored in ``--from``'s PNG, or None without --from."""
    if from_image is None:
        return None
    from ..gallery.png import read_record

    return read_record(from_image)


def _fresh_request(prompt: str | None, model: EngineSpec, settings: dict) -> GenerationRequest:
    """The user's prompt and settings on the model's recommended ones (the demo has its own)."""
    start = replace(model.request_defaults(), prompt=_need_prompt(prompt))
    return reproduce.apply_overrides(start, settings)


def _photo_request(path: Path, request: GenerationRequest, settings: dict):
    """The photo at ``path`` and the request redrawing it: ``PHOTO_STRENGTH`` unless a strength
    was given (or recorded); a board or a strength that redraws nothing is refused now."""
    from ..generate.photo import check_image_to_image, open_photo

    photo = open_photo(path)
    if request.compose:
        raise InvalidSettingError(
            "--image redraws a photo, and a parts-first board (--compose, --plan) is drawn "
            "from its parts: use one or the other"
        )
    if settings.get("strength") is None and request.strength is None:
        request = replace(request, strength=PHOTO_STRENGTH)
    check_image_to_image(request)
    return photo, request


def _need_prompt(prompt: str | None) -> str:
    if prompt is None:
        if not sys.stdin.isatty():
            raise InvalidSettingError(
                'no prompt given: pass it as the first argument ("" for none)'
            )
        raise InvalidSettingError('no prompt given: try nano-banana generate "a mechanical watch"')
    return prompt
