"""Generation settings inside PNG files: written with every image, read by ``show`` and ``--from``.

Each saved PNG carries two text chunks:

* ``parameters`` — AUTOMATIC1111's de-facto format, so the A1111 "PNG Info" tab,
  Civitai and the common PyPI readers show our settings (see
  ``shared/reference/png-metadata.md``);
* ``nano_banana`` — our whole ``GenerationRecord`` as sorted JSON, which
  round-trips every setting exactly (the A1111 text cannot: it strips lines and
  has no room for presets or LoRA files).

The two prompts differ in one way. Our record keeps the prompt exactly as the
text encoders got it (``prompt_used``). The A1111 text, as A1111 itself writes
it, carries the LoRAs inside the prompt: ``prompt_used`` followed by one
``<lora:NAME:STRENGTH>`` tag per LoRA (NAME = the file's stem, as A1111 names it;
STRENGTH = weight x lora_scale, the strength applied), and
``Lora hashes: "NAME: AUTOV3"`` on the settings line.
Pasted into A1111 (or into our prompt box, ``prompt.loratags``), the tags are
taken out again and the LoRAs applied at those strengths, so the text encoders
see ``prompt_used`` once more.

Files are written atomically (``nano_banana.atomic``), so a crash never leaves
a half-written image.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..atomic import write_bytes
from ..errors import InvalidSettingError, MetadataError
from ..lora.hashes import AUTOV3_DIGITS, autov3
from ..prompt.loratags import tag_name, with_lora_tags
from ..settings import Sampler
from .record import RECORD_FORMAT, GenerationRecord, LoraUse

A1111_KEY = "parameters"
RECORD_KEY = "nano_banana"
NEGATIVE_PREFIX = "Negative prompt:"

# The reader rule from png-metadata.md: a `key: value` pair of the last line.
A1111_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
MIN_A1111_PAIRS = 3  # fewer matches and the last line is still prompt text
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
# Our record's size limit when reading. Pillow reads at most 1 MB of a compressed chunk
# (MAX_TEXT_CHUNK); a record of capped prompts (settings.MAX_PROMPT_CHARS) and a board
# plan is a few tens of kB, so anything larger was not written by us.
MAX_RECORD_CHARS = 1_000_000


# --- the A1111 `parameters` text ------------------------------------------


def a1111_parameters(record: GenerationRecord) -> str:
    """The AUTOMATIC1111 ``parameters`` text of a record: prompt with its LoRA tags, negative
    prompt, settings line (see the module docstring for how its prompt differs from ours)."""
    strengths = zip(a1111_lora_names(record), (lu.scale for lu in record.loras), strict=True)
    lines = [with_lora_tags(record.prompt_used, strengths)]
    if record.negative_used:
        lines.append(f"{NEGATIVE_PREFIX} {record.negative_used}")
    lines.append(_a1111_settings_line(record))
    return "\n".join(lines)


def _a1111_settings_line(record: GenerationRecord) -> str:
    request = record.request
    version = record.versions.get("nano-banana-studio", "")
    pairs: list[tuple[str, Any]] = [
        ("Steps", request.steps),
        ("Sampler", Sampler(request.sampler).a1111_name),
        ("CFG scale", f"{request.cfg:g}"),
        ("Seed", request.seed),
        ("Size", f"{request.width}x{request.height}"),
        ("Model hash", (record.base_model_hash or "")[:10]),
        ("Model", model_display_name(record.base_model)),
        ("VAE", model_display_name(record.vae) if record.vae else ""),
        # A1111's img2img key, where A1111 puts it; a board's unifying pass is no img2img
        ("Denoising strength", _denoising_strength(record)),
        ("Lora hashes", _lora_list(record, lora_short_hash)),
        ("Lora weights", _lora_list(record, lambda lu: f"{lu.scale:g}")),
        ("Preset", request.preset),
        ("Version", f"nano-banana {version}".strip()),
    ]
    return ", ".join(f"{key}: {_quote(value)}" for key, value in pairs if str(value) != "")


def _denoising_strength(record: GenerationRecord) -> str:
    """A1111's ``Denoising strength`` of an image to image; "" (left out) for any other image."""
    strength = record.request.strength
    return f"{strength:g}" if record.init_image is not None and strength is not None else ""


