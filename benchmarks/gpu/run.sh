#!/usr/bin/env bash
# The GPU benchmarks, end to end, in one command on a bare CUDA machine (torch, transformers,
# peft, accelerate; no diffusers, no network). Fetch the wheels first, here:
#     bash benchmarks/gpu/fetch-wheels.sh
# then on the GPU machine (device tool: command "bash benchmarks/gpu/run.sh", carry [".whl"]):
#     bash benchmarks/gpu/run.sh
# Results (tables, logs, JSON) go to $OUT if set, else benchmarks/results/. Budget: < 10 min
# on an H100 (each stage has its own timeout, so a slow stage cannot eat the others' results).
# UNTESTED on a GPU so far: no GPU was lent while this was written (see benchmarks/RESULTS.md).
set -uo pipefail
cd "$(dirname "$0")/../.."
RESULTS="${OUT:-benchmarks/results}"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONWARNINGS=ignore
export NANO_BANANA_BENCH_WORK=/tmp/nano-banana-bench
PY=python3

# 0. the carried wheels (diffusers and what it lacks there) and our package from src/
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || { echo "wheel install failed: run fetch-wheels.sh, carry .whl"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD/src"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
  $PY -c "import torch, diffusers, transformers, peft, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| accelerate', accelerate.__version__)"; } 2>&1 | tee "$RESULTS/gpu_machine.txt"

# 1. full-size SDXL architecture, random weights, saved as fp16 safetensors + two rank-16 LoRAs
timeout 120 $PY benchmarks/sdxl_random.py --device cuda 2>&1 | tee "$RESULTS/gpu_build.log"

# 2. generation, 1024 px, 30 steps, CFG 7.5, LoRA 0.8: plain diffusers vs engine (fresh process
#    each, alternating), then engine variants: regional torch.compile, and LoRA left unfused
timeout 200 $PY benchmarks/bench_generate.py --device cuda --model sdxl-random --size 1024 \
  --steps 30 --runs 1 --images 3 --rounds 0 --arms plain,engine \
  --json "$RESULTS/gpu_generate.json" 2>&1 | tee "$RESULTS/gpu_generate.log"
timeout 150 $PY benchmarks/bench_generate.py --device cuda --model sdxl-random --size 1024 \
  --steps 30 --runs 1 --images 2 --rounds 0 --arms engine:+compile_regional,engine:-fuse_lora \
  --json "$RESULTS/gpu_generate_variants.json" 2>&1 | tee "$RESULTS/gpu_generate_variants.log"

# 3. training, 1024 px, rank 16, batch 1 and 4, with/without gradient checkpointing
timeout 170 $PY benchmarks/bench_train.py --device cuda --model sdxl-random --resolution 1024 \
  --batch 1,4 --steps 4 --warmup 2 --runs 1 --arms plain,trainer,trainer+ckpt \
  --json "$RESULTS/gpu_train.json" 2>&1 | tee "$RESULTS/gpu_train.log"
echo "done; results in $RESULTS"
