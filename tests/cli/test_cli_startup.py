"""Start-up: a command imports its own area of the CLI only, and ``generate`` none of the rest.

Each check runs ``nano-banana`` in a fresh interpreter (this one has imported everything
by now) and reads the modules it ended with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.main import get_group

from cli_helpers import invoke
from nano_banana.cli import AREAS, areas_for, build_app
from nano_banana.demo.assets import demo_base_dir

# What no `generate` needs: the other stages and the web studio.
OTHER_STAGES = ("nano_banana.analysis", "nano_banana.studio", "nano_banana.training", "streamlit")
# What its --help needs even less: the libraries that load and run a model.
MODEL_LIBRARIES = ("torch", "diffusers", "transformers", "scipy")

_RUN_AND_LIST_MODULES = """
import json, sys
sys.argv = ["nano-banana", *json.loads(sys.argv[1])]
from nano_banana.cli import main
try:
    main()
finally:
    print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def modules_after(*args: str) -> set[str]:
    """The modules ``nano-banana ARGS`` has imported when it finishes (it must succeed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST_MODULES, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    listed = done.stdout.rsplit("\nMODULES ", 1)[1]
    return set(json.loads(listed))


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_generate_help_imports_no_model_library_and_no_other_stage():
    modules = modules_after("generate", "--help")
    assert among(modules, MODEL_LIBRARIES + OTHER_STAGES) == []
    other_areas = tuple(f"nano_banana.cli.{area}" for area in AREAS if area != "generate")
    assert among(modules, other_areas) == []


@pytest.mark.slow  # about 6 s: a real process loads the demo model and generates
@pytest.mark.skipif(demo_base_dir() is None, reason="demo assets not built")
def test_generating_with_the_demo_imports_no_other_stage(tmp_path):
    modules = modules_after(
        "generate", "a mechanical watch", "--steps", "2", "--out", str(tmp_path)
    )
    assert list(tmp_path.glob("*.png"))  # it really generated
    assert among(modules, OTHER_STAGES) == []
    # Nor the board renderer (--compose) or the demo's build (torch training code).
    # scipy itself is not checked here: transformers' model code imports it.
    assert among(modules, ("nano_banana.parts.board", "nano_banana.demo.build")) == []


@pytest.mark.parametrize("area", list(AREAS))
def test_each_area_registers_the_commands_its_table_names(area):
    assert sorted(get_group(build_app([area])).commands) == sorted(AREAS[area])


@pytest.mark.parametrize(
    ("args", "areas"),
    [
        (["generate", "--help"], ("generate",)),
        (["show", "x.png"], ("gallery",)),
        (["train"], ("train",)),
        ([], tuple(AREAS)),  # no command: the overview lists them all
        (["--help"], tuple(AREAS)),
        (["genrate"], tuple(AREAS)),  # a typo: the suggestion needs every name
    ],
)
def test_a_command_line_loads_its_commands_area_or_all(args, areas):
    assert areas_for(args) == areas


def test_a_mistyped_command_is_still_answered_with_a_suggestion(monkeypatch, capsys):
    code, _out, err = invoke(monkeypatch, capsys, ["genrate"])
    assert code == 2
    assert "No such command 'genrate'" in err and "generate" in err.split("genrate", 1)[1]


def test_an_area_of_one_command_still_takes_its_name_as_the_command(monkeypatch, capsys):
    # Typer turns an app of one command into that command alone; main() keeps a group.
    code, out, _err = invoke(monkeypatch, capsys, ["studio", "--help"])
    assert code == 0
    assert "studio [OPTIONS]" in out and "--port" in out