def model_display_name(base_model: str) -> str:
    """What A1111 shows as ``Model``: the last path component without a weights suffix.

    A repo id keeps only its name, a local path loses its folders (images travel
    to other machines and should not reveal them).
    """
    name = PureWindowsPath(PurePosixPath(base_model).name).name or base_model
    for suffix in _MODEL_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def lora_short_hash(use: LoraUse) -> str:
    """A1111's short hash of a LoRA (AutoV3: 12 hex digits of the tensor bytes' sha256).

    Records made before we stored that digest fall back to the whole file's, as
    they always wrote; an adapter with no file (in training) has none.
    """
    return autov3(use.data_sha256) if use.data_sha256 else use.sha256[:AUTOV3_DIGITS]


def a1111_lora_names(record: GenerationRecord) -> list[str]:
    """The name A1111 knows each LoRA of ``record`` by: its file's stem.

    A1111 lists its Lora folder by file stem (and ``ss_output_name``), and a pasted
    tag finds its file by that name; ``Lora hashes`` only re-links a file whose hash
    A1111 already knows (``sshs_model_hash``, or its hash cache). Our adapter names
    are lower-cased and '_'-only, so ``Detail-Tweaker.safetensors`` would be tagged
    ``detail_tweaker``, which A1111 cannot find. The adapter name stands in for a
    LoRA with no file and for files whose stems collide.
    """
    stems = [Path(lu.file).stem if lu.file else "" for lu in record.loras]
    return [
        stem if stem and stems.count(stem) == 1 else lu.name
        for stem, lu in zip(stems, record.loras, strict=True)
    ]


def _lora_list(record: GenerationRecord, value_of: Any) -> str:
    # Inside the quoted list, ", " and ": " separate items; keep names from breaking it.
    # A1111 leaves out a LoRA with no hash, and so do we.
    names = a1111_lora_names(record)
    pairs = zip(names, record.loras, strict=True)
    items = ((tag_name(name), str(value_of(lu))) for name, lu in pairs)
    return ", ".join(f"{name}: {value}" for name, value in items if value)


def parse_lora_hashes(value: str) -> dict[str, str]:
    """A ``Lora hashes`` value (``"name: hash, name: hash"``) as {name: short hash}, read the
    way A1111 reads it when an infotext is pasted."""
    pairs = (item.split(":", 1) for item in value.split(",") if ":" in item)
    return {name.strip(): short.strip() for name, short in pairs}


def _quote(value: Any) -> str:
    text = str(value)
    if any(ch in text for ch in ',:\n\r"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def parse_a1111(text: str) -> dict[str, Any]:
    """Read an A1111 ``parameters`` text: ``{"prompt", "negative", "params"}``.

    The last line counts as settings only if at least three ``key: value`` pairs
    match the reader rule; quoted values are unquoted. Unlike A1111 we do not strip
    prompt lines, so whitespace inside prompts survives.
    """
    lines = text.split("\n")
    params: dict[str, str] = {}
    if len(A1111_PAIR.findall(lines[-1])) >= MIN_A1111_PAIRS:
        params = {key: _unquote(value) for key, value in A1111_PAIR.findall(lines.pop())}
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if not negative_lines and line.startswith(NEGATIVE_PREFIX):
            negative_lines.append(line[len(NEGATIVE_PREFIX) :].removeprefix(" "))
        elif negative_lines:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    return {
        "prompt": "\n".join(prompt_lines),
        "negative": "\n".join(negative_lines),
        "params": params,
    }


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(value)
    return value


# --- writing ---------------------------------------------------------------


def record_json(record: GenerationRecord) -> str:
    """Our own chunk: the whole record as sorted JSON."""
    return json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False)


