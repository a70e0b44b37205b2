"""Pieces shared by the image-making commands: model/output options, progress, saving, reporting.

Typer has no option groups, so ``image_command`` appends the model and output
options to a command's signature and hands them to it bundled as
``ModelOptions`` and ``OutputOptions``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from ..settings import DEFAULTS, Sampler, field_help

err_console = Console(stderr=True)


@dataclass
class ModelOptions:
    base: str | None = None
    vae: str | None = None
    lora: list[str] | None = None
    device: str = "auto"
    dtype: str = "auto"
    preset_dir: Path | None = None


@dataclass
class OutputOptions:
    out: Path | None = None
    gallery: Path | None = None
    json: bool = False


def _request_option(name: str, *flags: str):
    """An option whose help and shown default come from ``GenerationRequest``. Its value
    defaults to None, so that --from and the demo's own settings can tell what the user set."""
    default = getattr(DEFAULTS, name)
    shown = default.value if hasattr(default, "value") else default
    if default is None:
        shown = "the model's native size"
    return typer.Option(None, *flags, help=field_help(name), show_default=str(shown))


# (name, annotation, typer.Option) for each shared option, in --help order.
# Request settings reach a command as one ``settings`` dict of name -> value (None: not given).
_REQUEST_PARAMS = [
    ("preset", Optional[str], _request_option("preset", "--preset", "-p")),
    (
        "negative",
        Optional[str],
        typer.Option(
            None, "--negative", help=field_help("negative_prompt"), show_default="the preset's"
        ),
    ),
    ("lora_scale", Optional[float], _request_option("lora_scale", "--lora-scale")),
    ("cfg", Optional[float], _request_option("cfg", "--cfg")),
    ("steps", Optional[int], _request_option("steps", "--steps")),
    ("width", Optional[int], _request_option("width", "--width")),
    ("height", Optional[int], _request_option("height", "--height")),
    ("sampler", Optional[Sampler], _request_option("sampler", "--sampler")),
    (
        "seed",
        Optional[str],
        typer.Option(
            None,
            "--seed",
            help="Seed 0..4294967295, or 'random' (the drawn seed is recorded).",
            show_default="random",
        ),
    ),
]
_MODEL_PARAMS = [
    (
        "base",
        Optional[str],
        typer.Option(
            None,
            "--base",
            help="Base SDXL model: a Hugging Face repo id (e.g. "
            "stabilityai/stable-diffusion-xl-base-1.0), a diffusers folder or a .safetensors file.",
            show_default="the built-in demo model",
        ),
    ),
    (
        "vae",
        Optional[str],
        typer.Option(
            None,
            "--vae",
            help="VAE override, e.g. the fp16-fix VAE (folder, .safetensors or repo id).",
            show_default=False,
        ),
    ),
    (
        "lora",
        Optional[list[str]],
        typer.Option(
            None,
            "--lora",
            help="LoRA .safetensors file, optionally FILE:WEIGHT; repeat for several.",
            show_default=False,
        ),
    ),
    ("device", str, typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")),
    (
        "dtype",
        str,
        typer.Option(
            "auto", "--dtype", help="auto (fp16 on GPU, fp32 on CPU), float32, float16 or bfloat16."
        ),
    ),
    (
        "preset_dir",
        Optional[Path],
        typer.Option(
            None,
            "--preset-dir",
            help="Folder of extra preset .toml files.",
            show_default="env NANO_BANANA_PRESETS or the user config folder",
        ),
    ),
]
_OUTPUT_PARAMS = [
    (
        "out",
        Optional[Path],
        typer.Option(None, "--out", "-o", help="Folder to save into.", show_default="the gallery"),
    ),
    (
        "gallery",
        Optional[Path],
        typer.Option(
            None,
            "--gallery",
            help="Gallery folder.",
            show_default="env NANO_BANANA_GALLERY or the user data folder",
        ),
    ),
    ("json", bool, typer.Option(False, "--json", help="Print a JSON result for scripts.")),
]


def image_command(func: Callable, *, request: bool = True, seed: bool = True) -> Callable:
    """Give ``func`` the shared request, model and output options.

    They reach it as ``settings`` (a dict of the request options, None where not given),
    ``model`` and ``output``. ``seed=False`` leaves out --seed (batch seeds every line
    itself); ``request=False`` leaves out the request options (eval declares its own).
    """
    wanted = [p for p in _REQUEST_PARAMS if seed or p[0] != "seed"]
    request_params = wanted if request else []
    shared = request_params + _MODEL_PARAMS + _OUTPUT_PARAMS
    bundled = ("settings", "model", "output")
    sig = inspect.signature(func)
    own = [p for p in sig.parameters.values() if p.name not in bundled]
    extra = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
        )
        for name, annotation, option in shared
    ]

    @functools.wraps(func)
    def wrapper(**kwargs):
        if request:
            kwargs["settings"] = {name: kwargs.pop(name) for name, _, _ in request_params}
        model = ModelOptions(**{f.name: kwargs.pop(f.name) for f in fields(ModelOptions)})
        output = OutputOptions(**{f.name: kwargs.pop(f.name) for f in fields(OutputOptions)})
        return func(**kwargs, model=model, output=output)

    wrapper.__signature__ = sig.replace(parameters=own + extra)
    wrapper.__annotations__ = {
        **{k: v for k, v in func.__annotations__.items() if k not in bundled},
        **{name: annotation for name, annotation, _ in shared},
    }
    return wrapper


# --- engine -------------------------------------------------------------------


