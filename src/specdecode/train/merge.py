"""Merge a LoRA adapter into its base model and save a full model directory."""

from __future__ import annotations

from pathlib import Path

from specdecode.errors import InputError


def merge_adapter(
    lora_dir: str | Path, out: str | Path, base_model: str | None = None, trust_remote_code: bool = False
) -> Path:
    """Write ``base + adapter`` as one model (safetensors + tokenizer) to ``out``."""
    import yaml
    from peft import PeftModel

    from specdecode.models import load_model, load_tokenizer, resolve_model

    lora_dir, out = Path(lora_dir), Path(out)
    if not (lora_dir / "adapter_config.json").is_file():
        raise InputError("not a PEFT adapter directory (no adapter_config.json)", lora_dir)
    if base_model is None and (lora_dir / "train_config.yaml").is_file():
        base_model = yaml.safe_load((lora_dir / "train_config.yaml").read_text())["model_name"]
    if base_model is None:
        raise InputError("give --base_model (the adapter has no train_config.yaml)", lora_dir)
    base_path = resolve_model(base_model)
    model = PeftModel.from_pretrained(
        # the checkpoint's own dtype: auto_dtype would merge (and save) in bf16 wherever a GPU is visible
        load_model(base_path, dtype="auto", trust_remote_code=trust_remote_code),
        str(lora_dir),
    )
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    load_tokenizer(
        str(lora_dir) if (lora_dir / "tokenizer_config.json").is_file() else base_path
    ).save_pretrained(out)
    return out
