"""Every shell command of the README runs, in order, in a scratch directory.

The README shows the real workflow (a GAIA copy, Gemini and OpenAI-compatible teachers, Qwen3-4B,
vLLM). Here the same commands run with small stand-ins: GAIA-format questions written by this
project, a loopback server speaking the Gemini and OpenAI wire formats as the teacher, a 2-layer
random Qwen3 for Qwen3-4B, and the hf backend for vLLM. Code blocks marked ``text`` (multi-GPU
launchers, ``vllm serve``) and the ``make`` / ``pip`` set-up lines are not run here; ``make test``
is what runs this file, and ``make demo`` has its own test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fake_llm_server import FakeLLMServer

README = Path(__file__).resolve().parent.parent / "README.md"
KEY = "sk-readme-test-key"


def bash_blocks(text: str) -> list[str]:
    """The ```bash blocks of a Markdown text, in order."""
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def runnable(block: str) -> str:
    """A block without its set-up lines (make, pip): those are what runs this test."""
    lines = [line for line in block.splitlines() if not re.match(r"\s*(make|pip) ", line)]
    return "\n".join(lines).strip()


def _teacher_reply(request) -> str:
    words = re.findall(r"[A-Za-z]+", request.user)[-4:]
    return json.dumps(
        {
            "trace": [
                {
                    "thought": "Look it up.",
                    "action": {"tool_name": "search", "arguments": {"query": " ".join(words)}},
                },
                {"thought": "Done.", "action": {"tool_name": "final_answer", "arguments": {"answer": "42"}}},
            ],
            "final_answer": "42",
        }
    )


def _gaia_copy(root: Path) -> None:
    """A GAIA-format folder (questions written by this project, not GAIA's)."""
    from specdecode.data import synthesize

    folder = root / "gaia" / "2023" / "validation"
    folder.mkdir(parents=True)
    with (folder / "metadata.jsonl").open("w") as fh:
        for t in synthesize(32, 3, "tools17"):
            row = {
                "task_id": t.id,
                "Question": t.question,
                "Level": str(t.level),
                "Final answer": t.final_answer,
            }
            fh.write(json.dumps({**row, "file_name": "", "Annotator Metadata": {}}) + "\n")


def _otel_spans(path: Path) -> None:
    attrs = [
        {"key": "gen_ai.tool.name", "value": {"stringValue": "search"}},
        {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": '{"query": "mercury"}'}},
    ]
    span = {
        "traceId": "0" * 31 + "1",
        "spanId": "0" * 15 + "1",
        "name": "execute_tool search",
        "startTimeUnixNano": "1000000000",
        "endTimeUnixNano": "1500000000",
        "attributes": attrs,
    }
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")


@pytest.mark.slow
def test_readme_commands_run(tmp_path: Path, tiny_qwen3: Path) -> None:
    blocks = [runnable(b) for b in bash_blocks(README.read_text(encoding="utf-8"))]
    blocks = [b for b in blocks if b]
    assert any("specdecode train" in b for b in blocks) and any("speculate replay" in b for b in blocks)
    _gaia_copy(tmp_path)
    _otel_spans(tmp_path / "otel_spans.jsonl")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GEMINI_API_KEY": KEY,
        "OPENAI_API_KEY": KEY,
        "SPECDECODE_LLM_CACHE": str(tmp_path / "llm-cache.sqlite"),
    }
    with FakeLLMServer(KEY, _teacher_reply) as server:
        substitutions = [
            ("Qwen/Qwen3-4B", str(tiny_qwen3)),
            (
                "--provider gemini --model gemini-2.5-pro",
                f"--provider gemini --model gemini-2.5-pro --base-url {server.gemini_url}",
            ),
            ("http://localhost:8000/v1", server.openai_url),
            ("--backend vllm", "--backend hf"),
            (
                "--output_dir adapters/qwen3-4b",
                "--output_dir adapters/qwen3-4b --max_steps 2 --eval_steps 1 --save_steps 2 "
                "--per_device_train_batch_size 2 --gradient_accumulation_steps 1",
            ),
            ("--out results/speculate", "--out results/speculate --max-new-tokens 16"),
            (
                "--output_file results/compare.jsonl",
                "--output_file results/compare.jsonl --max_new_tokens 16",
            ),
        ]
        for block in blocks:
            script = block
            for old, new in substitutions:
                script = script.replace(old, new)
            if "traces import agent_logs.jsonl" in script:  # the agent's own logs: exported traces
                export = ["traces", "export", "traces/train.jsonl", "--out", "agent_logs.jsonl"]
                subprocess.run(
                    [sys.executable, "-m", "specdecode", *export],
                    cwd=tmp_path,
                    env=env,
                    check=True,
                    capture_output=True,
                )
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            assert proc.returncode == 0, f"README block failed:\n{block}\n--- stderr:\n{proc.stderr[-3000:]}"
    for made in (
        "questions.jsonl",
        "splits/test.jsonl",
        "traces/train.jsonl",
        "traces/logged.jsonl",
        "traces/from_spans.jsonl",
        "adapters/qwen3-4b/adapter_model.safetensors",
        "results/compare.summary.json",
        "results/speculate/summary.json",
        "results/report.html",
    ):
        assert (tmp_path / made).exists(), made
    everything = "".join(p.read_text(errors="ignore") for p in tmp_path.rglob("*.json*") if p.is_file())
    assert KEY not in everything
