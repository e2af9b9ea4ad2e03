"""Training end to end: loss falls, padding-free matches the reference, resume after kill -9,
2-process torchrun, and the embedded SmolLM2 model (reload with plain PEFT, same logits)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli, tiny_train_args


def _summary(out: Path) -> dict:
    return json.loads((out / "training_summary.json").read_text())


def test_tiny_qwen3_assistant_loss_falls(tiny_qwen3: Path, synth_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_cli(
        *tiny_train_args(
            tiny_qwen3,
            synth_split,
            out,
            "--max_steps",
            "16",
            "--eval_steps",
            "8",
            "--save_steps",
            "8",
            "--learning_rate",
            "1e-2",
            "--lora_r",
            "32",
            "--per_device_train_batch_size",
            "8",
        ),
        check=True,
    )
    summary = _summary(out)
    assert summary["global_step"] == 16
    assert summary["final_eval_loss"] < summary["initial_eval_loss"] - 0.5
    curves = json.loads((out / "training_curves.json").read_text())
    assert curves["train"][-1]["loss"] < curves["train"][0]["loss"]
    assert all(v["perplexity"] > 1 for v in curves["validation"])
    # the curve starts at the evaluation before training and has one point per step
    assert curves["validation"][0] == {
        "step": 0,
        "loss": summary["initial_eval_loss"],
        "perplexity": pytest.approx(math.exp(summary["initial_eval_loss"])),
    }
    steps = [v["step"] for v in curves["validation"]]
    assert steps == sorted(set(steps)) and steps[-1] == 16
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "train_config.yaml",
        "tools.yaml",
        "README.md",
    ):
        assert (out / name).is_file(), name
    # specdecode merge: the merged model gives the adapter's logits.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_cli("merge", "--lora_dir", out, "--out", tmp_path / "merged", check=True)
    ids = torch.tensor([[5, 17, 99, 1024, 7]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(input_ids=ids).logits
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen3), out)(
            input_ids=ids
        ).logits
    torch.testing.assert_close(merged, peft, rtol=1e-4, atol=1e-4)
    # Re-running into the same directory without --resume refuses to touch the earlier run.
    proc = run_cli(*tiny_train_args(tiny_qwen3, synth_split, out, "--max_steps", "2"))
    assert proc.returncode == 2 and "--resume" in proc.stderr


@pytest.mark.parametrize(
    ("eval_steps", "save_steps", "evaluated_at"),
    [(2, 2, [0, 2, 4]), (4, 2, [0, 4])],  # choosing the best of two; validated at the end only
)
def test_the_final_model_is_not_evaluated_twice(
    tiny_qwen3: Path,
    synth_split: Path,
    tmp_path: Path,
    eval_steps: int,
    save_steps: int,
    evaluated_at: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Evaluations: one before training and one per ``eval_steps``; the final loss is the one
    measured at the kept step (the reloaded best checkpoint, or the last step when validation comes
    only at the end, with checkpoints halfway for resuming), not one more pass over the validation set."""
    from specdecode.settings import TrainConfig
    from specdecode.train.sft import save, setup, train_model

    config = TrainConfig(
        train_file=str(synth_split / "train.jsonl"),
        val_file=str(synth_split / "val.jsonl"),
        model_name=str(tiny_qwen3),
        output_dir=str(tmp_path / "run"),
        max_steps=4,
        eval_steps=eval_steps,
        save_steps=save_steps,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=1e-2,
    )
    config.validate_run()
    released: list[int] = []
    monkeypatch.setattr("specdecode.train.batching.release_freed_memory", lambda: released.append(1) or True)
    run = setup(config)
    losses: list[float] = []
    evaluate = run.trainer.evaluate

    def counted(*args, **kwargs):  # the trainer's own evaluate, every pass recorded
        result = evaluate(*args, **kwargs)
        losses.append(result["eval_loss"])
        return result

    run.trainer.evaluate = counted
    summary = train_model(config, run)
    assert len(losses) == len(evaluated_at)
    # CPU training hands freed memory back after every update and every validation pass.
    assert len(released) == config.max_steps + len(evaluated_at)
    assert summary["final_eval_loss"] == summary["best_eval_loss"] == min(losses[1:])
    if len(evaluated_at) == 2:
        assert summary["final_eval_loss"] == losses[-1]
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    save(config, run, summary)
    curves = json.loads((tmp_path / "run" / "training_curves.json").read_text())
    assert [v["step"] for v in curves["validation"]] == evaluated_at


