"""``demo …``: the procedural demo world (and, later, the demo model built from it).

A thin shell over ``nano_banana.demo``. ``demo_app`` is the sub-app other areas
extend with their own ``demo`` commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..demo import VIEWS, parse_views, write_world
from ..demo.world import DEFAULT_SIZE
from ..generate.spec import EngineSpec
from . import common

demo_app = typer.Typer(
    help="The built-in demo: a procedural world of objects, assembled, knolled and exploded.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
    app.command(name="eval")(common.image_command(eval_command, request=False))


@demo_app.command("world")
def world(
    out: Path = typer.Argument(..., help="Folder to write PNG + .txt caption pairs into."),
    count: int = typer.Option(
        60, "--count", "-n", help="Object instances; each is drawn once per view."
    ),
    seed: int = typer.Option(0, "--seed", help="World seed: the same seed writes the same files."),
    size: int = typer.Option(DEFAULT_SIZE, "--size", help="Image side in pixels (multiple of 8)."),
    views: str = typer.Option(
        ",".join(v.value for v in VIEWS), "--views", help="Comma-separated views to draw."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a folder that already holds files."
    ),
) -> None:
    """Draw the demo world as a training dataset (the trainer's folder format)."""
    written = write_world(out, count, seed=seed, size=size, views=parse_views(views),
                          overwrite=overwrite)  # fmt: skip
    typer.echo(
        f"wrote {written.images} images with captions to {written.folder} "
        f"(ground truth: {written.manifest.name})"
    )


# --- the demo model (nano_banana.demo.build) and evaluation (nano_banana.analysis.evaluation)


@demo_app.command("build")
def build(
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="Folder to write base/, structure_lora.safetensors and demo.toml into.",
        show_default="the package's assets/demo (replaces the shipped model)",
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="A few steps of everything: checks the recipe, makes a useless model.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed every step's randomness derives from."),
    lora_only: bool = typer.Option(
        False, "--lora-only", help="Keep the base model in the folder; retrain only the LoRA."
    ),
    hold_out: str = typer.Option(
        "",
        "--hold-out",
        help="World objects to leave out of the LoRA's boards, e.g. toaster,headphones: "
        "trains a second LoRA beside the shipped one (with --lora-only).",
        show_default=False,
    ),
) -> None:
    """Rebuild the built-in demo model from scratch: world -> VAE -> base UNet -> boards the base
    draws (dataset synth) -> LoRA (trainer)."""
    from ..demo.assets import demo_dir
    from ..demo.build import BuildConfig, build_demo

    config = BuildConfig(seed=seed)
    held_out = tuple(k.strip() for k in hold_out.split(",") if k.strip())
    result = build_demo(
        out or demo_dir(), config.quick() if quick else config, log=typer.echo,
        lora_only=lora_only, hold_out=held_out,
    )  # fmt: skip
    typer.echo(
        f"demo base: {result.base_dir}\ndemo LoRA: {result.lora_path}\n"
        f"settings: {result.settings_path}\nbuild took {sum(result.timings.values()):.0f} s"
    )


def eval_command(
    prompts: Optional[list[str]] = typer.Argument(
        None, help="Prompts to evaluate.", show_default="the demo world's ten objects"
    ),
    seeds: int = typer.Option(
        16, "--seeds", help="Seeds per prompt (each rendered LoRA off and on)."
    ),
    first_seed: int = typer.Option(0, "--first-seed", help="Seeds run from this one upwards."),
    preset: str = typer.Option(
        "knolling", "--preset", "-p", help="Scenario preset of every prompt."
    ),
    lora_scale: float = typer.Option(1.0, "--lora-scale", help="LoRA strength of the 'on' arm."),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Denoising steps.", show_default="the demo's, or the request default"
    ),
    cfg: Optional[float] = typer.Option(
        None, "--cfg", help="Guidance scale.", show_default="the demo's, or the request default"
    ),
    compose: bool = typer.Option(
        False,
        "--compose",
        help="Add a third arm: parts-first boards of the same prompts and seeds.",
    ),
    model: EngineSpec = None,
    output: common.OutputOptions = None,
) -> None:
    """Render prompts x seeds with the LoRA off and on (and composed) and compare their layouts."""
    from ..analysis.evaluation import EvalConfig, evaluate, write_report

    # The model's own defaults (a demo build's demo.toml, else SDXL's); given options win.
    defaults = model.request_defaults()
    config = EvalConfig(
        prompts=tuple(prompts or ()),
        seeds=seeds,
        first_seed=first_seed,
        preset=preset,
        lora_scale=lora_scale,
        steps=defaults.steps if steps is None else steps,
        cfg=defaults.cfg if cfg is None else cfg,
        sampler=defaults.sampler,
        compose=compose,
    )
    if compose:  # every board's layout and parts, before the model loads
        from ..analysis.evaluation import COMPOSED, make_request

        for prompt, _ in config.prompt_list():
            model.check_request(make_request(config, prompt, config.first_seed, COMPOSED))
    engine = common.build_engine(model, quiet=output.json)
    with common._progress_bar() as bar:
        task = bar.add_task("evaluating", total=None)
        report = evaluate(
            engine,
            config,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    paths = write_report(report, output.out or Path("eval"))  # --out: the report folder
    _print_eval(report, paths, output.json)


def _print_eval(report, paths: dict[str, Path], as_json: bool) -> None:
    """The summary table (or JSON for scripts) and where the report went."""
    import json

    from rich.console import Console

    from ..analysis.evaluation import summary_table

    if as_json:
        summary = {"summary": report.summary(), **{k: str(v) for k, v in paths.items()}}
        typer.echo(json.dumps(summary, indent=1))
        return
    Console().print(summary_table(report))
    if report.classifier_accuracy is not None:  # fitted only when a prompt names a demo object
        typer.echo(
            f"classifier accuracy on held-out world renders with generator flaws: "
            f"{report.classifier_accuracy:.0%}"
        )
    typer.echo(f"{paths['json']}\n{paths['grid']}")