def png_bytes(image: Image.Image, record: GenerationRecord) -> bytes:
    """Encode ``image`` as PNG with both metadata chunks."""
    info = PngImagePlugin.PngInfo()
    # Pillow writes latin-1 text as tEXt and anything else (emoji, RTL) as UTF-8 iTXt.
    info.add_text(A1111_KEY, a1111_parameters(record))
    info.add_text(RECORD_KEY, record_json(record))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_png(
    image: Image.Image, record: GenerationRecord, path: Path, *, overwrite: bool = False
) -> Path:
    """Save ``image`` with its metadata at ``path`` atomically; never overwrites unless asked.

    Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is false.
    """
    return write_bytes(path, png_bytes(image, record), overwrite=overwrite)


# --- reading ---------------------------------------------------------------


def read_png_text(path: str | Path) -> dict[str, str]:
    """All text chunks of a PNG (tEXt, zTXt and iTXt), for showing any tool's settings."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise MetadataError(
                    f"{path} is a {image.format or 'non-PNG'} image, not a PNG; "
                    "generation settings are read from PNG files only"
                )
            return {
                str(k): str(v) for k, v in image.text.items()
            }  # .text also reads chunks after IDAT
    except FileNotFoundError:
        raise MetadataError(f"{path} does not exist; give the path of a saved PNG") from None
    except IsADirectoryError:
        raise MetadataError(f"{path} is a folder; give the path of a saved PNG") from None
    except PermissionError:
        raise MetadataError(f"{path} cannot be read (permission denied)") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, OSError) as exc:
        raise MetadataError(f"{path} is not a readable PNG image ({_one_line(exc)})") from None
    except ValueError as exc:  # Pillow's limits on text chunks (a zTXt bomb, too much text)
        raise MetadataError(f"{path} has PNG text we do not read ({_one_line(exc)})") from None


def read_record(path: str | Path) -> GenerationRecord:
    """The ``GenerationRecord`` stored in a PNG we saved.

    Raises ``MetadataError`` (one line) when the file is missing, not a PNG, has
    no ``nano_banana`` chunk (saying whether it has A1111 ``parameters``), or the
    chunk is unreadable.
    """
    path = Path(path)
    chunks = read_png_text(path)
    if RECORD_KEY not in chunks:
        raise MetadataError(missing_record_message(path, chunks))
    return parse_record_json(chunks[RECORD_KEY], source=str(path))


def parse_record_json(text: str, source: str = "record") -> GenerationRecord:
    """Rebuild a record from our JSON chunk, with a one-line error if it is damaged."""
    if len(text) > MAX_RECORD_CHARS:
        raise MetadataError(
            f"{source} has a nano_banana record of {len(text):,} characters, more than any "
            f"image of ours carries ({MAX_RECORD_CHARS:,}); refusing to read it"
        )
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if int(data.get("format", 0)) > RECORD_FORMAT:
            raise MetadataError(
                f"{source} was saved by a newer nano-banana (record format {data['format']}); "
                "update nano-banana to read it"
            )
        return GenerationRecord.from_dict(data)
    except MetadataError:
        raise
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        InvalidSettingError,
        RecursionError,
    ) as exc:
        raise MetadataError(
            f"{source} has a damaged nano_banana record ({_one_line(exc)})"
        ) from None


def missing_record_message(path: Path, chunks: dict[str, str]) -> str:
    """Why ``path`` has no record of ours, saying whether another tool's settings are there."""
    if A1111_KEY in chunks:
        return (
            f"{path} has no nano-banana settings (no '{RECORD_KEY}' PNG chunk), only "
            f"AUTOMATIC1111 'parameters' from another tool; `nano-banana show {path}` prints them"
        )
    return (
        f"{path} carries no generation settings (neither a '{RECORD_KEY}' nor a "
        f"'{A1111_KEY}' PNG chunk); was it re-encoded or saved without metadata?"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
