"""Safe LoRA loading on a tiny random SDXL: round trips in both layouts, switching, bad files."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nano_banana.atomic import is_temp_name
from nano_banana.errors import LoraError, NanoBananaError, UnsafeFileError
from nano_banana.lora import load as lora_lib
from pipe_helpers import latents, load_pipe

ATTN = ["to_q", "to_k", "to_v", "to_out.0"]
CLIP_ATTN = ["q_proj", "k_proj", "v_proj", "out_proj"]


# --- helpers -------------------------------------------------------------------


def unet_config(base_dir: Path) -> dict:
    """The tiny UNet's config, which numbers the SGM blocks of a kohya export."""
    from diffusers import UNet2DConditionModel

    return dict(UNet2DConditionModel.load_config(base_dir, subfolder="unet"))


def save_peft_lora(
    base_dir: Path,
    out: Path,
    *,
    rank=4,
    alpha=8.0,
    seed=1,
    text_encoders=False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Train-free LoRA: PEFT adapter with random non-zero B, saved the way our trainer saves."""
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig, inject_adapter_in_model

    pipe = load_pipe(base_dir)
    torch.manual_seed(seed)
    parts = {"unet": (pipe.unet, ATTN)}
    if text_encoders:
        parts |= {
            "text_encoder": (pipe.text_encoder, CLIP_ATTN),
            "text_encoder_2": (pipe.text_encoder_2, CLIP_ATTN),
        }
    kwargs = {}
    for part, (model, targets) in parts.items():
        config = LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=False
        )
        # transformers 5.24's add_adapter demands peft>=0.22; PEFT's own injection works on 0.21
        inject_adapter_in_model(config, model)
        with torch.no_grad():  # strong enough to change a 2-step 64px image clearly
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(10.0)
        kwargs[f"{part}_lora_layers"] = {
            k.replace(".default", ""): v for k, v in model.state_dict().items() if ".lora_" in k
        }
        kwargs[f"{part}_lora_adapter_metadata"] = config.to_dict()
    StableDiffusionXLPipeline.save_lora_weights(out.parent, weight_name=out.name, **kwargs)
    if metadata:  # what the trainer adds: trigger words etc., next to diffusers' own entries
        lora_lib.add_lora_metadata(out, metadata)
    return out


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    return text


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lora_files")


@pytest.fixture(scope="module")
def peft_lora_file(tiny_sdxl_dir, lora_dir) -> Path:
    """rank 4, alpha 8 (factor 2, so alpha handling shows), with our trigger-word metadata."""
    return save_peft_lora(
        tiny_sdxl_dir,
        lora_dir / "Exploded-View v2.safetensors",
        metadata=lora_lib.trigger_words_metadata(["exploded view", "knolling"]),
    )


@pytest.fixture(scope="module")
def second_lora_file(tiny_sdxl_dir, lora_dir) -> Path:
    return save_peft_lora(tiny_sdxl_dir, lora_dir / "second.safetensors", rank=2, alpha=2.0, seed=5)


@pytest.fixture(scope="module")
def base_latents(tiny_sdxl_dir) -> torch.Tensor:
    return latents(load_pipe(tiny_sdxl_dir))


@pytest.fixture
def pipe(tiny_sdxl_dir):
    return load_pipe(tiny_sdxl_dir)


@pytest.fixture
def no_torch_load(monkeypatch):
    """Any pickle load during the test fails it."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load must never be called on a LoRA file")

    monkeypatch.setattr(torch, "load", refuse)


# --- reading -------------------------------------------------------------------------