def build_engine(model: ModelOptions, quiet: bool = False):
    """Load the engine the options describe; without --base, the built-in demo model."""
    from ..generate.engine import Engine
    from ..model.load import quiet_libraries

    quiet_libraries()
    base, loras = model.base, list(model.lora or [])
    if base is None:
        base, loras = default_base(loras, quiet)
    with (
        err_console.status(f"loading {base} ...", spinner="dots")
        if not quiet
        else contextlib.nullcontext()
    ):
        return Engine.load(
            base,
            vae=model.vae,
            loras=loras,
            device=model.device,
            dtype=model.dtype,
            preset_dir=model.preset_dir,
        )


def request_defaults(model: ModelOptions):
    """The request the options start from: a demo model's own settings, else SDXL's defaults."""
    from ..settings import GenerationRequest

    try:
        from ..demo.assets import recommended_request
    except ImportError:
        return GenerationRequest()
    return recommended_request(model.base)


def default_base(loras: list[str], quiet: bool) -> tuple[str, list[str]]:
    """The built-in demo model and its LoRA when no --base is given (see nano_banana.demo)."""
    try:
        from ..demo.assets import demo_base_dir, demo_lora_path
    except ImportError:
        demo_base_dir = None
    if demo_base_dir is not None and demo_base_dir() is not None:
        if not quiet:
            err_console.print(
                "[dim]using the built-in demo model (tiny, offline). For real images pass "
                "--base stabilityai/stable-diffusion-xl-base-1.0 and --lora YOUR_LORA.safetensors[/dim]"
            )
        return str(demo_base_dir()), loras or [str(demo_lora_path())]
    from ..model.load import SDXL_REPO

    return SDXL_REPO, loras


def warn_if_model_differs(engine, record, quiet: bool) -> None:
    """--from with another base model or LoRA file reproduces nothing; say so up front."""
    if quiet:
        return
    if record.base_model != engine.base_name:
        err_console.print(
            f"[yellow]warning:[/] image was made with base '{record.base_model}', "
            f"now using '{engine.base_name}'"
        )
    loaded = {lf.sha256 for lf in engine.loras.values()}
    for use in record.loras:
        if use.sha256 not in loaded:
            err_console.print(
                f"[yellow]warning:[/] image used LoRA {use.file} "
                f"(sha256 {use.sha256[:12]}), which is not loaded now"
            )


# --- running with progress ------------------------------------------------------


def with_progress(output: OutputOptions, label: str, request, work: Callable, jobs: int = 1):
    """Run ``work(callback)`` under a progress bar over all its jobs' steps."""
    steps = request.steps
    if output.json:
        return work(None)
    with _progress_bar() as bar:
        task = bar.add_task(label, total=steps * jobs)
        done = {"jobs": 0}

        def callback(event):
            if event.step == event.total:
                done["jobs"] += 1
            finished = (
                done["jobs"] * steps
                if event.step == event.total
                else done["jobs"] * steps + event.step
            )
            bar.update(task, completed=finished)

        return work(callback)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def run_job(engine, request, output: OutputOptions, label: str = "generating"):
    """Generate one image with a progress bar, save it, and return (result, path)."""
    result = with_progress(output, label, request, lambda cb: engine.generate(request, progress=cb))
    if result.plan.warning() and not output.json:
        err_console.print(f"[yellow]warning:[/] {result.plan.warning()}")
    return result, save_result(result, output)


def save_result(result, output: OutputOptions) -> Path:
    """Into --out when given, else into the gallery."""
    from ..gallery.save import save_image

    if output.out is not None:
        return save_image(result.image, result.record, output.out)
    from ..gallery.store import Gallery

    return Gallery.open(output.gallery).save(result.image, result.record).path


# --- reporting ------------------------------------------------------------------


def report(results: list, output: OutputOptions) -> None:
    if output.json:
        typer.echo(
            json.dumps(
                {"images": [_result_json(r, p) for r, p in results]}, indent=1, ensure_ascii=False
            )
        )
        return
    for result, path in results:
        rec = result.record
        err_console.print(f"[dim]prompt:[/] {rec.prompt_used}")
        err_console.print(
            f"[dim]seed {rec.request.seed}, {rec.request.steps} steps, {rec.duration_s:.1f} s[/]"
        )
        typer.echo(str(path))


def report_sheet(sheet_result, output: OutputOptions, kind: str) -> None:
    """Save each panel and the combined sheet; print their paths."""
    from ..gallery.save import save_sheet

    paths = [save_result(panel.result, output) for panel in sheet_result.panels]
    sheet_path = save_sheet(
        sheet_result.sheet,
        sheet_result.panels[0].result.record,
        output.out or paths[0].parent,
        kind,
    )
    if output.json:
        typer.echo(
            json.dumps(
                {
                    "sheet": str(sheet_path),
                    "images": [
                        {"label": p.label, **_result_json(p.result, path)}
                        for p, path in zip(sheet_result.panels, paths, strict=True)
                    ],
                },
                indent=1,
                ensure_ascii=False,
            )
        )
        return
    for panel, path in zip(sheet_result.panels, paths, strict=True):
        err_console.print(f"[dim]{panel.label}:[/]")
        typer.echo(str(path))
    err_console.print(f"[dim]{kind} sheet:[/]")
    typer.echo(str(sheet_path))


def _result_json(result, path: Path) -> dict:
    return {
        "path": str(path),
        "record": result.record.to_dict(),
        "prompt_warning": result.plan.warning(),
    }
