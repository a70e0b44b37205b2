"""Running ``nano-banana`` in-process as a user would, and checking its one-line errors."""

from __future__ import annotations

import io
import sys

from nano_banana.cli import main

USER_ERROR = 2  # NanoBananaError.exit_code


def invoke(monkeypatch, capsys, args, stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``nano-banana ARGS`` through the console-script entry point; (code, out, err).

    ``stdin`` replaces standard input (e.g. "" for a closed one, as in CI); None leaves it.
    """
    monkeypatch.setattr(sys, "argv", ["nano-banana", *map(str, args)])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(result: tuple[int, str, str], *fragments: str) -> None:
    """Exit code 2 and exactly one 'error: ...' line (no traceback) containing ``fragments``."""
    code, _out, err = result
    assert code == USER_ERROR, result
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def run_two_processes(*args, env: dict[str, str] | None = None, timeout: int = 600):
    """``nano-banana ARGS`` under torchrun with two processes on the CPU (what
    ``accelerate launch --multi_gpu`` runs), offline; the finished ``CompletedProcess``."""
    import os
    import subprocess

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "-m", "nano_banana.cli", *map(str, args)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