def test_read_lora_reports_format_rank_alpha_and_trigger_words(peft_lora_file, pipe):
    lora = lora_lib.read_lora(peft_lora_file)
    attn_layers = [n for n, _ in pipe.unet.named_modules() if n.endswith(tuple(ATTN))]
    assert lora.name == "exploded_view_v2"
    assert lora.format == "diffusers"
    assert (lora.rank, lora.alpha) == (4, 8.0)
    assert lora.targets == {"unet": len(attn_layers), "text_encoder": 0, "text_encoder_2": 0}
    assert lora.trigger_words == ("exploded view", "knolling")
    assert "lora_adapter_metadata" in lora.metadata  # add_lora_metadata kept diffusers' entry
    assert lora.sha256 == hashlib.sha256(peft_lora_file.read_bytes()).hexdigest()
    assert lora.text_width == pipe.unet.config.cross_attention_dim
    assert lora_lib.read_lora(peft_lora_file, name="mine").name == "mine"


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("Exploded-View v2.safetensors", "exploded_view_v2"),
        ("2024__knolling.safetensors", "lora_2024_knolling"),
        ("ünïcode.safetensors", "n_code"),
        ("---.safetensors", "lora"),
    ],
)
def test_adapter_names_are_sanitised(file_name, expected):
    assert lora_lib.adapter_name_for(file_name) == expected


def test_bad_adapter_name_is_refused(peft_lora_file):
    with pytest.raises(LoraError, match="may only contain"):
        lora_lib.read_lora(peft_lora_file, name="my.lora")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"nano_banana.trigger_words": '["exploded view", "knolling"]'},
            ("exploded view", "knolling"),
        ),
        ({"nano_banana.trigger_words": "knolling, flat lay"}, ("knolling", "flat lay")),
        ({"modelspec.trigger_phrase": "xpl0ded, parts"}, ("xpl0ded", "parts")),
        (
            {
                "ss_tag_frequency": json.dumps(
                    {
                        "10_img": {"knolling": 20, "watch": 3},
                        "5_more": {"knolling": 5, " flat lay": 25},
                    }
                )
            },
            ("knolling", "flat lay"),
        ),
        ({"ss_tag_frequency": "{not json"}, ()),
        ({}, ()),
    ],
)
def test_trigger_words_from_metadata(metadata, expected):
    assert lora_lib.trigger_words_from(metadata) == expected


# --- output: changes, switches off exactly, scales per request ------------------------------


def test_lora_changes_output_and_zero_equals_base(peft_lora_file, pipe, base_latents):
    lora = lora_lib.read_lora(peft_lora_file)
    lora_lib.attach_lora(pipe, lora)

    lora_lib.apply_adapter_state(pipe, {lora.name: 1.0})
    with_lora = latents(pipe)
    assert not torch.allclose(with_lora, base_latents, atol=1e-3)

    lora_lib.apply_adapter_state(pipe, {lora.name: 0.0})
    assert torch.equal(latents(pipe), base_latents)
    lora_lib.apply_adapter_state(pipe, {})
    assert torch.equal(latents(pipe), base_latents)

    lora_lib.apply_adapter_state(pipe, {lora.name: 1.0})  # back on without reloading
    assert torch.equal(latents(pipe), with_lora)


def test_scale_is_set_per_request(peft_lora_file, pipe):
    lora = lora_lib.read_lora(peft_lora_file)
    lora_lib.attach_lora(pipe, lora)
    results = {}
    for scale in (0.5, 1.0, 0.5):
        lora_lib.apply_adapter_state(pipe, {lora.name: scale})
        results.setdefault(scale, []).append(latents(pipe))
    assert not torch.allclose(results[0.5][0], results[1.0][0], atol=1e-3)
    assert torch.equal(results[0.5][0], results[0.5][1])  # no state left over from the 1.0 job


def test_matches_plain_diffusers_loading_the_file(peft_lora_file, pipe, tiny_sdxl_dir):
    """Our state dict (alpha folded in) acts as diffusers' load of the file and its metadata."""
    lora = lora_lib.read_lora(peft_lora_file)
    lora_lib.attach_lora(pipe, lora)
    lora_lib.apply_adapter_state(pipe, {lora.name: 1.0})

    plain = load_pipe(tiny_sdxl_dir)
    plain.load_lora_weights(str(peft_lora_file), adapter_name="nano_banana")
    assert torch.allclose(latents(pipe), latents(plain), atol=1e-5)


