"""``nano-banana serve``: keep the model loaded in worker processes for this user's commands.

While it runs, ``generate`` (and ``batch``, and scripts through ``serve.client``)
asking for the same model send their jobs to it instead of loading the model
themselves; a command asking for another model, or run with ``--no-server``,
works as before.
"""

from __future__ import annotations

import signal
import sys
from typing import Optional

import typer

from ..generate.spec import EngineSpec
from . import common
from .display import markup


def register(app: typer.Typer) -> None:
    app.command("serve")(common.model_command(serve))


def serve(
    workers: Optional[int] = common.workers_option(),
    ray: Optional[str] = common.ray_option(),
    *,
    model: EngineSpec,
) -> None:
    """Keep the model warm: generate commands for the same model run here, in a second."""
    from ..generate.launch import launcher_for
    from ..generate.pool import PoolConfig
    from ..serve.address import serve_dir
    from ..serve.server import Server

    spec = common.resolve_model(model)
    spec.check_files()
    folder = serve_dir()
    with common.err_console.status(f"loading {markup(spec.base)} ...", spinner="dots"):
        server = Server(
            spec, folder, PoolConfig(workers=workers, previews=False), launcher_for(ray)
        )
    common.err_console.print(
        f"serving {markup(server.pool.model.base_name)} with "
        f"{len(server.pool.worker_pids())} worker(s) at {markup(server.listener.address)}"
        " (Ctrl+C stops it)"
    )
    # SIGTERM (kill, docker stop, systemd) ends it as cleanly as Ctrl+C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
