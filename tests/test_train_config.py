"""Training configuration: YAML file, flag precedence, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from specdecode import InputError
from specdecode.train import load_config


def test_defaults_are_the_prototypes() -> None:
    c = load_config(None, {"train_file": "t", "output_dir": "o", "val_file": "v"})
    assert (c.max_length, c.learning_rate, c.per_device_train_batch_size, c.gradient_accumulation_steps) == (
        2048,
        2e-4,
        2,
        8,
    )
    assert (c.num_train_epochs, c.lora_r, c.lora_alpha, c.lora_dropout, c.form) == (3, 16, 32, 0.05, "steps")
    assert c.trust_remote_code is False


def test_yaml_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "train-file: a.jsonl\nval_file: b.jsonl\noutput_dir: out\nlearning_rate: '1e-3'\nlora_r: 8\n"
    )
    c = load_config(cfg, {"lora_r": 4, "seed": None})
    assert (c.train_file, c.val_file, c.learning_rate, c.lora_r, c.seed) == (
        "a.jsonl",
        "b.jsonl",
        1e-3,
        4,
        42,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lora_rank: 8\n", "unknown option 'lora_rank'"),
        ("lora_r: [1\n", "invalid YAML"),
        ("- a\n- b\n", "a mapping"),
        ("lora_r: many\n", "--lora-r 'many'"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train_file: t\noutput_dir: o\nval_file: v\n" + text if "- a" not in text else text)
    with pytest.raises(InputError) as info:
        load_config(cfg, {})
    assert message in info.value.message and str(cfg) in info.value.message


def test_missing_validation_and_bad_steps(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--val_file, or --val-split"):
        load_config(None, {"train_file": "t", "output_dir": "o"})
    assert load_config(None, {"train_file": "t", "output_dir": "o", "val_split": 0.1}).val_split == 0.1
    with pytest.raises(InputError, match="multiple of --eval_steps"):
        load_config(
            None, {"train_file": "t", "output_dir": "o", "val_file": "v", "eval_steps": 3, "save_steps": 4}
        )
    end_only = {"eval_steps": 24, "save_steps": 12, "max_steps": 24}  # validated once: nothing to choose
    assert (
        load_config(None, {"train_file": "t", "output_dir": "o", "val_file": "v", **end_only}).save_steps
        == 12
    )


def test_cli_errors_exit_2_without_traceback(tmp_path: Path, tiny_qwen3: Path, synth_split: Path) -> None:
    proc = run_cli("train", "--train_file", synth_split / "train.jsonl", "--output_dir", tmp_path / "o")
    assert proc.returncode == 2 and "--val-split" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(
        "train",
        "--train_file",
        synth_split / "train.jsonl",
        "--val-split",
        "0.1",
        "--output_dir",
        tmp_path / "o",
        "--model_name",
        tiny_qwen3,
        "--load_in_4bit",
        "--max_steps",
        "1",
    )
    assert proc.returncode == 2 and "QLoRA" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "adapter_model.safetensors").exists()