def test_several_loras_with_their_own_weights(peft_lora_file, second_lora_file, pipe):
    a, b = lora_lib.read_lora(peft_lora_file), lora_lib.read_lora(second_lora_file)
    lora_lib.attach_lora(pipe, a)
    lora_lib.attach_lora(pipe, b)
    assert lora_lib.loaded_adapters(pipe) == [a.name, b.name]

    lora_lib.apply_adapter_state(pipe, {a.name: 1.0})
    only_a = latents(pipe)
    lora_lib.apply_adapter_state(pipe, {b.name: 1.0})
    only_b = latents(pipe)
    lora_lib.apply_adapter_state(pipe, {a.name: 1.0, b.name: 0.7})
    both = latents(pipe)
    lora_lib.apply_adapter_state(pipe, {a.name: 1.0, b.name: 0.0})
    assert torch.equal(latents(pipe), only_a)
    assert not torch.allclose(both, only_a, atol=1e-4)
    assert not torch.allclose(both, only_b, atol=1e-4)

    lora_lib.detach_lora(pipe, b.name)
    assert lora_lib.loaded_adapters(pipe) == [a.name]
    lora_lib.apply_adapter_state(pipe, {a.name: 1.0})
    assert torch.equal(latents(pipe), only_a)


def test_attaching_a_name_twice_is_an_error_not_a_crash(peft_lora_file, pipe):
    lora = lora_lib.read_lora(peft_lora_file)
    lora_lib.attach_lora(pipe, lora)
    with pytest.raises(LoraError, match="already attached") as err:
        lora_lib.attach_lora(pipe, lora)
    one_line(err)
    lora_lib.detach_lora(pipe, lora.name)
    lora_lib.attach_lora(pipe, lora)  # free again after detaching
    with pytest.raises(LoraError, match="no LoRA named 'nope'"):
        lora_lib.detach_lora(pipe, "nope")
    with pytest.raises(LoraError, match="no LoRA named 'nope'"):
        lora_lib.apply_adapter_state(pipe, {"nope": 1.0})


# --- kohya layout -----------------------------------------------------------------------


def test_export_kohya_round_trip_keeps_rank_alpha_and_output(
    peft_lora_file, lora_dir, pipe, tiny_sdxl_dir
):
    source = lora_lib.read_lora(peft_lora_file)
    out = lora_lib.export_kohya(
        source, lora_dir / "exported_kohya.safetensors", {"note": "test"}, unet=pipe.unet.config
    )
    tensors = load_file(out)
    key = "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q"  # kohya's SGM name
    assert f"{key}.lora_down.weight" in tensors and f"{key}.lora_up.weight" in tensors
    assert tensors[f"{key}.alpha"].item() == 8.0
    assert not list(lora_dir.glob("*.tmp"))

    kohya = lora_lib.read_lora(out)
    assert kohya.format == "kohya"
    assert (kohya.rank, kohya.alpha) == (4, 8.0)
    assert kohya.targets == source.targets
    assert kohya.trigger_words == source.trigger_words
    assert kohya.metadata["note"] == "test" and "lora_adapter_metadata" not in kohya.metadata

    lora_lib.attach_lora(pipe, kohya)
    lora_lib.apply_adapter_state(pipe, {kohya.name: 1.0})
    from_kohya = latents(pipe)
    reference = load_pipe(tiny_sdxl_dir)
    lora_lib.attach_lora(reference, source)
    lora_lib.apply_adapter_state(reference, {source.name: 1.0})
    assert torch.allclose(from_kohya, latents(reference), atol=1e-5)

    plain = load_pipe(tiny_sdxl_dir)  # and plain diffusers reads our kohya file the same way
    plain.load_lora_weights(str(out), adapter_name="nano_banana")
    assert torch.allclose(from_kohya, latents(plain), atol=1e-5)


