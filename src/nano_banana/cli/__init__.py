"""The ``nano-banana`` command line: a thin shell over the library.

Each area registers its commands from its own module (``register(app)``), so
this file only assembles them and turns our errors into one line and an exit code.
"""

from __future__ import annotations

import sys

import typer

from ..errors import NanoBananaError
from .display import visible

_NOT_UTF8 = "an argument is not valid UTF-8 text (it holds undecodable bytes); give it in UTF-8"

app = typer.Typer(
    name="nano-banana",
    help="Exploded views and knolling flat-lays from a text prompt (SDXL + structure LoRA).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_all() -> None:
    from importlib import import_module

    # One module per area; each defines register(app). Missing ones are skipped
    # only while the package is being built up area by area.
    for area in (
        "generate",
        "gallery",
        "dataset",
        "train",
        "demo",
        "analysis",
        "studio",
        "batch",
        "lora",
    ):
        try:
            module = import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{area}":
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code."""
    try:
        code = app(standalone_mode=False)
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
