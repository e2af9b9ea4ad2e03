#!/bin/bash
# GPU machine only: the model-touching tests on CUDA, with the random-weight SmolLM2 stand-in.
source "$(dirname "$0")/setup.sh"
timeout 300 python -m pytest -q -p no:cacheprovider --timeout 240 \
  tests/test_conversation_form.py tests/test_speculate_predictors.py tests/test_executor.py \
  tests/test_constrained.py tests/test_speculate_cli.py 2>&1 | tail -40 > "$OUT/pytest.log"
cat "$OUT/pytest.log"