def test_text_encoder_loras_round_trip_in_both_layouts(tiny_sdxl_dir, lora_dir, base_latents):
    path = save_peft_lora(
        tiny_sdxl_dir,
        lora_dir / "with_te.safetensors",
        rank=4,
        alpha=4.0,
        seed=3,
        text_encoders=True,
    )
    lora = lora_lib.read_lora(path)
    assert lora.targets["text_encoder"] > 0 and lora.targets["text_encoder_2"] > 0
    kohya_path = lora_lib.export_kohya(
        path, lora_dir / "with_te_kohya.safetensors", unet=unet_config(tiny_sdxl_dir)
    )
    assert any(
        k.startswith("lora_te1_text_model_encoder_layers_0_self_attn_q_proj")
        for k in load_file(kohya_path)
    )
    assert any(k.startswith("lora_te2_") for k in load_file(kohya_path))

    results = []
    for file in (path, kohya_path):
        pipe = load_pipe(tiny_sdxl_dir)
        loaded = lora_lib.read_lora(file)
        lora_lib.attach_lora(pipe, loaded)
        lora_lib.apply_adapter_state(pipe, {loaded.name: 1.0})
        results.append(latents(pipe))
        lora_lib.apply_adapter_state(pipe, {})
        assert torch.equal(latents(pipe), base_latents)
    assert not torch.allclose(results[0], base_latents, atol=1e-3)
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_kohya_export_refuses_the_names_of_another_unet(peft_lora_file, lora_dir):
    """Without the tiny UNet's config the export would number blocks as SDXL 1.0's; the widths
    of the LoRA's layers do not fit those blocks, so nothing is written."""
    out = lora_dir / "wrong_unet_kohya.safetensors"
    with pytest.raises(LoraError, match="is 640 wide; export with the base model") as err:
        lora_lib.export_kohya(peft_lora_file, out)
    one_line(err)
    assert not out.exists()


def test_export_failure_leaves_the_old_file(peft_lora_file, lora_dir, monkeypatch, tiny_sdxl_dir):
    out = lora_dir / "kept.safetensors"
    out.write_bytes(b"old contents")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save)
    with pytest.raises(OSError):
        lora_lib.export_kohya(peft_lora_file, out, unet=unet_config(tiny_sdxl_dir))
    assert out.read_bytes() == b"old contents"
    assert not list(lora_dir.glob(".kept*"))
    assert not [p for p in lora_dir.iterdir() if is_temp_name(p.name)]  # the atomic writer's temp


# --- LoRAs that do not fit ---------------------------------------------------------------------


def fake_kohya(width: int, out_width: int = 320) -> dict[str, torch.Tensor]:
    """A kohya LoRA's cross-attention keys: text width 768 is SD 1.5, 2048 is SDXL."""
    sd = {}
    for block in ("down_blocks_1_attentions_0", "up_blocks_1_attentions_0"):
        for proj in ("to_k", "to_v"):
            name = f"lora_unet_{block}_transformer_blocks_0_attn2_{proj}"
            sd[f"{name}.lora_down.weight"] = torch.randn(4, width) * 0.01
            sd[f"{name}.lora_up.weight"] = torch.randn(out_width, 4) * 0.01
            sd[f"{name}.alpha"] = torch.tensor(4.0)
    return sd


@pytest.mark.parametrize(
    ("width", "family"), [(768, "SD 1.5 (text width 768)"), (2048, "SDXL (text width 2048)")]
)
def test_lora_for_another_text_width_is_named_in_one_line(width, family, lora_dir, pipe):
    path = lora_dir / f"width_{width}.safetensors"
    save_file(fake_kohya(width), path)
    lora = lora_lib.read_lora(path)
    assert lora.format == "kohya" and lora.text_width == width
    with pytest.raises(LoraError) as err:
        lora_lib.attach_lora(pipe, lora)
    message = one_line(err)
    assert f"was made for {family}" in message and path.name in message
    assert "text width 96" in message  # the tiny base model's
    assert lora_lib.loaded_adapters(pipe) == []


