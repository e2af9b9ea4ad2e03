"""GPU machine only: a run folder for benchmarks/speculator_latency.py without the demo's weights —
a RANDOM-weight SmolLM2-135M (real config and tokenizer, carried), a random LoRA adapter (r=16, all
linear layers, conversation form) and the demo's synthetic traces. Latency does not depend on the
weights' values; the hit rates of such a run mean nothing."""

import shutil
import sys
from pathlib import Path

import torch
import yaml
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from specdecode.data import synthesize
from specdecode.gaia import stratified_split
from specdecode.jsonl import write_jsonl

src, out = Path(sys.argv[1]), Path(sys.argv[2])
model_dir, adapter = out / "model", out / "adapter"
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src), dtype=torch.float32)
model.save_pretrained(model_dir)
for f in src.iterdir():
    if f.name != "config.json":
        shutil.copy(f, model_dir / f.name)
lora = LoraConfig(
    r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False
)
get_peft_model(model, lora).save_pretrained(adapter)
AutoTokenizer.from_pretrained(model_dir).save_pretrained(adapter)
(adapter / "train_config.yaml").write_text(
    yaml.safe_dump({"form": "conversation", "model_name": str(model_dir)})
)
traces = synthesize(160, 0, "tools4")
by_id = {t.id: t for t in traces}
for name, rows in stratified_split([t.model_dump() for t in traces], seed=0).items():
    write_jsonl(out / "traces" / f"{name}.jsonl", [by_id[r["id"]] for r in rows])
print("run folder at", out)
