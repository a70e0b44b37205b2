"""What one studio process serves: the model, its LoRAs, the folders. Passed from the CLI by env.

Streamlit runs the app as a script in its own process, so the CLI hands these
options over as one JSON environment variable; ``StudioConfig`` is frozen and
hashable, so it is also the key under which the app caches its engine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import InvalidSettingError
from ..generate.spec import EngineSpec
from ..options import reject_unknown

ENV_VAR = "NANO_BANANA_STUDIO_CONFIG"
DEFAULT_MAX_LORA_MB = 512  # SDXL LoRAs are tens to a few hundred MB; larger uploads are refused


@dataclass(frozen=True)
class StudioConfig:
    engine: EngineSpec  # model and LoRAs loaded at start (the CLI resolves the demo default)
    lora_dir: str | None = None  # folder whose .safetensors files users may pick
    gallery: str | None = None  # gallery folder; None: NANO_BANANA_GALLERY or the user data folder
    max_lora_mb: int = DEFAULT_MAX_LORA_MB  # upload limit for LoRA files
    upload_dir: str | None = None  # where uploaded LoRAs are kept; None: a temp folder
    # Uploaded LoRAs kept loaded at once (each engine holds every one: ~50-200 MB apiece for
    # SDXL); beyond it the least recently used is unloaded and must be uploaded again.
    max_uploaded_loras: int = 8
    previews: bool = True  # latent previews while denoising
    # Worker processes, each with its own engine. None: one per GPU (one on a CPU-only
    # machine). 0: generate in the web process itself, for debugging and for tests that
    # reach into the engine (watching browsers then slow every image down).
    workers: int | None = None
    # A Ray cluster to run the workers on (Ray's address: "auto" for the cluster this
    # machine joined with `ray start`, "local" for a new one here); None: local processes.
    ray: str | None = None
    # Asked of every browser session before any page runs (studio.auth); None: no token,
    # for a studio bound to this machine only (or behind a proxy that authenticates).
    token: str | None = None

    def __post_init__(self) -> None:
        if self.max_lora_mb < 1:
            raise InvalidSettingError(
                f"max LoRA upload size must be >= 1 MB, got {self.max_lora_mb}"
            )
        if self.workers is not None and self.workers < 0:
            raise InvalidSettingError(
                f"workers must be 0 (in the web process) or more, got {self.workers}"
            )

    def to_env(self) -> dict[str, str]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["engine"] = self.engine.to_dict()
        return {ENV_VAR: json.dumps(data)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StudioConfig:
        """The config the CLI passed; unknown keys are an error, not ignored."""
        raw = (os.environ if environ is None else environ).get(ENV_VAR)
        if not raw:
            raise InvalidSettingError(
                f"no studio configuration in ${ENV_VAR}; start the studio with `nano-banana studio`"
            )
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidSettingError(f"${ENV_VAR} is not valid JSON: {exc}") from None
        reject_unknown(data, cls, where=f"${ENV_VAR}", what="key")
        if not isinstance(data.get("engine"), dict):
            raise InvalidSettingError(f"${ENV_VAR} names no model ('engine')")
        data["engine"] = EngineSpec.from_dict(data["engine"])
        return cls(**data)

    @classmethod
    def token_from_env(cls) -> str | None:
        """The token alone, read before the studio (and its model) is loaded."""
        try:
            return cls.from_env().token
        except InvalidSettingError:
            return None  # the page itself then says what is wrong with the configuration

    def lora_folder(self) -> Path | None:
        return Path(self.lora_dir).expanduser() if self.lora_dir else None
