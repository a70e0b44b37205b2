"""``nano-banana studio``: start the web studio (Streamlit) on this machine.

The options are checked here, then handed to the Streamlit app as one
environment variable (``StudioConfig``) and Streamlit replaces this process.
The settings suit a server: no usage statistics, no file watcher, no browser
opened, and only 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import InvalidSettingError, NanoBananaError


def register(app: typer.Typer) -> None:
    app.command("studio")(studio)


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for all."),
    port: int = typer.Option(8501, "--port", help="Port to listen on."),
    base: Optional[str] = typer.Option(
        None,
        "--base",
        help="Base SDXL model: repo id, diffusers folder or .safetensors file.",
        show_default="the built-in demo model",
    ),
    lora: Optional[list[str]] = typer.Option(
        None,
        "--lora",
        help="LoRA .safetensors file, optionally FILE:WEIGHT; repeat for several.",
        show_default=False,
    ),
    lora_dir: Optional[Path] = typer.Option(
        None,
        "--lora-dir",
        help="Folder of .safetensors LoRAs users can pick from.",
        show_default=False,
    ),
    gallery: Optional[Path] = typer.Option(
        None,
        "--gallery",
        help="Gallery folder.",
        show_default="env NANO_BANANA_GALLERY or the user data folder",
    ),
    vae: Optional[str] = typer.Option(None, "--vae", help="VAE override.", show_default=False),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, float16 or bfloat16."),
    preset_dir: Optional[Path] = typer.Option(
        None, "--preset-dir", help="Folder of extra preset .toml files.", show_default=False
    ),
    max_lora_mb: int = typer.Option(512, "--max-lora-mb", help="Size limit of LoRA uploads (MB)."),
) -> None:
    """Open the web studio: create, compare, sweep and browse the gallery in the browser."""
    from ..studio import APP_PATH
    from ..studio.config import StudioConfig
    from .common import default_base

    if not 0 < port < 65536:
        raise InvalidSettingError(f"port {port} is out of range: use 1..65535")
    loras = list(lora or [])
    if base is None:
        base, loras = default_base(loras, quiet=False)
    if lora_dir is not None and not lora_dir.is_dir():
        raise NanoBananaError(f"--lora-dir {lora_dir} is not a folder")
    config = StudioConfig(
        base=base,
        loras=tuple(loras),
        lora_dir=_abs(lora_dir),
        gallery=_abs(gallery),
        vae=vae,
        device=device,
        dtype=dtype,
        preset_dir=_abs(preset_dir),
        max_lora_mb=max_lora_mb,
    )
    _check_before_start(config)
    command = streamlit_command(APP_PATH, host, port, max_lora_mb)
    env = {**os.environ, **config.to_env()}
    typer.echo(
        f"Nano-Banana Studio: http://{_shown_host(host)}:{port}  (Ctrl+C stops it)", err=True
    )
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
    for spec in config.loras:
        from ..generate.engine import parse_lora_arg

        path, _ = parse_lora_arg(spec)
        if not path.is_file():
            raise NanoBananaError(f"--lora {spec}: no such file")
    if config.gallery is not None:
        from ..gallery.store import Gallery

        Gallery.open(config.gallery)


def _abs(path: Optional[Path]) -> Optional[str]:
    return str(path.expanduser().resolve()) if path is not None else None


def _shown_host(host: str) -> str:
    return "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