def write_lora(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, path)
    return path


def test_keys_matching_no_module(lora_dir, pipe, peft_lora_file):
    real = load_file(peft_lora_file)
    renamed = {
        k.replace("down_blocks.1.", "middle_blocks.9.")
        .replace("up_blocks.0.", "middle_blocks.8.")
        .replace("mid_block.", "middle_blocks.7."): v
        for k, v in real.items()
    }
    path = write_lora(lora_dir / "nowhere.safetensors", renamed)
    with pytest.raises(
        LoraError, match=r"matches no module of this model \(0 of 32 modules"
    ) as err:
        lora_lib.check_fits(pipe, lora_lib.read_lora(path))
    one_line(err)

    bare = {
        k.removeprefix("unet."): v for k, v in real.items()
    }  # no component prefix: diffusers skips it
    path = write_lora(lora_dir / "bare.safetensors", bare)
    with pytest.raises(LoraError, match="matches no module"):
        lora_lib.attach_lora(pipe, lora_lib.read_lora(path))


def test_keys_matching_only_a_few(lora_dir, pipe, peft_lora_file):
    real = load_file(peft_lora_file)
    few = {k: v for k, v in real.items() if "down_blocks.1." in k and "attn1.to_q" in k}
    for i in range(5):
        few[f"unet.other_blocks.{i}.to_q.lora_A.weight"] = torch.zeros(4, 64)
        few[f"unet.other_blocks.{i}.to_q.lora_B.weight"] = torch.zeros(64, 4)
    path = write_lora(lora_dir / "few.safetensors", few)
    with pytest.raises(LoraError, match="only 1 of 6 modules match") as err:
        lora_lib.attach_lora(pipe, lora_lib.read_lora(path))
    assert "other_blocks" in one_line(err)


def test_sizes_that_differ_are_one_line(lora_dir, pipe, peft_lora_file):
    real = load_file(peft_lora_file)
    key = next(k for k in real if "attn1.to_q.lora_A" in k)
    real[key] = torch.zeros(4, 999)
    path = write_lora(lora_dir / "wrong_size.safetensors", real)
    with pytest.raises(LoraError, match="1 of 32 modules have other sizes") as err:
        lora_lib.attach_lora(pipe, lora_lib.read_lora(path))
    assert "999" in one_line(err)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_tensors_are_refused(bad, lora_dir, peft_lora_file):
    real = load_file(peft_lora_file)
    key = sorted(real)[3]
    real[key][0, 0] = bad
    path = write_lora(lora_dir / "diverged.safetensors", real)
    with pytest.raises(LoraError, match="NaN" if bad != bad else "infinite") as err:
        lora_lib.read_lora(path)
    assert key in one_line(err)


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        (
            {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)},
            "full model checkpoint",
        ),
        ({"some.weight": torch.zeros(2)}, "no layout we read"),
        ({"lora_unet_x.hada_w1_a": torch.zeros(2, 2)}, "LyCORIS LoHa file; not supported yet"),
        ({"lora_unet_x.something": torch.zeros(2, 2)}, "no LoRA down/up matrices"),
        ({"lora_unet_x.lora_down.weight": torch.zeros(2, 2), "other": torch.zeros(1)}, "no layout"),
    ],
)
def test_files_that_are_not_loras(tensors, match, lora_dir):
    path = write_lora(lora_dir / "not_a_lora.safetensors", tensors)
    with pytest.raises(LoraError, match=match) as err:
        lora_lib.read_lora(path)
    one_line(err)


# --- files that are not safetensors at all -------------------------------------------------------


