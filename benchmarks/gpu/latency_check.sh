#!/bin/bash
# GPU machine only: benchmarks/speculator_latency.py on CUDA (random-weight stand-in, see latency_run.py).
# Needs runs/gpu2 carried: whl/ (pydantic, jsonschema, xgrammar and their wheels) and smol/ (config,
# tokenizer and chat template of SmolLM2-135M-Instruct).
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --target /tmp/site runs/gpu2/whl/*.whl > "$OUT/setup.log" 2>&1
export PYTHONPATH=$PWD/src:/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt"
python3 benchmarks/gpu/latency_run.py runs/gpu2/smol /tmp/run >> "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
python3 benchmarks/speculator_latency.py --run /tmp/run --model /tmp/run/model --steps 40 2>&1 | tee "$OUT/latency.txt" | grep -v Warning
