#!/bin/bash
# GPU machine only: every demo stage on CUDA with a RANDOM-weight SmolLM2 (real config and tokenizer).
source "$(dirname "$0")/setup.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt"
python -c "import torch, transformers, peft, trl; print(torch.__version__, transformers.__version__, peft.__version__, trl.__version__)" >> "$OUT/gpu.txt" 2>&1
start=$(date +%s)
timeout 330 python -m specdecode demo --out "$OUT/demo" --n 60 --max-steps 20 > "$OUT/demo.log" 2>&1
echo "rc=$? wall=$(( $(date +%s) - start )) s" >> "$OUT/demo.log"
tail -40 "$OUT/demo.log"
rm -rf "$OUT"/demo/adapter/checkpoint-* "$OUT/demo/chat"