def test_padding_free_loss_equals_per_example_loss(tiny_qwen3: Path, smol_tokenizer) -> None:
    """The packed (padding-free) batch gives the same loss as the examples one by one."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from specdecode import load_registry
    from specdecode.data import convert, synthesize
    from specdecode.train.data import DataReport, build_examples

    chats = convert(synthesize(2, seed=9), "steps", load_registry("tools4"))[:3]
    rows = build_examples(smol_tokenizer, chats, 4096, DataReport("x"))
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3).eval()
    batch = DataCollatorForLanguageModeling(pad_token_id=smol_tokenizer.pad_token_id, padding_free=True)(rows)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        total, count = 0.0, 0
        for row in rows:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="sum")
            total, count = total + loss.item(), count + int((labels[0, 1:] != -100).sum())
        labels = batch["labels"][0]
        ref_packed = torch.nn.functional.cross_entropy(packed[0, :-1], labels[1:], reduction="sum")
    assert int((labels[1:] != -100).sum()) == count
    assert ref_packed.item() / count == pytest.approx(total / count, rel=1e-4)


def test_resume_after_kill_reaches_the_same_step(tiny_qwen3: Path, synth_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = tiny_train_args(
        tiny_qwen3, synth_split, out, "--max_steps", "10", "--eval_steps", "2", "--save_steps", "2"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "specdecode", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (out / "checkpoint-4" / "trainer_state.json").exists():
        assert proc.poll() is None, "training ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "training_summary.json").exists()
    run_cli(*args, "--resume", check=True)
    summary = _summary(out)
    assert summary["global_step"] == 10
    assert summary["resumed_from"] and "checkpoint-" in summary["resumed_from"]


def test_torchrun_two_processes_write_one_adapter(
    tiny_qwen3: Path, synth_split: Path, tmp_path: Path
) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    out = tmp_path / "ddp"
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--standalone",  # a free rendezvous port on localhost
        "-m",
        "specdecode",
        *tiny_train_args(
            tiny_qwen3, synth_split, out, "--max_steps", "3", "--eval_steps", "3", "--save_steps", "3"
        ),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(out)
    assert summary["world_size"] == 2 and summary["global_step"] == 3
    assert len(list(out.glob("adapter_model.safetensors"))) == 1
    assert proc.stderr.count("adapter →") == 1, "only rank 0 writes"


@pytest.mark.slow
def test_smollm2_training_lowers_val_loss_and_reloads_with_peft(smol_run, smol_path: str) -> None:
    from peft import PeftModel

    from specdecode.models import load_model

    trainer, summary, config = smol_run
    assert summary["final_eval_loss"] < summary["initial_eval_loss"] - 0.2
    # The trainer wraps forward in bf16 autocast (mixed precision); compare the plain fp32 model.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    reloaded = PeftModel.from_pretrained(load_model(smol_path), config.output_dir).eval()
    ids = torch.tensor([[1, 42, 314, 2718, 28, 11, 906, 77]])
    with torch.no_grad():
        a = model(input_ids=ids.to(model.device)).logits.cpu()
        b = reloaded(input_ids=ids).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_trained_positions_loss_equals_full_logits_loss(tiny_qwen3: Path, smol_tokenizer) -> None:
    """The CPU loss (LM head on trained positions only) equals the model's own full-logits loss."""
    from transformers import AutoModelForCausalLM

    from specdecode import load_registry
    from specdecode.data import convert, synthesize
    from specdecode.train.data import DataReport, build_examples
    from specdecode.train.loss import add_selected_lm_head, trained_positions_loss

    chats = convert(synthesize(2, seed=4), "steps", load_registry("tools4"))[:2]
    rows = build_examples(smol_tokenizer, chats, 4096, DataReport("x"))
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([r["labels"] + [-100] * (width - len(r["labels"])) for r in rows])
    mask = (torch.arange(width)[None] < torch.tensor([[len(r["input_ids"])] for r in rows])).long()
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3).eval()
    add_selected_lm_head(model)
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        ours, accuracy = trained_positions_loss(
            model, {"input_ids": ids, "attention_mask": mask, "labels": labels}
        )
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    assert 0.0 <= accuracy.item() <= 1.0
