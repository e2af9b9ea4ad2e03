#!/bin/bash
# GPU machine only: every demo stage on CUDA with a RANDOM-weight SmolLM2 (real config and tokenizer).
cd "$(dirname "$0")/../.."
ASSETS=$(realpath "${GPU_ASSETS:-runs/gpu}")  # carried: whl/ (wheels), assets/smol (config, tokenizer), assets/fake (stub GGUF package)
export SPECDECODE_CACHE=/tmp/sdc HF_HUB_OFFLINE=1 PYTHONPATH=$PWD/src:$ASSETS/assets/fake

python -m pip install -q --no-index --find-links $ASSETS/whl transformers==5.19.0 peft==0.21.2 trl==1.16.0 \
  datasets==5.2.0 xgrammar==0.2.8 jsonschema pydantic > $OUT/setup.log 2>&1
python benchmarks/gpu/setup_fake.py $ASSETS/assets/smol >> $OUT/setup.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt
python -c "import torch, transformers, peft, trl; print(torch.__version__, transformers.__version__, peft.__version__, trl.__version__)" >> $OUT/gpu.txt 2>&1
start=$(date +%s)
timeout 330 python -m specdecode demo --out $OUT/demo --n 60 --max-steps 20 > $OUT/demo.log 2>&1
echo "rc=$? wall=$(( $(date +%s) - start )) s" >> $OUT/demo.log
tail -40 $OUT/demo.log
rm -rf $OUT/demo/adapter/checkpoint-* $OUT/demo/chat
