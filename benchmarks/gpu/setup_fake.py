"""GPU machine only: put a RANDOM-weight SmolLM2-135M (real config + real tokenizer, carried) where
specdecode.models.convert_gguf would cache the converted demo GGUF, so `smollm2-135m` resolves
(in-process and in CLI subprocesses) without the 100 MB GGUF. Weights are random: not the demo model."""

import hashlib
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from specdecode.models import cache_dir, demo_gguf

gguf = demo_gguf()
stat = gguf.stat()
key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
out = cache_dir() / "models" / f"{gguf.stem}-{key}"
src = Path(sys.argv[1])
if not (out / "config.json").is_file():
    out.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(src)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    for f in src.iterdir():
        if f.name not in ("config.json",):
            shutil.copy(f, out / f.name)
print("fake smollm2 at", out)
