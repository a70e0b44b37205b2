"""Our infotext names each LoRA the way A1111 names its file, so a paste finds it.

The rule, as A1111 v1.10.1's own code behaves (run outside this repository; see
docs/interop.md): its Lora folder is listed by file stem, plus ``ss_output_name``
as an alias, and ``<lora:NAME:…>`` is looked up by those names. ``Lora hashes``
re-links a tag to a file only once A1111 knows that file's hash (from its
``sshs_model_hash`` or its hash cache); a file it has never hashed is found by name
or not at all. Our adapter names are lower-cased and '_'-only, so a tag must not
use them: ``Detail-Tweaker.safetensors`` tagged ``detail_tweaker`` gave A1111's
"Lora not found: detail_tweaker".
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from nano_banana.gallery.png import a1111_parameters, parse_a1111, parse_lora_hashes
from nano_banana.gallery.record import LoraUse
from nano_banana.prompt.loratags import apply_lora_tags, find_lora_tags, lora_aliases
from nano_banana.settings import GenerationRequest
from record_fixtures import make_record

SHA = "a1b2c3d4e5f6" + "0" * 52
DATA = "0123456789ab" + "2" * 52  # its AutoV3 is 0123456789ab


def infotext_loras(*loras: LoraUse) -> tuple[list[tuple[str, float]], dict[str, str]]:
    """(the tags' (name, weight), the Lora hashes) of a record with ``loras``."""
    parsed = parse_a1111(a1111_parameters(replace(make_record(), loras=loras)))
    _, tags = find_lora_tags(parsed["prompt"])
    hashes = parse_lora_hashes(parsed["params"].get("Lora hashes", ""))
    return [(t.name, t.weight) for t in tags], hashes


def test_a_tag_names_the_file_stem_not_the_adapter():
    tweaker = LoraUse("detail_tweaker", "Detail-Tweaker.safetensors", SHA, 1.0, 0.8, DATA)
    kohya = LoraUse("structure_kohya", "structure.kohya.safetensors", SHA, 0.5, 0.4, DATA)
    tags, hashes = infotext_loras(tweaker, kohya)
    assert tags == [("Detail-Tweaker", 0.8), ("structure.kohya", 0.4)]  # A1111: splitext
    assert hashes == {"Detail-Tweaker": "0123456789ab", "structure.kohya": "0123456789ab"}


def test_the_adapter_name_stands_in_without_a_file_or_for_twin_stems():
    one = LoraUse("knolling", "style.safetensors", SHA, 1.0, 1.0, DATA)
    two = LoraUse("knolling_2", "style.safetensors", SHA, 1.0, 0.5, DATA)
    training = LoraUse("in_training", "", "", 1.0, 0.3)
    tags, hashes = infotext_loras(one, two, training)
    assert tags == [("knolling", 1.0), ("knolling_2", 0.5), ("in_training", 0.3)]
    assert hashes == {"knolling": "0123456789ab", "knolling_2": "0123456789ab"}  # no hash: out


def test_our_paste_of_that_tag_finds_the_adapter():
    use = LoraUse("detail_tweaker", "Detail-Tweaker.safetensors", SHA, 1.0, 0.8, DATA)
    parsed = parse_a1111(a1111_parameters(replace(make_record(), loras=(use,))))
    loaded = SimpleNamespace(
        path=Path("/loras/Detail-Tweaker.safetensors"), metadata={}, data_sha256=DATA, sha256=SHA
    )
    aliases = {"detail_tweaker": lora_aliases("detail_tweaker", loaded)}
    request = GenerationRequest(prompt=parsed["prompt"], lora_scale=1.0)
    applied = apply_lora_tags(request, aliases, parse_lora_hashes(parsed["params"]["Lora hashes"]))
    assert [(lw.name, lw.weight) for lw in applied.loras] == [("detail_tweaker", 0.8)]
    assert "<lora:" not in applied.prompt
