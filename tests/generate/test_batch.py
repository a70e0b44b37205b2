"""Batch generation: every prompt once, resumable, split between processes without overlap."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli_helpers import assert_user_error, invoke, run_two_processes
from nano_banana.errors import InvalidSettingError
from nano_banana.gallery.png import read_record
from nano_banana.generate.batch import read_jobs
from nano_banana.generate.spec import EngineSpec
from nano_banana.settings import GenerationRequest


@pytest.fixture()
def args(tiny_sdxl_dir, tiny_lora, tmp_path, monkeypatch):
    monkeypatch.setenv("NANO_BANANA_GALLERY", str(tmp_path / "gallery"))
    return ["--base", tiny_sdxl_dir, "--lora", tiny_lora, "--steps", 2, "--device", "cpu"]


def test_text_file_runs_each_prompt_once_and_resumes(args, tmp_path, capsys, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a mechanical watch\n\n# a comment\na sneaker\na game controller\n")
    out = tmp_path / "out"
    code, stdout, err = invoke(
        monkeypatch, capsys, ["batch", prompts, "--out", out, "--json", *args]
    )
    assert code == 0, err
    made = json.loads(stdout)["made"]
    assert [m["line"] for m in made] == [1, 4, 5]
    records = [read_record(m["path"]) for m in made]
    assert [r.request.prompt for r in records] == [
        "a mechanical watch",
        "a sneaker",
        "a game controller",
    ]
    assert [r.request.seed for r in records] == [1, 4, 5]  # base seed 0 + line number

    os.remove(made[1]["path"])  # one image lost: a rerun makes only that one again
    code, stdout, _ = invoke(monkeypatch, capsys, ["batch", prompts, "--out", out, "--json", *args])
    again = json.loads(stdout)
    assert code == 0 and [m["line"] for m in again["made"]] == [4]
    assert again["skipped_lines"] == [1, 5]
    assert read_record(again["made"][0]["path"]).request == records[1].request


def test_jsonl_requests_and_bad_lines_named(tmp_path):
    good = tmp_path / "jobs.jsonl"
    good.write_text(
        '{"prompt": "a camera", "preset": "exploded-view", "seed": 9}\n{"prompt": "a watch"}\n'
    )
    jobs = read_jobs(good, GenerationRequest(steps=2), base_seed=100)
    assert jobs[0].request.preset == "exploded-view" and jobs[0].request.seed == 9
    assert jobs[1].request.seed == 102 and jobs[1].request.steps == 2
    assert jobs[0].key != jobs[1].key
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "x", "steps": 0}\n')
    with pytest.raises(InvalidSettingError, match=r"bad.jsonl:2: steps 0 is out of range"):
        read_jobs(bad, GenerationRequest(), 0)
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(InvalidSettingError, match=r"bad.jsonl:2: not valid JSON"):
        read_jobs(bad, GenerationRequest(), 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a café\n".encode("latin-1"), "is not UTF-8 text"),
        (b'{"prompt": "x", "plan": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "jobs.jsonl:1"),
        (b'{"prompt": "x", "steps": ' + b"9" * 5000 + b"}\n", "jobs.jsonl:1"),
        (b'{"prompt": "' + b"w" * 10_001 + b'"}\n', "jobs.jsonl:1: prompt is 10,001 characters"),
    ],
)
def test_files_that_break_json_or_text_readers_are_one_line(tmp_path, content, message):
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(content)
    with pytest.raises(InvalidSettingError, match=message) as info:
        read_jobs(path, GenerationRequest(), 0)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_two_processes_split_the_work(tiny_sdxl_dir, tmp_path):
    """Two real processes (torchrun, the launcher under `accelerate launch --multi_gpu`) on CPU:
    accelerate's PartialState gives each its rank, and each prompt is made exactly once."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"object {i}" for i in range(5)) + "\n")
    out = tmp_path / "out"
    done = run_two_processes(
        "batch", prompts, "--base", tiny_sdxl_dir, "--steps", 2, "--out", out, "--json",
        env={"NANO_BANANA_GALLERY": str(tmp_path / "g")}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    shards = sorted(Path(out).glob("batch-manifest.rank*.jsonl"))
    assert [s.name for s in shards] == ["batch-manifest.rank0.jsonl", "batch-manifest.rank1.jsonl"]
    lines = [json.loads(x)["line"] for s in shards for x in s.read_text().splitlines()]
    assert sorted(lines) == [1, 2, 3, 4, 5]
    assert len(list(Path(out).glob("*.png"))) == 5


def test_boards_from_a_text_file_with_compose_and_jsonl_lines(tmp_path, capsys, monkeypatch):
    """The demo model (no --base): --compose makes every text line a board; a JSONL line asks
    for one with "compose" and its own "parts", beside a plain image."""
    monkeypatch.setenv("NANO_BANANA_GALLERY", str(tmp_path / "gallery"))
    text = tmp_path / "boards.txt"
    text.write_text("a mechanical watch\n")
    lines = tmp_path / "boards.jsonl"
    lines.write_text(
        '{"prompt": "a mechanical watch", "compose": true, "parts": "case, dial, strap x2"}\n'
        '{"prompt": "a mechanical watch"}\n'
    )
    made = []
    for prompts, extra in ((text, ["--compose"]), (lines, [])):
        args = ["batch", prompts, *extra, "--json", "--out", tmp_path / prompts.stem]
        code, out, err = invoke(monkeypatch, capsys, args)
        assert code == 0, err
        made += [read_record(m["path"]) for m in json.loads(out)["made"]]
    catalog_board, parts_board, plain = made
    assert catalog_board.request.compose and len(catalog_board.board["plan"]["parts"]) == 7
    names = sorted(p["name"] for p in parts_board.board["plan"]["parts"])  # knolling: by size
    assert names == ["case", "dial", "strap", "strap"]
    assert parts_board.request.parts == "case, dial, strap x2"
    assert plain.board is None and not plain.request.compose


@pytest.mark.parametrize(
    ("line", "extra", "where", "message"),
    [
        ('{"prompt": "a hooded sweatshirt", "compose": true}', [], 2, "not in the parts catalog"),
        ('{"prompt": "a watch", "preset": "nope"}', [], 2, "unknown preset 'nope'"),
        ('{"prompt": "a watch"}', ["--compose", "--preset", "none"], 1, "has no board layout"),
    ],
)
def test_a_line_that_cannot_be_made_is_named_before_the_model_loads(
    line, extra, where, message, tmp_path, capsys, monkeypatch
):
    loads = []
    monkeypatch.setattr(EngineSpec, "load", lambda spec: loads.append(spec))
    prompts = tmp_path / "jobs.jsonl"
    prompts.write_text('{"prompt": "a mechanical watch"}\n' + line + "\n")
    result = invoke(monkeypatch, capsys, ["batch", prompts, *extra, "--out", tmp_path / "o"])
    assert_user_error(result, f"jobs.jsonl:{where}: ", message)
    assert loads == []


def test_a_jsonl_board_plan_may_be_an_object(tmp_path):
    plan = {"object": "custom", "layout": "knolling", "width": 64, "height": 64}
    lines = tmp_path / "plan.jsonl"
    lines.write_text(json.dumps({"prompt": "a watch", "compose": True, "plan": plan}) + "\n")
    (job,) = read_jobs(lines, GenerationRequest(), 0)
    assert json.loads(job.request.plan) == plan
