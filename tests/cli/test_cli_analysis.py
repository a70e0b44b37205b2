"""``nano-banana analyze``, ``annotate`` and ``demo world`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_helpers import assert_user_error
from nano_banana.cli import app
from nano_banana.demo import render_object

runner = CliRunner()


@pytest.fixture
def knolling(tmp_path: Path) -> Path:
    path = tmp_path / "knolling.png"
    render_object("controller", "knolling", seed=2).image.save(path)
    return path


def test_analyze_prints_the_verdict_and_measures(knolling):
    result = runner.invoke(app, ["analyze", str(knolling)])
    assert result.exit_code == 0, result.output
    assert "knolling.png: disassembled layout" in result.output
    assert "grid, " in result.output and "layout score" in result.output
    assert "parts (reading order)" in result.output


def test_analyze_json_is_the_full_report(knolling, tmp_path):
    result = runner.invoke(app, ["analyze", str(knolling), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["verdict"] is True and data["part_count"] == 7 and data["arrangement"] == "grid"
    shot = tmp_path / "shot.png"
    render_object("controller", "assembled", seed=2).image.save(shot)
    data = json.loads(runner.invoke(app, ["analyze", str(shot), "--json"]).output)
    assert data["verdict"] is False and data["score"] < 50 and data["reasons"]


def test_analyze_says_not_a_layout_and_why(tmp_path):
    shot = tmp_path / "shot.png"
    render_object("watch", "assembled", seed=0).image.save(shot)
    result = runner.invoke(app, ["analyze", str(shot)])
    assert result.exit_code == 0
    assert "not a disassembled layout" in result.output and "note" in result.output


def test_analyze_missing_or_broken_file_is_one_line(cli, tmp_path):
    assert_user_error(cli("analyze", tmp_path / "nope.png"), "does not exist")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert_user_error(cli("analyze", broken), "not a readable image")


def test_annotate_writes_beside_the_input_and_warns_about_extra_names(cli, knolling):
    before = knolling.read_bytes()
    names = ", ".join(f"n{i}" for i in range(9))
    code, out, err = cli("annotate", knolling, "--parts", names)
    assert code == 0, err
    assert "knolling_annotated.png (7 callouts)" in out
    assert err.startswith("warning: ") and "unused: n7, n8" in err
    assert (knolling.parent / "knolling_annotated.png").is_file()
    assert knolling.read_bytes() == before


def test_annotate_refuses_to_overwrite_the_input(cli, knolling):
    before = knolling.read_bytes()
    assert_user_error(cli("annotate", knolling, "--out", knolling), "is the input image")
    assert knolling.read_bytes() == before


def test_demo_world_writes_a_dataset(tmp_path):
    out = tmp_path / "world"
    result = runner.invoke(app, ["demo", "world", "--count", "2", "--views", "knolling", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 2 images" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "00000_watch_knolling.png", "00000_watch_knolling.txt",
        "00001_camera_knolling.png", "00001_camera_knolling.txt", "world.jsonl",
    ]  # fmt: skip


def test_demo_world_user_errors(cli, tmp_path):
    out = tmp_path / "world"
    assert cli("demo", "world", "--count", "1", out)[0] == 0
    assert_user_error(cli("demo", "world", "--count", "1", out), "not empty", "--overwrite")
    assert cli("demo", "world", "--count", "1", "--overwrite", out)[0] == 0
    assert_user_error(cli("demo", "world", "--views", "side", tmp_path / "a"), "unknown view")
    assert_user_error(cli("demo", "world", "--size", "100", tmp_path / "b"), "multiple of 8")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_eval_runs_any_base_and_lora_and_takes_a_demo_builds_own_settings(
    cli, tiny_sdxl_dir, tiny_lora, tmp_path
):
    """`eval --base B --lora L`: both arms per seed, a report; with demo.toml beside B (a demo
    rebuilt elsewhere), its steps and CFG are the defaults, and given options still win."""
    import shutil

    base = tmp_path / "rebuilt" / "model"
    shutil.copytree(tiny_sdxl_dir, base)
    (base.parent / "demo.toml").write_text("[settings]\nsteps = 2\ncfg = 3.5\nwidth = 64\n")
    out = tmp_path / "report"
    args = ["eval", "a kettle", "--seeds", "2", "--base", str(base), "--lora", str(tiny_lora)]
    code, stdout, _ = cli(*args, "--out", str(out), "--json")
    assert code == 0
    data = json.loads((out / "eval.json").read_text())
    assert data["config"]["steps"] == 2 and data["config"]["cfg"] == 3.5
    assert [(r["seed"], r["arm"]) for r in data["rows"]] == [
        (0, "lora off"), (0, "lora on"), (1, "lora off"), (1, "lora on")
    ]  # fmt: skip
    assert all(r["recognised"] is None for r in data["rows"])  # not a demo object: no verdict
    assert data["classifier_holdout_accuracy"] is None  # so no classifier was fitted
    code, _, _ = cli(*args, "--cfg", "6", "--out", str(out), "--json")
    assert code == 0 and json.loads((out / "eval.json").read_text())["config"]["cfg"] == 6
