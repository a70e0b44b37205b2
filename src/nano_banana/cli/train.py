"""``train``: the LoRA trainer's command line, every flag derived from a ``TrainConfig`` setting.

Each setting of each section becomes one flag named after it (``--rank``), with its
help text and default, shown under its section's heading. Values come from
``--config FILE`` (TOML/YAML) first, then from the flags the user gave (each flag
defaults to None, meaning "not given"), then the config is validated before any
model is loaded. Multi-GPU: run the same command under
``accelerate launch -m nano_banana.cli train ...``.
"""

from __future__ import annotations

import inspect
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ..training.config import SECTIONS, SETTINGS, Setting, TrainConfig, load_config

SHORT_HELP = "Train a structure LoRA on a folder of exploded-view / knolling images."


def register(app: typer.Typer) -> None:
    app.command(name="train", help=train_help())(build_command())


def train_help() -> str:
    return (
        f"{SHORT_HELP}\n\n"
        "Example: nano-banana train --data ./knolling_photos "
        '--trigger "disassemble, knolling, flat lay, white background" --out ./my_lora\n\n'
        "Several GPUs (data-parallel, the main process writes): "
        "accelerate launch --multi_gpu --num_processes 4 -m nano_banana.cli train ... "
        "(CPU processes: torchrun --nproc_per_node 2 -m nano_banana.cli train ...)\n\n"
        "Ctrl-C (or SIGTERM) saves a checkpoint; continue with --resume latest."
    )


def run(config_file: Optional[Path], quiet: bool, overrides: dict[str, Any]) -> None:
    """File, then flags, then validation, then training; prints the summary."""
    from ..training.loop import format_summary, train

    if quiet:  # the libraries' own loading bars and notes too, not only our progress bar
        from ..model.load import quiet_libraries

        quiet_libraries()
    config = load_config(config_file) if config_file else TrainConfig()
    given = {
        k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
    }
    config = config.with_overrides(given).validated()
    result = train(config, progress=not quiet)
    if result.main_process:
        typer.echo(format_summary(result))


# --- flags from the dataclass -------------------------------------------------


def build_command():
    """A function whose signature typer reads: one option per ``TrainConfig`` setting."""
    params = [
        inspect.Parameter(
            "config_file",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None, "--config", help="TOML or YAML file of settings (flags win)."
            ),
            annotation=Optional[Path],
        ),
        inspect.Parameter(
            "quiet",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                False, "--quiet", "-q", help="No progress bars (ours or the libraries')."
            ),
            annotation=bool,
        ),
    ]
    for setting in SETTINGS.values():
        annotation, option = _option_for(setting)
        params.append(
            inspect.Parameter(
                setting.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
            )
        )

    def train_command(**kwargs: Any) -> None:
        config_file = kwargs.pop("config_file")
        quiet = kwargs.pop("quiet")
        run(config_file, quiet, kwargs)

    train_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    train_command.__doc__ = SHORT_HELP
    return train_command


def _option_for(setting: Setting) -> tuple[Any, Any]:
    """(annotation, typer.Option) for one setting; the value defaults to None = not given."""
    flag = "--" + setting.name.replace("_", "-")
    base, help_text = setting.hint, setting.help
    kw = {"show_default": _shown(setting.default), "rich_help_panel": _panel(setting)}
    if base is bool:
        return Optional[bool], typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text, **kw)
    if typing.get_origin(base) is tuple:
        return Optional[list[str]], typer.Option(
            None, flag, help=help_text + " Repeat for several.", **kw
        )
    if isinstance(base, type) and issubclass(base, Enum):
        choices = ", ".join(e.value for e in base)
        return Optional[str], typer.Option(None, flag, help=f"{help_text} [{choices}]", **kw)
    return Optional[base], typer.Option(None, flag, help=help_text, **kw)


def _panel(setting: Setting) -> str:
    """The --help heading of a setting: its section's title (the docstring's first words)."""
    if setting.section is None:
        return "Run"
    return SECTIONS[setting.section].__doc__.split(":")[0]


def _shown(default: Any) -> str | bool:
    if default == "":
        return False  # required in practice (--data, --out); validation says so
    if isinstance(default, Enum):
        return default.value
    if isinstance(default, tuple):
        return ", ".join(str(getattr(v, "value", v)) for v in default) or "none"
    return "none" if default is None else str(default)
