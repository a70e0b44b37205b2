"""Parts-first boards from the command line: generate --compose --callouts, show's plan and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from cli_helpers import assert_user_error
from nano_banana.gallery.png import read_record
from nano_banana.parts.plan import BoardPlan


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


def test_an_edited_plan_re_renders_the_board(cli, tmp_path):
    """show --plan-json, rename a part and drop one, generate --from IMAGE --plan FILE."""
    code, out, err = cli("generate", "a mechanical watch", "--compose", "--seed", "2",
                         "--out", tmp_path / "first")  # fmt: skip
    assert code == 0, err
    first = Path(out.strip())
    plan_file = tmp_path / "plan.json"
    code, out, err = cli("show", first, "--plan-json", plan_file)
    assert code == 0, err
    assert str(plan_file) in out
    plan = json.loads(plan_file.read_text())
    assert plan == json.loads(json.dumps(read_record(first).board["plan"]))
    plan["parts"] = [p for p in plan["parts"] if p["name"] != "buckle"]
    renamed = next(p for p in plan["parts"] if p["name"] == "dial")
    renamed["name"], renamed["look"] = "sapphire dial", "deep blue sunburst dial"
    plan_file.write_text(json.dumps(plan))

    code, out, err = cli("generate", "--from", first, "--plan", plan_file, "--json",
                         "--out", tmp_path / "edited")  # fmt: skip
    assert code == 0, err
    record = read_record(json.loads(out)["images"][0]["path"])
    names = [p["name"] for p in record.board["plan"]["parts"]]
    assert "sapphire dial" in names and "dial" not in names and "buckle" not in names
    assert len(names) == 6 and record.board["check"]["planned"] == 6
    assert BoardPlan.from_json(record.request.plan).part_names() == names  # as it was given
    assert record.request.seed == 2 and record.request.compose

    # --from the edited board draws its plan again; a new parts list plans anew
    code, out, err = cli("generate", "--from", json.loads(out)["images"][0]["path"], "--json",
                         "--parts", "case, strap x2", "--out", tmp_path / "again")  # fmt: skip
    assert code == 0, err
    again = json.loads(out)["images"][0]["record"]
    assert [p["name"] for p in again["board"]["plan"]["parts"]] == ["case", "strap", "strap"]
    assert again["request"]["plan"] is None


def test_a_bad_plan_is_refused_in_one_line_naming_its_file(cli, tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"layout": "knolling"}')
    assert_user_error(
        cli("generate", "a watch", "--plan", bad, "--out", tmp_path), str(bad), "not valid"
    )
    code, out, _ = cli("generate", "a watch", "--seed", "1", "--out", tmp_path)
    assert_user_error(
        cli("show", out.strip(), "--plan-json", bad), "not a parts-first board", "no plan"
    )


def test_compare_with_compose_adds_the_board_as_a_third_panel(cli, tmp_path):
    code, out, err = cli("compare", "a mechanical watch", "--compose", "--seed", "5", "--json",
                         "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    labels = [image["label"] for image in result["images"]]
    assert labels == ["base model (LoRA off)", "base + LoRA (scale 1)", "composed board (7 parts)"]
    boards = [read_record(image["path"]).board for image in result["images"]]
    assert boards[:2] == [None, None] and boards[2]["check"]["planned"] == 7
    assert Image.open(result["sheet"]).width > 3 * 128
