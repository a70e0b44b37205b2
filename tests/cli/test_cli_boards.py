"""Parts-first boards from the command line: generate --compose --callouts, show's plan and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from cli_helpers import assert_user_error


def test_generate_compose_with_callouts_writes_a_labelled_board(cli, tmp_path):
    code, out, err = cli("generate", "a game controller", "--preset", "repair-manual", "--compose",
                         "--callouts", "--seed", "3", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    board_path, callouts_path = (Path(line) for line in out.split())
    assert callouts_path.name == board_path.stem + "_annotated.png"
    assert Image.open(callouts_path).width > Image.open(board_path).width  # picture + parts list

    code, out, err = cli("show", board_path, "--parts-csv", tmp_path / "parts.csv")
    assert code == 0, err
    assert "board: repair, 7 parts" in out and "  3  shell" in out and "check: " in out
    rows = list(csv.DictReader((tmp_path / "parts.csv").open()))
    assert [r["name"] for r in rows][:3] == ["left trigger", "right trigger", "shell"]
    assert all(int(r["x1"]) > int(r["x0"]) for r in rows)

    code, out, _ = cli("show", board_path, "--json")
    board = json.loads(out)["record"]["board"]
    assert len(board["plan"]["parts"]) == 7 and board["check"]["planned"] == 7


def test_compose_options_reach_the_board(cli, tmp_path):
    code, out, err = cli("generate", "a mechanical watch", "--compose", "--parts", "case, strap x2",
                         "--preset", "exploded-view", "--explode", "0.4", "--strength", "0",
                         "--seed", "1", "--out", tmp_path, "--json")  # fmt: skip
    assert code == 0, err
    record = json.loads(out)["images"][0]["record"]
    plan = record["board"]["plan"]
    assert [p["name"] for p in plan["parts"]] == ["case", "strap", "strap"]
    assert plan["explode"] == 0.4 and record["request"]["strength"] == 0.0


def test_board_errors_are_one_line(cli, tmp_path):
    assert_user_error(
        cli("generate", "a hooded sweatshirt", "--compose", "--out", tmp_path),
        "not in the parts catalog", "--parts",
    )  # fmt: skip
    assert_user_error(
        cli("generate", "a watch", "--compose", "--explode", "2", "--out", tmp_path), "explode"
    )
    code, out, _ = cli("generate", "a watch", "--seed", "1", "--out", tmp_path)
    assert_user_error(
        cli("show", out.strip(), "--parts-csv", tmp_path / "p.csv"), "not a parts-first board"
    )
    assert not (tmp_path / "p.csv").exists()
