"""``batch``: a prompts file into the gallery; resumable, and data-parallel under accelerate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from ..generate.spec import EngineSpec
from . import common
from .display import json_text, markup


def register(app: typer.Typer) -> None:
    app.command(name="batch")(common.image_command(batch, seed=False))


def batch(
    prompts: Path = typer.Argument(
        ..., help="Text file (one prompt per line) or JSONL of requests."
    ),
    base_seed: int = typer.Option(
        0, "--base-seed", help="Seed of line N is base seed + N (unless the line sets its own)."
    ),
    *,
    settings: dict,
    model: EngineSpec,
    output: common.OutputOptions,
) -> None:
    """Generate every prompt of a file; rerun to finish an interrupted batch.

    Several GPUs: accelerate launch --multi_gpu --num_processes N -m nano_banana.cli batch FILE
    (one pipeline per process, every N-th prompt each).
    """
    import torch
    from accelerate import PartialState

    from ..generate.batch import read_jobs, run_batch
    from ..generate.reproduce import apply_overrides

    defaults = apply_overrides(model.request_defaults(), settings)
    # every line checked before any model work: its settings, preset and board
    jobs = read_jobs(prompts, defaults, base_seed, check=model.check_request)
    common.check_before_loading(model, output)
    # Without CUDA, accelerate counts processes only when told the run is on CPU.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes > 1 and model.device == "auto":
        model = replace(model, device=str(state.device))
    if state.num_processes == 1:  # one process: a running `nano-banana serve` may take the jobs
        engine = common.engine_or_server(model, output)
    else:
        engine = common.build_engine(model, quiet=output.json or not state.is_main_process)
    manifest_dir = output.out or _gallery_root(output)

    def save(result):
        return common.save_result(result, output)

    def show(job, path):
        common.err_console.print(f"[dim]line {job.index}[/] {markup(path)}")

    report = run_batch(
        engine,
        jobs,
        save,
        manifest_dir,
        state.process_index,
        state.num_processes,
        on_job=None if output.json else show,
    )
    _summarise(report, state, output)


def _gallery_root(output: common.OutputOptions) -> Path:
    from ..gallery.store import Gallery

    return Gallery.open(output.gallery).root


def _summarise(report, state, output) -> None:
    summary = {
        "process": state.process_index,
        "made": [{"line": job.index, "path": str(path)} for job, path in report.done],
        "skipped_lines": [job.index for job in report.skipped],
        "failed": [{"line": job.index, "error": error} for job, error in report.failed],
    }
    if output.json:
        typer.echo(json_text(summary, indent=None))
    else:
        common.err_console.print(
            f"process {state.process_index}: made {len(report.done)}, skipped {len(report.skipped)} "
            f"already done, {len(report.failed)} failed"
        )
        for job, error in report.failed:
            common.err_console.print(f"[red]line {job.index}:[/] {markup(error)}")
    if report.failed:
        raise typer.Exit(1)
