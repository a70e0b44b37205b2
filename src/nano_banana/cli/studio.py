"""``nano-banana studio``: start the web studio (Streamlit) on this machine.

The model options are ``EngineSpec``'s, the same as every image command's. The
options are checked here, then handed to the Streamlit app as one environment
variable (``StudioConfig``) and Streamlit replaces this process.
The settings suit a server: no usage statistics, no file watcher, no browser
opened, and only 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from ..errors import InvalidSettingError, NanoBananaError
from ..generate.spec import EngineSpec
from . import common


def register(app: typer.Typer) -> None:
    app.command("studio")(common.model_command(studio))


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for all."),
    port: int = typer.Option(8501, "--port", help="Port to listen on."),
    lora_dir: Optional[Path] = typer.Option(
        None,
        "--lora-dir",
        help="Folder of .safetensors LoRAs users can pick from.",
        show_default=False,
    ),
    gallery: Optional[Path] = common.gallery_option(),
    max_lora_mb: int = typer.Option(512, "--max-lora-mb", help="Size limit of LoRA uploads (MB)."),
    workers: Optional[int] = common.workers_option("; 0 generates in the web process, to debug"),
    ray: Optional[str] = common.ray_option(),
    token: Optional[str] = typer.Option(
        None,
        "--token",
        envvar="NANO_BANANA_STUDIO_TOKEN",
        help="Access token every browser must give (the printed link carries it). Made up "
        "when --host is reachable from other machines; none on 127.0.0.1.",
        show_default=False,
    ),
    *,
    model: EngineSpec,
) -> None:
    """Open the web studio: create, compare, sweep and browse the gallery in the browser."""
    from ..studio import APP_PATH
    from ..studio.auth import new_token
    from ..studio.config import StudioConfig

    if not 0 < port < 65536:
        raise InvalidSettingError(f"port {port} is out of range: use 1..65535")
    spec = common.resolve_model(model)
    if lora_dir is not None and not lora_dir.is_dir():
        raise NanoBananaError(f"--lora-dir {lora_dir} is not a folder")
    config = StudioConfig(
        engine=replace(spec, preset_dir=_abs(spec.preset_dir)),
        lora_dir=_abs(lora_dir),
        gallery=_abs(gallery),
        max_lora_mb=max_lora_mb,
        workers=workers,
        ray=ray,
        token=token or (None if is_loopback(host) else new_token()),
    )
    _check_before_start(config)
    command = streamlit_command(APP_PATH, host, port, max_lora_mb)
    env = {**os.environ, **config.to_env()}
    typer.echo(
        f"Nano-Banana Studio: {studio_url(host, port, config.token)}  (Ctrl+C stops it)", err=True
    )
    if not is_loopback(host):
        typer.echo(exposure_warning(host, port), err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(command[0], command, env)  # Streamlit takes over this process (and its signals)
    raise typer.Exit(subprocess.call(command, env=env))


def streamlit_command(app_path: Path, host: str, port: int, max_upload_mb: int) -> list[str]:
    """``python -m streamlit run APP`` with settings for an unattended local server."""
    settings = {
        "server.address": host,
        "server.port": port,
        "server.headless": "true",
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        "server.maxUploadSize": max_upload_mb,
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "minimal",
        "client.showErrorDetails": "false",
        "theme.base": "light",
        "theme.primaryColor": "#c8a200",
    }
    flags = [f"--{key}={value}" for key, value in settings.items()]
    return [sys.executable, "-m", "streamlit", "run", str(app_path), *flags]


def _check_before_start(config) -> None:
    """Fail on the command line, not in the browser, for what can be checked without loading."""
    config.engine.check_files()
    if config.gallery is not None:
        from ..gallery.store import Gallery

        Gallery.open(config.gallery)


def _abs(path: Optional[Path]) -> Optional[str]:
    return str(path.expanduser().resolve()) if path is not None else None


def _shown_host(host: str) -> str:
    """The address a browser on another machine uses; localhost only for a loopback bind."""
    if is_loopback(host):
        return "localhost"
    if host in ("0.0.0.0", "::"):
        return socket.gethostname()  # every interface: the machine's name reaches one of them
    return host


def studio_url(host: str, port: int, token: str | None) -> str:
    """The link to open: with the access token, so that whoever gets it is let in."""
    url = f"http://{_shown_host(host)}:{port}"
    return f"{url}/?token={token}" if token else url


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def exposure_warning(host: str, port: int) -> str:
    """Others can reach the studio: say so loudly, and what protects it."""
    return (
        f"WARNING: listening on {host}:{port}, reachable from other machines. Only browsers "
        "with the access token in the link above get in, but it travels unencrypted over "
        "plain HTTP: to share the studio beyond a trusted network, bind to 127.0.0.1 (the "
        "default) and put a reverse proxy with HTTPS and its own login in front of it."
    )
