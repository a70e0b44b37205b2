"""The ``nano-banana`` command line: a thin shell over the library.

Each area registers its commands from its own module (``register(app)``), so
this file only assembles them and turns our errors into one line and an exit code.
A run imports only the area its command lives in: the others pull in what their
own commands need (scipy for ``analyze``, the trainer, the web studio), which
``generate`` should not wait for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import typer
from typer.main import get_group

from ..errors import NanoBananaError
from .display import visible

_NOT_UTF8 = "an argument is not valid UTF-8 text (it holds undecodable bytes); give it in UTF-8"

# The commands each area's module registers; a test checks this against what
# register(app) really adds. A command missing here still works: its line is not
# recognised, so every area is loaded for it.
AREAS: dict[str, tuple[str, ...]] = {
    "generate": ("generate", "compare", "sweep", "presets"),
    "gallery": ("show", "gallery"),
    "dataset": ("dataset",),
    "train": ("train",),
    "demo": ("demo", "eval"),
    "analysis": ("analyze", "annotate"),
    "studio": ("studio",),
    "serve": ("serve",),
    "batch": ("batch",),
    "lora": ("lora",),
}


def build_app(areas: Iterable[str] = AREAS) -> typer.Typer:
    """The ``nano-banana`` app with the commands of ``areas`` (default: all of them)."""
    app = typer.Typer(
        name="nano-banana",
        help="Exploded views and knolling flat-lays from a text prompt (SDXL + structure LoRA).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for area in areas:
        _register(app, area)
    return app


def _register(app: typer.Typer, area: str) -> None:
    from importlib import import_module

    # Missing area modules are skipped only while the package is being built up area by area.
    try:
        module = import_module(f"{__name__}.{area}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{area}":
            return
        raise
    module.register(app)


def areas_for(args: list[str]) -> tuple[str, ...]:
    """The areas a command line needs: its command's own, or all of them for the
    top-level --help, no command, or a mistyped one (whose message suggests the others)."""
    command = args[0] if args else None
    for area, commands in AREAS.items():
        if command in commands:
            return (area,)
    return tuple(AREAS)


def __getattr__(name: str) -> object:
    # ``from nano_banana.cli import app``: every command, built on first use (PEP 562)
    # so that importing this package for main() registers nothing yet.
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code."""
    # Always a group, even for an area with one command (``train``), so that the
    # command's name is read as a command and not as its first argument.
    command = get_group(build_app(areas_for(sys.argv[1:])))
    try:
        code = command(standalone_mode=False)
    except NanoBananaError as exc:
        typer.echo(f"error: {visible(exc)}", err=True)  # messages quote file contents
        sys.exit(exc.exit_code)
    except UnicodeEncodeError as exc:
        if "surrogate" not in str(exc):
            raise
        # Python's stand-in for bytes that were not UTF-8 (an argument typed in another
        # encoding) reached something that needs real text.
        typer.echo(f"error: {_NOT_UTF8}", err=True)
        sys.exit(NanoBananaError.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # Usage errors (missing argument, bad option value) come from typer's own
        # vendored click, so recognise them by behaviour rather than by class.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    # With standalone_mode=False, typer.Exit(n) comes back as a return value.
    sys.exit(code if isinstance(code, int) else 0)
