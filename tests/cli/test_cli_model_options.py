"""The model options: every image command and `nano-banana studio` build them from EngineSpec."""

from __future__ import annotations

import pytest
from typer.main import get_command

from cli_helpers import assert_user_error
from nano_banana.cli import app
from nano_banana.generate.spec import EngineSpec

MODEL_COMMANDS = ("generate", "compare", "sweep", "batch", "eval", "studio")
FLAGS = {
    "base": "--base",
    "base_config": "--base-config",
    "vae": "--vae",
    "loras": "--lora",
    "device": "--device",
    "dtype": "--dtype",
    "offload": "--offload",
    "vae_tiling": "--vae-tiling",
    "preset_dir": "--preset-dir",
}


def model_options(command: str) -> dict[str, tuple]:
    """name -> (flags, help, default, shown default, repeatable) of a command's model options."""
    params = {p.name: p for p in get_command(app).commands[command].params}
    return {
        name: (tuple(p.opts), p.help, p.default, p.show_default, p.multiple)
        for name, p in params.items()
        if name in FLAGS
    }


def test_the_model_options_are_the_specs_fields():
    options = model_options("generate")
    assert list(options) == [f.name for f in EngineSpec.option_fields()] == list(FLAGS)
    for field in EngineSpec.option_fields():
        flags, help_text, _, shown, _ = options[field.name]
        assert flags == (FLAGS[field.name],)
        assert help_text == field.metadata["help"] and shown == field.metadata["shown"]
    assert options["loras"][4] is True  # --lora repeats
    assert options["base"][3] == "the built-in demo model"
    assert options["device"][2] == EngineSpec().device == "auto"


@pytest.mark.parametrize("command", MODEL_COMMANDS[1:])
def test_every_model_command_and_the_studio_offer_them_alike(command):
    assert model_options(command) == model_options("generate")


def test_presets_reads_the_same_preset_dir_option():
    params = {p.name: p for p in get_command(app).commands["presets"].params}
    assert params["preset_dir"].help == model_options("generate")["preset_dir"][1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--port", "0"], "port 0 is out of range"),
        (["--lora", "no/such.safetensors"], "--lora no/such.safetensors: no such file"),
        (["--lora-dir", "no/such/folder"], "--lora-dir no/such/folder is not a folder"),
    ],
)
def test_the_studio_checks_its_options_before_starting(cli, tiny_sdxl_dir, extra, message):
    assert_user_error(cli("studio", "--base", tiny_sdxl_dir, *extra), message)
