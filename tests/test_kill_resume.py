"""Kill and resume: the real CLI process is SIGKILLed part-way, then run again.

For each long-running command: no output file is left truncated by the kill (every line of every
JSONL parses, every JSON file parses), and the rerun finishes with the result of an uninterrupted
run (compare: the same rows and metrics, timing fields aside; train: resumed from its last
checkpoint, the same final step and validation loss). ``traces generate`` has its own kill test
(tests/test_teacher_generate.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from fake_openai import FakeOpenAI

# Fields that measure time, not results (also with a base_/lora_ prefix).
TIMING = ("latency", "tokens_per_s", "batch_size", "seconds")


def assert_no_torn_files(root: Path) -> None:
    """Every JSONL line and every JSON file under ``root`` parses."""
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".jsonl":
            text = path.read_text(encoding="utf-8")
            assert not text or text.endswith("\n"), f"{path}: last line cut off"
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        json.loads(line)
                    except json.JSONDecodeError as exc:  # pragma: no cover - the failure report
                        raise AssertionError(f"{path}:{number}: torn line ({exc})") from None
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


def _strip_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if not any(t in k for t in TIMING)}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def start(args: list[str | Path], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "specdecode", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 300) -> None:
    """SIGKILL ``proc`` (and its children) as soon as ``ready()`` is true."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(
                f"finished (exit {proc.returncode}) before it could be killed:\n{err[-2000:]}"
            )
        assert time.time() < deadline, "no progress to interrupt"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


# ----------------------------------------------------------------------------- compare
class SlowFakeOpenAI(FakeOpenAI):
    """The loopback server, a little slow per request so that a kill lands mid-run."""

    delay = 0.08

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.delay)
        return super().answer(body)


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_compare_killed_and_rerun_equals_an_uninterrupted_run(synth_split: Path, tmp_path: Path) -> None:
    secret = "sk-kill-resume"
    env = {**os.environ, "KR_KEY": secret}
    with SlowFakeOpenAI(secret) as server:

        def args(out: Path) -> list[str | Path]:
            return [
                "compare", "--backend", "openai", "--base-url", server.url,
                "--base_model", "base", "--lora_dir", "speculator",
                "--test_file", synth_split / "test.jsonl", "--output_file", out,
                "--api-key-env", "KR_KEY", "--limit", "24", "--batch_size", "2",
            ]  # fmt: skip

        reference = tmp_path / "reference" / "cmp.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "specdecode", *map(str, args(reference))],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

        out = tmp_path / "killed" / "cmp.jsonl"
        proc = start(args(out), env)
        kill_when(proc, lambda: _lines(out) >= 6)
        assert_no_torn_files(out.parent)
        written = _lines(out)
        assert 6 <= written < 24, "the kill must land mid-run"
        assert not out.with_suffix(".summary.json").exists()

        before = len(server.requests)
        rerun = subprocess.run(
            [sys.executable, "-m", "specdecode", *map(str, args(out))],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        assert f"resuming: {written} of 24" in (rerun.stdout + rerun.stderr).replace("\n", " ")
        # Only the missing examples were asked again (base and adapter: two requests each).
        assert len(server.requests) - before == 2 * (24 - written)

    assert_no_torn_files(out.parent)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = [json.loads(line) for line in reference.read_text().splitlines()]
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert _strip_timing(got) == _strip_timing(want)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    ref_summary = json.loads(reference.with_suffix(".summary.json").read_text())
    for key in ("n", "paired"):
        assert summary[key] == ref_summary[key]
    for side in ("base", "lora"):
        assert summary[side]["metrics"] == ref_summary[side]["metrics"]


# ----------------------------------------------------------------------------- train
def _train_args(tiny: Path, split: Path, out: Path) -> list[str | Path]:
    return [
        "train", "--train_file", split / "train.jsonl", "--val_file", split / "val.jsonl",
        "--model_name", tiny, "--output_dir", out, "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "1", "--logging_steps", "1", "--max_steps", "6",
        "--eval_steps", "1", "--save_steps", "1", "--save_total_limit", "2",
    ]  # fmt: skip


def _checkpoints(out: Path) -> list[int]:
    return sorted(
        int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if p.name.split("-")[1].isdigit()
    )


def test_train_killed_and_resumed_equals_an_uninterrupted_run(
    tiny_qwen3: Path, synth_split: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    run_cli(*_train_args(tiny_qwen3, synth_split, reference), check=True)
    want = json.loads((reference / "training_summary.json").read_text())

    out = tmp_path / "killed"
    args = _train_args(tiny_qwen3, synth_split, out)
    proc = start(args)
    kill_when(proc, lambda: (out / "checkpoint-2" / "trainer_state.json").is_file())
    assert not (out / "training_summary.json").exists()
    assert_no_torn_files(out)
    # A kill that lands while a later checkpoint is being saved leaves it half-written; resuming
    # from one is a known defect (test_resume_skips_a_half_written_checkpoint): set it aside here.
    for n in _checkpoints(out):
        if not (out / f"checkpoint-{n}" / "trainer_state.json").is_file():
            shutil.rmtree(out / f"checkpoint-{n}")

    refused = run_cli(*args)  # rerunning without --resume must not overwrite the checkpoints
    assert refused.returncode == 2 and "--resume" in refused.stderr
    run_cli(*args, "--resume", check=True)
    assert_no_torn_files(out)
    got = json.loads((out / "training_summary.json").read_text())
    assert got["resumed_from"] and "checkpoint-" in got["resumed_from"]
    assert got["global_step"] == want["global_step"] == 6
    assert got["final_eval_loss"] == pytest.approx(want["final_eval_loss"], rel=1e-4)
    assert (out / "adapter_model.safetensors").is_file()


def test_resume_skips_a_half_written_checkpoint(tiny_qwen3: Path, synth_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [a if a != "6" else "2" for a in _train_args(tiny_qwen3, synth_split, out)]  # --max_steps 2
    run_cli(*args, check=True)
    # What SIGKILL during the save of the last checkpoint leaves: weights, but no trainer state.
    (out / "checkpoint-2" / "trainer_state.json").unlink()
    (out / "training_summary.json").unlink()
    proc = run_cli(*args, "--resume")
    assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert proc.returncode == 0, proc.stderr[-1500:]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["global_step"] == 2 and summary["resumed_from"].endswith("checkpoint-1")