def pickle_file(path: Path) -> Path:
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, path)  # never loaded
    return path


def legacy_pickle_file(path: Path) -> Path:
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    return path


def truncated_file(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("file_name", "make", "what"),
    [
        ("lora.safetensors", pickle_file, "zip archive"),
        ("lora.ckpt", pickle_file, "zip archive"),
        ("lora.pt", legacy_pickle_file, "pickle"),
        ("lora.bin", pickle_file, "zip archive"),
        ("old.safetensors", legacy_pickle_file, "pickle"),
        (
            "page.safetensors",
            lambda p: p.write_text("<!DOCTYPE html><html>Sign in</html>") and p,
            "HTML",
        ),
        (
            "lfs.safetensors",
            lambda p: (
                p.write_text(
                    "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
                )
                and p
            ),
            "LFS",
        ),
        ("empty.safetensors", lambda p: p.write_bytes(b"") or p, "empty"),
    ],
)
def test_non_safetensors_files_are_refused_by_their_bytes(
    file_name, make, what, tmp_path, no_torch_load
):
    path = make(tmp_path / file_name)
    with pytest.raises(UnsafeFileError, match=what) as err:
        lora_lib.read_lora(path)
    assert file_name in one_line(err)
    assert isinstance(err.value, NanoBananaError)


def test_truncated_download_is_refused(peft_lora_file, tmp_path, no_torch_load):
    path = truncated_file(tmp_path / "cut.safetensors", peft_lora_file)
    with pytest.raises(UnsafeFileError, match="truncated") as err:
        lora_lib.read_lora(path)
    one_line(err)


