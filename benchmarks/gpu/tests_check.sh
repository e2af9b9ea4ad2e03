#!/bin/bash
# GPU machine only: the model-touching tests on CUDA, with the random-weight SmolLM2 stand-in.
cd "$(dirname "$0")/../.."
ASSETS=$(realpath "${GPU_ASSETS:-runs/gpu}")  # carried: whl/ (wheels), assets/smol (config, tokenizer), assets/fake (stub GGUF package)
export SPECDECODE_CACHE=/tmp/sdc HF_HUB_OFFLINE=1 PYTHONPATH=$PWD/src:$ASSETS/assets/fake
python -m pip install -q --no-index --find-links $ASSETS/whl transformers==5.19.0 peft==0.21.2 trl==1.16.0 \
  datasets==5.2.0 xgrammar==0.2.8 jsonschema pydantic > $OUT/setup.log 2>&1
python benchmarks/gpu/setup_fake.py $ASSETS/assets/smol >> $OUT/setup.log 2>&1
timeout 300 python -m pytest -q -p no:cacheprovider -x --timeout 240 \
  tests/test_conversation_form.py tests/test_speculate_predictors.py tests/test_executor.py \
  tests/test_constrained.py tests/test_speculate_cli.py 2>&1 | tail -40 > $OUT/pytest.log
cat $OUT/pytest.log
