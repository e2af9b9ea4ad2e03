"""What a training run writes beside its adapter, besides the weights: the loss curves and the
model card (the summary itself is :class:`specdecode.results.TrainingSummary`)."""

from __future__ import annotations

import math
from typing import Any

from specdecode.settings import TrainConfig


def curves(
    log_history: list[dict[str, Any]], initial_eval_loss: float | None = None
) -> dict[str, list[dict[str, float]]]:
    """Training and validation curves (with perplexity) from the trainer's log history.

    The evaluation before training (lost from the history when training starts) is the
    validation curve's step 0; the final evaluation repeats the last step's and is dropped."""
    train = [
        {"step": e["step"], "loss": e["loss"], "learning_rate": e.get("learning_rate", 0.0)}
        for e in log_history
        if "loss" in e
    ]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if initial_eval_loss is not None:
        evals.insert(0, (0, initial_eval_loss))
    val: list[dict[str, float]] = []
    for step, loss in evals:
        if val and val[-1]["step"] == step:
            continue
        val.append({"step": step, "loss": loss, "perplexity": math.exp(min(loss, 50))})
    return {"train": train, "validation": val}


def model_card(config: TrainConfig, summary: dict[str, Any]) -> str:
    best = summary.get("best_eval_loss")
    return f"""---
library_name: peft
base_model: {config.model_name}
tags: [specdecode, speculator, lora, trl]
---
# Speculator adapter

A LoRA adapter (r={config.lora_r}, alpha={config.lora_alpha}, all linear projections) trained by
`specdecode train` to predict an agent's next tool call (`{config.form}` form, registry
`{config.registry}`).

| | |
|---|---|
| base model | `{config.model_name}` |
| training file | `{config.train_file}` ({summary["train_examples"]} examples) |
| validation | `{config.val_file or f"held-out {config.val_split}"}` ({summary["val_examples"]} examples) |
| steps | {summary["global_step"]} |
| best validation loss | {best if best is None else f"{best:.4f} (perplexity {math.exp(best):.2f})"} |
| final validation loss | {summary["final_eval_loss"]:.4f} |

Load it with PEFT:

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), "{config.output_dir}")
```

Files: `train_config.yaml` (resolved configuration), `tools.yaml` (registry used),
`training_curves.json`, `training_summary.json`.
"""