def test_safetensor_error_is_caught_by_type(tmp_path, no_torch_load):
    """Framing intact, but the tensor entry lies about its size: safetensors itself refuses it."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "inconsistent.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(UnsafeFileError, match="not a readable safetensors file") as err:
        lora_lib.read_lora(path)
    one_line(err)


def test_missing_file(tmp_path):
    with pytest.raises(UnsafeFileError, match="does not exist"):
        lora_lib.read_lora(tmp_path / "absent.safetensors")


# --- crafted files: one line naming the file and the key --------------------------------------


def with_metadata_alpha(packed: str):
    """The PEFT LoRA with its packed LoraConfig metadata replaced."""

    def make(source: Path) -> tuple[dict, dict]:
        from safetensors import safe_open

        with safe_open(source, "pt") as f:
            metadata = dict(f.metadata())
        metadata[lora_lib.keys.PEFT_METADATA_KEY] = packed
        return load_file(source), metadata

    return make


def with_tensor(pick: str, value: torch.Tensor):
    """The PEFT LoRA with its first ``pick`` tensor replaced by ``value``."""

    def make(source: Path) -> tuple[dict, dict]:
        tensors = load_file(source)
        tensors[next(k for k in sorted(tensors) if pick in k)] = value
        return tensors, {}

    return make


def kohya_with_alpha(value: torch.Tensor):
    def make(source: Path) -> tuple[dict, dict]:
        tensors = fake_kohya(2048)
        tensors[sorted(k for k in tensors if k.endswith(".alpha"))[0]] = value
        return tensors, {}

    return make


CRAFTED = {
    "alpha_matrix": (kohya_with_alpha(torch.ones(2, 2)), ".alpha' should be one number"),
    "alpha_empty": (kohya_with_alpha(torch.zeros(0)), ".alpha' should be one number"),
    "metadata_alpha_text": (
        with_metadata_alpha('{"unet.r": 4, "unet.lora_alpha": "abc"}'),
        "unet.lora_alpha should be a finite number, got 'abc'",
    ),
    "metadata_alpha_list": (
        with_metadata_alpha('{"unet.lora_alpha": [8]}'),
        "unet.lora_alpha should be a finite number",
    ),
    "metadata_alpha_nan": (
        with_metadata_alpha('{"unet.lora_alpha": NaN}'),
        "unet.lora_alpha should be a finite number",
    ),
    "metadata_pattern_text": (
        with_metadata_alpha('{"unet.alpha_pattern": {".*to_q": "x"}, "unet.lora_alpha": 8}'),
        "unet.alpha_pattern['.*to_q'] should be a finite number",
    ),
    "metadata_deep": (with_metadata_alpha("[" * 100_000 + "]" * 100_000), "lora_adapter_metadata"),
    "metadata_not_object": (with_metadata_alpha("[1]"), "not a JSON object"),
    "scalar_lora_a": (with_tensor("lora_A", torch.tensor(1.0)), "lora_A.weight' is a 0-D tensor"),
    "empty_lora_a": (with_tensor("lora_A", torch.zeros(0, 64)), "lora_A.weight' is empty"),
    "vector_lora_b": (with_tensor("lora_B", torch.zeros(64)), "lora_B.weight' is a 1-D tensor"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_are_refused_in_one_line_naming_file_and_key(case, peft_lora_file, tmp_path):
    make, fragment = CRAFTED[case]
    tensors, metadata = make(peft_lora_file)
    path = tmp_path / f"{case}.safetensors"
    save_file(tensors, path, metadata=metadata or None)
    with pytest.raises(LoraError) as err:
        lora_lib.read_lora(path)
    message = one_line(err)
    assert path.name in message and fragment in message, message


def test_an_unreadable_file_is_one_line(peft_lora_file, tmp_path, monkeypatch):
    path = tmp_path / "locked.safetensors"
    path.write_bytes(peft_lora_file.read_bytes())
    real_open = Path.open

    def denied(self, *args, **kwargs):  # what chmod 000 does for anyone but root
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(UnsafeFileError, match="could not be read: Permission denied") as err:
        lora_lib.read_lora(path)
    assert path.name in one_line(err)


# LyCORIS and DoRA files as their trainers write them (key suffixes of kohya-layout modules;
# PEFT's DoRA adds lora_magnitude_vector beside lora_A/lora_B): refused by name, never half read.
_MODULE = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
FAMILY_FILES = {
    "LoHa": {f"{_MODULE}.hada_w1_a": torch.ones(4, 2), f"{_MODULE}.hada_w1_b": torch.ones(2, 4),
             f"{_MODULE}.hada_w2_a": torch.ones(4, 2), f"{_MODULE}.hada_w2_b": torch.ones(2, 4),
             f"{_MODULE}.alpha": torch.tensor(2.0)},
    "LoKr": {f"{_MODULE}.lokr_w1": torch.ones(2, 2), f"{_MODULE}.lokr_w2": torch.ones(2, 2),
             f"{_MODULE}.alpha": torch.tensor(2.0)},
    "DoRA": {f"{_MODULE}.lora_down.weight": torch.ones(2, 4),
             f"{_MODULE}.lora_up.weight": torch.ones(4, 2),
             f"{_MODULE}.dora_scale": torch.ones(1, 4), f"{_MODULE}.alpha": torch.tensor(2.0)},
    "PEFT DoRA": {
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.ones(2, 4),
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.ones(4, 2),
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_magnitude_vector": torch.ones(4),
    },
}  # fmt: skip


@pytest.mark.parametrize(("kind", "words"), [("LoHa", "LyCORIS LoHa"), ("LoKr", "LyCORIS LoKr"),
                                             ("DoRA", "DoRA"), ("PEFT DoRA", "DoRA")])  # fmt: skip
def test_lora_family_files_are_refused_by_name(kind, words, tmp_path):
    path = write_lora(tmp_path / f"{kind.replace(' ', '_')}.safetensors", FAMILY_FILES[kind])
    with pytest.raises(LoraError) as err:
        lora_lib.read_lora(path)
    message = one_line(err)
    assert words in message and "not supported yet" in message and path.name in message
