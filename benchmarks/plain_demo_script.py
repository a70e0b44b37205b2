"""The plain diffusers script a user would write for the demo model: the baseline process.

    .venv/bin/python benchmarks/plain_demo_script.py --prompt "FINAL PROMPT" --seed 4 --out x.png

Loads the demo base and LoRA with diffusers' own calls, draws one image at the demo's settings
(Euler Ancestral, 20 steps, CFG 1.5, 128 px, LoRA scale 1.0, a CPU generator) and saves it.
``bench_cli_server.py`` times it as a whole process against ``nano-banana generate``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True, help="the final prompt (preset applied)")
    parser.add_argument("--negative", default="", help="the final negative prompt")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline

    from nano_banana.demo.assets import demo_base_dir, demo_lora_path, demo_settings

    settings = demo_settings()
    pipe = StableDiffusionXLPipeline.from_pretrained(
        str(demo_base_dir()),
        torch_dtype=torch.float32,
        use_safetensors=True,  # CPU: fp32
    )
    pipe.load_lora_weights(str(demo_lora_path()))
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        args.prompt,
        negative_prompt=args.negative or None,  # none: SDXL's zeroed negative, as the engine
        num_inference_steps=settings.steps,
        guidance_scale=settings.cfg,
        width=settings.width,
        height=settings.height,
        cross_attention_kwargs={"scale": settings.lora_scale},
        generator=torch.Generator("cpu").manual_seed(args.seed),
    ).images[0]
    image.save(args.out)


if __name__ == "__main__":
    main()
