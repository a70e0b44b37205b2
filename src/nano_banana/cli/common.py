"""Pieces shared by the image-making commands: their options, progress, saving, reporting.

Typer has no option groups, so ``image_command`` appends the request, model and
output options to a command's signature and hands them to it bundled: the
request settings as one ``settings`` dict, the model as an ``EngineSpec`` (whose
fields declare those options, for ``nano-banana studio`` too) and the output as
``OutputOptions``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import Field, dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from ..generate.spec import EngineSpec
from ..settings import DEFAULTS, UNIFY_STRENGTH, Sampler, field_help
from .display import json_text, markup

# No emoji codes: ':watch:' in a prompt is text. Text from files goes through markup().
err_console = Console(stderr=True, emoji=False)
DEMO_HINT = (
    "[dim]using the built-in demo model (tiny, offline). For real images pass "
    "--base stabilityai/stable-diffusion-xl-base-1.0 and --lora YOUR_LORA.safetensors[/dim]"
)


@dataclass
class OutputOptions:
    out: Path | None = None
    gallery: Path | None = None
    json: bool = False


def _request_option(name: str, *flags: str, shown: str | None = None):
    """An option whose help and shown default come from ``GenerationRequest`` (``shown`` says
    what a None default means). Its value defaults to None, so that --from and the demo's own
    settings can tell what the user set."""
    if shown is None:
        default = getattr(DEFAULTS, name)
        shown = default.value if hasattr(default, "value") else default
        if default is None:
            shown = "the model's native size"
    return typer.Option(None, *flags, help=field_help(name), show_default=str(shown))


# (name, annotation, typer.Option) for each shared option, in --help order.
# Request settings reach a command as one ``settings`` dict of field name -> value
# (None: not given), ready for ``generate.reproduce.apply_overrides``.
_REQUEST_PARAMS = [
    ("preset", Optional[str], _request_option("preset", "--preset", "-p")),
    (
        "negative_prompt",
        Optional[str],
        _request_option("negative_prompt", "--negative", shown="the preset's"),
    ),
    ("lora_scale", Optional[float], _request_option("lora_scale", "--lora-scale")),
    ("cfg", Optional[float], _request_option("cfg", "--cfg")),
    ("steps", Optional[int], _request_option("steps", "--steps")),
    ("width", Optional[int], _request_option("width", "--width")),
    ("height", Optional[int], _request_option("height", "--height")),
    ("sampler", Optional[Sampler], _request_option("sampler", "--sampler")),
    ("compose", Optional[bool], _request_option("compose", "--compose", shown="off")),
    ("parts", Optional[str], _request_option("parts", "--parts", shown="the catalog's")),
    ("explode", Optional[float], _request_option("explode", "--explode")),
    (
        "strength",
        Optional[float],
        _request_option("strength", "--strength", shown=str(UNIFY_STRENGTH)),
    ),
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


def workers_option(extra: str = "") -> Any:
    """``--workers`` of the commands that run a worker pool (studio, serve)."""
    return typer.Option(
        None,
        "--workers",
        help="Worker processes, each with its own copy of the model: one per GPU by default "
        f"(one without a GPU){extra}.",
        show_default=False,
    )


def ray_option() -> Any:
    """``--ray`` of the commands that run a worker pool (studio, serve)."""
    return typer.Option(
        None,
        "--ray",
        help="Run the workers as Ray actors (pip install 'nano-banana-studio[ray]'): 'auto' for "
        "the cluster this machine joined with `ray start`, a cluster address, or 'local'.",
        show_default=False,
    )


def gallery_option() -> Any:
    return typer.Option(
        None,
        "--gallery",
        help="Gallery folder.",
        show_default="env NANO_BANANA_GALLERY or the user data folder",
    )


_OUTPUT_PARAMS = [
    (
        "out",
        Optional[Path],
        typer.Option(None, "--out", "-o", help="Folder to save into.", show_default="the gallery"),
    ),
    ("gallery", Optional[Path], gallery_option()),
    ("json", bool, typer.Option(False, "--json", help="Print a JSON result for scripts.")),
]


# --- model options, from EngineSpec's fields ---------------------------------------


def model_params() -> list[tuple[str, Any, Any]]:
    """(name, annotation, typer.Option) for every ``EngineSpec`` field the command line offers."""
    hints = typing.get_type_hints(EngineSpec)
    return [
        (f.name, _cli_type(hints[f.name]), _model_option(f)) for f in EngineSpec.option_fields()
    ]


def model_option(name: str) -> Any:
    """One ``EngineSpec`` option alone, for a command that needs only it (``presets``)."""
    return next(option for field_name, _, option in model_params() if field_name == name)


def _model_option(f: Field) -> Any:
    flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
    default = None if f.default == () else f.default  # a repeated option collects into a list
    return typer.Option(default, flag, help=f.metadata["help"], show_default=f.metadata["shown"])


def _cli_type(hint: Any) -> Any:
    """Typer's spelling of a field's type: a repeated option is an optional list."""
    if typing.get_origin(hint) is tuple:
        return Optional[list[typing.get_args(hint)[0]]]
    return hint


# --- bundling options into a command's arguments -----------------------------------


@dataclass(frozen=True)
class _Group:
    """Options appended to a command and handed to it as one argument."""

    arg: str  # the command's parameter that receives them
    params: list[tuple[str, Any, Any]]
    build: Callable[[dict], Any]


def image_command(func: Callable, *, request: bool = True, seed: bool = True) -> Callable:
    """Give ``func`` the shared request, model and output options.

    They reach it as ``settings`` (a dict of the request options, None where not given),
    ``model`` (an ``EngineSpec``) and ``output``. ``seed=False`` leaves out --seed (batch
    seeds every line itself); ``request=False`` leaves out the request options (eval
    declares its own).
    """
    groups = []
    if request:
        wanted = [p for p in _REQUEST_PARAMS if seed or p[0] != "seed"]
        groups.append(_Group("settings", wanted, dict))
    groups.append(_Group("model", model_params(), lambda values: EngineSpec(**values)))
    groups.append(_Group("output", _OUTPUT_PARAMS, lambda values: OutputOptions(**values)))
    return _with_groups(func, groups)


def model_command(func: Callable) -> Callable:
    """Give ``func`` the model options only, as ``model`` (an ``EngineSpec``)."""
    return _with_groups(func, [_Group("model", model_params(), lambda v: EngineSpec(**v))])


def _with_groups(func: Callable, groups: list[_Group]) -> Callable:
    sig = inspect.signature(func)
    bundled = {group.arg for group in groups}
    own = [p for p in sig.parameters.values() if p.name not in bundled]
    shared = [param for group in groups for param in group.params]
    extra = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
        )
        for name, annotation, option in shared
    ]

    @functools.wraps(func)
    def wrapper(**kwargs):
        for group in groups:
            kwargs[group.arg] = group.build({name: kwargs.pop(name) for name, _, _ in group.params})
        return func(**kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra)
    wrapper.__annotations__ = {
        **{k: v for k, v in func.__annotations__.items() if k not in bundled},
        **{name: annotation for name, annotation, _ in shared},
    }
    return wrapper


# --- engine -------------------------------------------------------------------


def resolve_model(model: EngineSpec, quiet: bool = False) -> EngineSpec:
    """The spec with its base filled in (no --base: the built-in demo model); says so."""
    if model.uses_demo and not quiet:
        err_console.print(DEMO_HINT)
    return model.resolve()


def build_engine(model: EngineSpec, quiet: bool = False):
    """Load the engine the options describe; without --base, the built-in demo model."""
    from ..model.load import quiet_libraries

    quiet_libraries()
    spec = resolve_model(model, quiet)
    with (
        err_console.status(f"loading {markup(spec.base)} ...", spinner="dots")
        if not quiet
        else contextlib.nullcontext()
    ):
        return spec.load()


def engine_or_server(model: EngineSpec, output: OutputOptions, use_server: bool = True):
    """A running ``nano-banana serve`` for this model when there is one (it answers in a
    second: nothing to import or load here), else the engine loaded in this process."""
    if use_server:
        from ..serve.client import find_server

        remote = find_server(model)
        if remote is not None:
            if not output.json:
                err_console.print(f"[dim]using the running server (pid {remote.info.pid})[/]")
            return remote
    return build_engine(model, quiet=output.json)


def warn_if_model_differs(engine, record, quiet: bool) -> None:
    """--from with another base model or LoRA file reproduces nothing; say so up front."""
    from ..generate.reproduce import model_differences

    if quiet:
        return
    loaded = {lf.sha256 for lf in engine.loras.values()}
    for note in model_differences(record, engine.base_name, loaded):
        err_console.print(f"[yellow]warning:[/] {markup(note)}")


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


def run_job(engine, request, output: OutputOptions, label: str = "generating", init_image=None):
    """Generate one image with a progress bar (redrawn from ``init_image``, a PIL image, if
    given), save it, and return (result, path)."""
    result = with_progress(
        output,
        label,
        request,
        lambda cb: engine.generate(request, progress=cb, init_image=init_image),
    )
    if result.plan.warning() and not output.json:
        err_console.print(f"[yellow]warning:[/] {markup(result.plan.warning())}")
    return result, save_result(result, output)


def check_before_loading(model: EngineSpec, output: OutputOptions) -> None:
    """What can fail without the model, checked before it loads (minutes for SDXL): the
    --lora files and weights, and the place the images go."""
    model.check_files()
    check_output(output)


def check_output(output: OutputOptions) -> None:
    """Fail now, before loading and generating, on an --out or gallery that cannot take images."""
    from ..gallery.save import check_output_folder

    if output.out is not None:
        check_output_folder(output.out)
        return
    from ..gallery.store import Gallery

    check_output_folder(Gallery.open(output.gallery).images_dir)


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
        typer.echo(json_text({"images": [_result_json(r, p) for r, p in results]}))
        return
    from ..generate.reproduce import settings_line

    for result, path in results:
        err_console.print(f"[dim]prompt:[/] {markup(result.record.prompt_used)}")
        err_console.print(f"[dim]{markup(settings_line(result.record))}[/]")
        typer.echo(str(path))


def report_sheet(
    sheet_result, output: OutputOptions, kind: str, paths: list[Path] | None = None
) -> None:
    """Save the combined sheet (and each panel, unless ``paths`` says where they were saved
    as they were made); print their paths."""
    from ..gallery.save import save_sheet

    if paths is None:
        paths = [save_result(panel.result, output) for panel in sheet_result.panels]
    sheet_path = save_sheet(
        sheet_result.sheet,
        sheet_result.panels[0].result.record,
        output.out or paths[0].parent,
        kind,
    )
    if output.json:
        images = [
            {"label": p.label, **_result_json(p.result, path)}
            for p, path in zip(sheet_result.panels, paths, strict=True)
        ]
        typer.echo(json_text({"sheet": str(sheet_path), "images": images}))
        return
    for panel, path in zip(sheet_result.panels, paths, strict=True):
        err_console.print(f"[dim]{markup(panel.label)}:[/]")
        typer.echo(str(path))
    err_console.print(f"[dim]{kind} sheet:[/]")
    typer.echo(str(sheet_path))


def _result_json(result, path: Path) -> dict:
    return {
        "path": str(path),
        "record": result.record.to_dict(),
        "prompt_warning": result.plan.warning(),
    }
