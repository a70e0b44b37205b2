"""The kohya export is what kohya's sd-scripts writes for SDXL: SGM names, alphas, ss_/sshs_ metadata.

The names are checked on SDXL 1.0's real UNet config (written out below: no
download, no weights) and on the tiny test model, whose export plain diffusers
must load to the same image as the PEFT file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from nano_banana.errors import LoraError
from nano_banana.lora import keys
from nano_banana.lora import load as lora_lib
from nano_banana.lora.hashes import file_hashes
from nano_banana.lora.kohya import kohya_module_name
from nano_banana.lora.sgm import UNetBlocks, sgm_blocks, sgm_module_name
from pipe_helpers import latents, load_pipe

# SDXL 1.0 base's UNet config: the values that decide its block layout.
SDXL_CONFIG = {
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
}
# What the rest of UNet2DConditionModel needs to build SDXL's modules (on the meta device).
SDXL_REST = {
    "sample_size": 128,
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "use_linear_projection": True,
}

SDXL_NAMES = {
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": (
        "input_blocks.4.1.transformer_blocks.0.attn1.to_q"
    ),
    "down_blocks.1.attentions.1.proj_in": "input_blocks.5.1.proj_in",
    "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k": (
        "input_blocks.8.1.transformer_blocks.9.attn2.to_k"
    ),
    "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj": (
        "middle_block.1.transformer_blocks.0.ff.net.0.proj"
    ),
    "up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0": (
        "output_blocks.0.1.transformer_blocks.0.attn1.to_out.0"
    ),
    "up_blocks.1.attentions.2.proj_out": "output_blocks.5.1.proj_out",
    "down_blocks.0.resnets.1.conv2": "input_blocks.2.0.out_layers.3",
    "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.4.0.skip_connection",
    "down_blocks.0.downsamplers.0.conv": "input_blocks.3.0.op",
    "down_blocks.1.downsamplers.0.conv": "input_blocks.6.0.op",
    "mid_block.resnets.1.time_emb_proj": "middle_block.2.emb_layers.1",
    "up_blocks.0.upsamplers.0.conv": "output_blocks.2.2.conv",
    "up_blocks.1.upsamplers.0.conv": "output_blocks.5.2.conv",
    "up_blocks.2.resnets.0.conv1": "output_blocks.6.0.in_layers.2",
    "up_blocks.2.resnets.2.conv2": "output_blocks.8.0.out_layers.3",
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "conv_out": "out.2",
}
NOT_IN_SDXL = [
    "down_blocks.0.attentions.0.proj_in",  # the first level has no transformers
    "down_blocks.2.attentions.1.transformer_blocks.10.attn1.to_q",  # 10 blocks: 0..9
    "down_blocks.1.resnets.2.conv1",  # two ResNets per down level
    "down_blocks.2.downsamplers.0.conv",  # the last level keeps its size
    "up_blocks.2.upsamplers.0.conv",
    "mid_block.attentions.1.proj_in",
    "down_blocks.1.resnets.0.conv3",
]


@pytest.fixture(scope="module")
def sdxl_table():
    return sgm_blocks(UNetBlocks.from_config(SDXL_CONFIG))


@pytest.mark.parametrize("module", SDXL_NAMES)
def test_sdxl_modules_get_their_sgm_names(sdxl_table, module):
    assert sgm_module_name(module, sdxl_table) == SDXL_NAMES[module]


@pytest.mark.parametrize("module", NOT_IN_SDXL)
def test_modules_sdxl_does_not_have_are_refused(sdxl_table, module):
    with pytest.raises(LoraError, match="has no place in this UNet's SGM layout"):
        sgm_module_name(module, sdxl_table)


def test_kohya_keys_are_prefixed_sgm_names(sdxl_table):
    attn = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    assert kohya_module_name("unet", attn, sdxl_table) == (
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    )
    clip = "text_model.encoder.layers.0.self_attn.q_proj"
    assert kohya_module_name("text_encoder", clip, sdxl_table) == (
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"
    )
    assert kohya_module_name("text_encoder_2", clip, sdxl_table).startswith("lora_te2_text_model")


def test_every_sdxl_layer_round_trips_through_diffusers_kohya_reader(sdxl_table):
    """All 794 linear and conv layers of SDXL's UNet: our SGM key, read by diffusers' own
    SDXL converter, names the layer it came from."""
    from accelerate import init_empty_weights
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel(**SDXL_CONFIG, **SDXL_REST)
    layers = [
        name
        for name, m in unet.named_modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    ]
    kohya = {}
    for layer in layers:
        key = kohya_module_name("unet", layer, sdxl_table)
        kohya |= {
            f"{key}.lora_down.weight": torch.zeros(1, 1),
            f"{key}.lora_up.weight": torch.zeros(1, 1),
        }
    config = SimpleNamespace(layers_per_block=SDXL_CONFIG["layers_per_block"])
    converted, _ = StableDiffusionXLPipeline.lora_state_dict(kohya, unet_config=config)
    parts, stray = keys.split_components(converted, keys.COMPONENTS)
    modules, odd = keys.group_modules(keys.to_peft_keys("unet", parts["unet"]))
    assert len(layers) == 794 and not stray and not odd
    assert sorted(modules) == sorted(layers)


# --- the tiny model: a LoRA on attention, feed-forward and ResNet convolutions -------------

TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out"]
CONV_TARGETS = ["conv1", "conv2", "conv_shortcut"]  # training's attn-ff-conv choice
SGM_KEY = re.compile(r"lora_unet_(input_blocks|middle_block|output_blocks)_\d")


@pytest.fixture(scope="module")
def conv_lora(tiny_sdxl_dir, tmp_path_factory) -> Path:
    """rank 4 / alpha 2 (a factor that must survive), as the trainer saves it, with its metadata."""
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig, inject_adapter_in_model

    unet = load_pipe(tiny_sdxl_dir).unet
    torch.manual_seed(3)
    config = LoraConfig(
        r=4, lora_alpha=2.0, target_modules=TARGETS + CONV_TARGETS, init_lora_weights=False
    )
    inject_adapter_in_model(config, unet)
    with torch.no_grad():  # strong enough to change a 2-step 64px image clearly
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.mul_(10.0)
    layers = {k.replace(".default", ""): v for k, v in unet.state_dict().items() if ".lora_" in k}
    out = tmp_path_factory.mktemp("kohya") / "structure.safetensors"
    StableDiffusionXLPipeline.save_lora_weights(
        out.parent,
        weight_name=out.name,
        unet_lora_layers=layers,
        unet_lora_adapter_metadata=config.to_dict(),
    )
    metadata = {
        **lora_lib.trigger_words_metadata(["knolling", "flat lay"]),
        "nano_banana.dataset": json.dumps({"images": 12}),
        "modelspec.implementation": "diffusers",
    }
    return lora_lib.add_lora_metadata(out, metadata)


@pytest.fixture(scope="module")
def exported(conv_lora, tiny_sdxl_dir) -> Path:
    unet = load_pipe(tiny_sdxl_dir).unet.config
    target = conv_lora.with_name("structure.kohya.safetensors")
    return lora_lib.export_kohya(conv_lora, target, {"ss_output_name": "structure"}, unet=unet)


def test_plain_diffusers_loads_the_export_like_the_peft_file(conv_lora, exported, tiny_sdxl_dir):
    tensors = load_file(exported)
    modules = {k.split(".")[0] for k in tensors}
    assert modules and all(SGM_KEY.match(m) for m in modules)
    assert all(f"{m}.alpha" in tensors for m in modules)
    assert any(m.endswith("_in_layers_2") for m in modules)  # conv1
    assert any(m.endswith("_skip_connection") for m in modules)  # conv_shortcut
    assert tensors["lora_unet_input_blocks_3_1_proj_in.alpha"].item() == 2.0

    results = []
    for path in (conv_lora, exported):
        pipe = load_pipe(tiny_sdxl_dir)
        pipe.load_lora_weights(str(path), adapter_name="structure")
        wrapped = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A")]
        assert len(wrapped) == len(modules)  # every exported module found its layer
        results.append(latents(pipe))
    assert not torch.allclose(results[0], latents(load_pipe(tiny_sdxl_dir)), atol=1e-3)
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_the_export_carries_kohyas_metadata(exported):
    lora = lora_lib.read_lora(exported)
    meta = lora.metadata
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_v2"] == "False"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2.0")
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "2"}
    assert json.loads(meta["ss_tag_frequency"]) == {"structure": {"knolling": 12, "flat lay": 12}}
    assert meta["ss_output_name"] == "structure"
    assert meta["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"
    assert "lora_adapter_metadata" not in meta
    assert lora.trigger_words == ("knolling", "flat lay")

    # sshs_model_hash is A1111's LoRA hash (AutoV3): the tensor bytes after the header
    raw = exported.read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert meta["sshs_model_hash"] == hashlib.sha256(raw[8 + header :]).hexdigest()
    assert meta["sshs_model_hash"] == lora.data_sha256 and lora.autov3 == lora.data_sha256[:12]
    # the legacy hash, as kohya takes it: 64 KiB at 1 MiB of the file with its ss_ keys only
    assert meta["sshs_legacy_hash"] == legacy_hash(exported, meta)


def legacy_hash(path: Path, meta: dict[str, str]) -> str:
    training_only = {k: v for k, v in meta.items() if k.startswith("ss_")}
    twin = path.with_name("ss_only.safetensors")
    save_file(load_file(path), twin, metadata=training_only)
    return hashlib.sha256(twin.read_bytes()[0x100000:0x110000]).hexdigest()[:8]


# --- the hash rule ---------------------------------------------------------------------


@pytest.mark.parametrize("numbers", [16, 700_000])  # one block, and data across 1 MiB blocks
def test_autov3_covers_the_tensor_bytes_only(tmp_path, numbers):
    tensors = {"w": torch.arange(numbers, dtype=torch.float32)}
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(tensors, a, metadata={"note": "one"})
    save_file(tensors, b, metadata={"note": "another, longer note"})
    ha, hb = file_hashes(a), file_hashes(b)
    assert ha.sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    assert ha.data_sha256 == hashlib.sha256(tensors["w"].numpy().tobytes()).hexdigest()
    assert ha.sha256 != hb.sha256 and ha.data_sha256 == hb.data_sha256  # metadata: no change
    assert (ha.autov2, ha.autov3) == (ha.sha256[:10], ha.data_sha256[:12])
