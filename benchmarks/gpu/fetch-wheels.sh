#!/usr/bin/env bash
# Download, here, the wheels the bare GPU machine lacks, into .whl/ (git-ignored; the device
# tool carries it: run(..., carry=[".whl"])). The GPU image has torch 2.11, transformers 5.17,
# accelerate 1.15, huggingface_hub 1.33, safetensors, numpy, pillow, regex, requests, filelock,
# typer, rich, scipy, matplotlib - but no diffusers. diffusers 0.42.1 needs beyond those only
# importlib_metadata (whose zipp is there). peft is pinned to the version tested here;
# platformdirs is imported by nano_banana's gallery. All are pure-Python wheels.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 importlib_metadata==10.2.0 peft==0.21.2 platformdirs==4.14.8
# One version of each, or the --no-deps install stops.
ls .whl
for whl in .whl/diffusers-*.whl; do
  echo "diffusers requires:"; unzip -p "$whl" '*/METADATA' | grep '^Requires-Dist' | grep -v extra
done
