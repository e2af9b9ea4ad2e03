"""Shared fixtures: the CLI run as a real subprocess, and a GAIA-format fixture on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run_cli(
    *args: str | Path, cwd: Path | None = None, check: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m specdecode ARGS`` in a subprocess and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "specdecode", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def tiny_train_args(tiny: Path, split: Path, out: Path, *extra: str) -> list[str]:
    """`specdecode train` on the tiny Qwen3 and the synthetic split; later flags override earlier ones."""
    return [
        "train",
        "--train_file",
        str(split / "train.jsonl"),
        "--val_file",
        str(split / "val.jsonl"),
        "--model_name",
        str(tiny),
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        "2",
        "--gradient_accumulation_steps",
        "1",
        "--logging_steps",
        "1",
        *extra,
    ]


# GAIA-*format* rows written by this project (no GAIA text).
GAIA_ROWS = [
    {
        "task_id": f"task-{i:02d}",
        "Question": f"Fixture question number {i}?",
        "Level": str(1 + i % 3),
        "Final answer": str(i * 7),
        "file_name": "sheet.xlsx" if i == 4 else "",
        "Annotator Metadata": {
            "Steps": f'1. Searched "fixture topic {i}" on Google.\n2. Opened the Wikipedia page.\n'
            "3. Noted the value.\n4. Used a calculator to multiply it by 7.",
            "Number of steps": "4",
            "How long did this take?": "5 minutes",
            "Tools": "1. Web browser\n2. Search engine\n3. Calculator\n4. Telepathy",
            "Number of tools": "4",
        },
    }
    for i in range(12)
]


@pytest.fixture()
def gaia_root(tmp_path: Path) -> Path:
    """A GAIA snapshot layout with metadata.jsonl under 2023/validation/."""
    folder = tmp_path / "gaia" / "2023" / "validation"
    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for row in GAIA_ROWS:
            fh.write(json.dumps(row) + "\n")
    return tmp_path / "gaia"


@pytest.fixture(scope="session")
def smol_path() -> str:
    """The embedded SmolLM2-135M-Instruct, converted once to safetensors (cached)."""
    from specdecode.models import resolve_model

    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def smol_tokenizer(smol_path: str):
    from specdecode.models import load_tokenizer

    return load_tokenizer(smol_path)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer) -> Path:
    """A 2-layer random Qwen3 (hidden 64, 3.2 M parameters) with the SmolLM2 tokenizer, on disk."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    tok = smol_tokenizer
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("tiny-qwen3")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def synth_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 synthetic tools4 traces split into train/val/test JSONL files."""
    from specdecode.data import synthesize
    from specdecode.gaia import stratified_split
    from specdecode.jsonl import write_jsonl

    out = tmp_path_factory.mktemp("synth")
    rows = [t.model_dump(exclude_none=True) for t in synthesize(160, seed=0)]
    for name, part in stratified_split(rows, seed=0).items():
        write_jsonl(out / f"{name}.jsonl", part)
    return out


@pytest.fixture(scope="session")
def smol_run(tmp_path_factory: pytest.TempPathFactory, synth_split: Path):
    """One short LoRA training of the embedded SmolLM2 (the demo's recipe): (trainer, summary, config)."""
    from specdecode.train import TrainConfig
    from specdecode.train.sft import fit

    out = tmp_path_factory.mktemp("smol-adapter")
    config = TrainConfig(
        train_file=str(synth_split / "train.jsonl"),
        val_file=str(synth_split / "val.jsonl"),
        model_name="smollm2-135m",
        output_dir=str(out),
        max_steps=16,
        eval_steps=8,
        save_steps=8,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        lora_dropout=0.0,  # as the demo trains: on CPU the dropout masks cost ~40 % of training
        logging_steps=4,
    )
    trainer, summary = fit(config)
    return trainer, summary, config


SMOL_COMPARED = 32  # test steps of ``smol_compared``


@pytest.fixture(scope="session")
def smol_compared(smol_run, synth_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``specdecode compare`` (hf, greedy) of the ``smol_run`` adapter against its base model on
    the first ``SMOL_COMPARED`` next-call steps of the test split: the per-example JSONL."""
    _, _, config = smol_run
    out = tmp_path_factory.mktemp("compare") / "cmp.jsonl"
    run_cli(
        "compare",
        "--base_model",
        "smollm2-135m",
        "--lora_dir",
        config.output_dir,
        "--test_file",
        synth_split / "test.jsonl",
        "--output_file",
        out,
        "--limit",
        str(SMOL_COMPARED),
        check=True,
    )
    return out
