"""Constrained next-call decoding: the call schema, and every answer of the embedded SmolLM2
(base, which without constraints often answers in prose) parsing to an offered tool whose
arguments follow that tool's schema (hf with xgrammar; vLLM in test_backends_vllm.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specdecode import load_registry
from specdecode.evaluate.backends import GenerationConfig
from specdecode.evaluate.constrain import call_schema
from specdecode.evaluate.parse import parse_calls
from specdecode.evaluate.run import load_examples
from specdecode.prompts import PromptOptions

jsonschema = pytest.importorskip("jsonschema")


def test_call_schema_accepts_offered_calls_only() -> None:
    tools = load_registry("tools4").tools
    schema = call_schema(tools)
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = {"tool_name": "search", "arguments": {"query": "x"}}
    jsonschema.validate(ok, schema)
    bad = [
        {"tool_name": "browse", "arguments": {"query": "x"}},  # not offered
        {"tool_name": "search", "arguments": {}},  # a required argument missing
        {"tool_name": "search", "arguments": {"query": 3}},  # wrong type
        {"tool_name": "search", "arguments": {"query": "x"}, "why": "?"},  # extra key
        {"tool_name": "calculator", "arguments": {"query": "x"}},  # another tool's arguments
    ]
    for value in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)
    assert len(schema["anyOf"]) == len(tools)
    single = call_schema(tools[:1])
    assert single["properties"]["tool_name"] == {"type": "string", "const": "search"}


def assert_all_valid(texts: list[str], tools) -> None:  # type: ignore[no-untyped-def]
    """Every answer is one JSON call naming an offered tool with arguments valid for it."""
    by_name = {t.name: t for t in tools}
    for text in texts:
        value = json.loads(text)
        assert value["tool_name"] in by_name, text
        jsonschema.validate(value["arguments"], by_name[value["tool_name"]].parameters)
        parsed = parse_calls(text, None, set(by_name))
        assert parsed.ok and parsed.calls[0].tool_name == value["tool_name"]


@pytest.mark.slow
def test_hf_constrained_smollm2_answers_parse_and_name_offered_tools(synth_split: Path) -> None:
    from specdecode.evaluate.backends import HFBackend

    registry = load_registry("tools4")
    examples = load_examples(synth_split / "test.jsonl", "next-call", registry, PromptOptions())[:6]
    requests = [e.request for e in examples]
    for request in requests:
        request.response_schema = call_schema(registry.tools)
    backend = HFBackend("smollm2-135m")
    config = GenerationConfig(max_new_tokens=96, stop_at_first_call=True, batch_size=6)
    got = backend.generate(requests, config, adapter=False)
    assert_all_valid([g.text for g in got], registry.tools)
    assert all(g.completion_tokens < 96 for g in got)


@pytest.mark.slow
def test_grammar_drafts_give_the_token_by_token_answers_in_fewer_passes(
    synth_split: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text a grammar forces (``"arguments": {"`` after a tool's name...) is fed as a draft
    and verified: the same tokens and log-probabilities as one token per forward pass, batched and
    at batch 1 over a kept prefix cache, in fewer passes."""
    from specdecode.evaluate.backends import HFBackend
    from specdecode.evaluate.backends import hf as hf_backend

    registry = load_registry("tools4")
    examples = load_examples(synth_split / "test.jsonl", "next-call", registry, PromptOptions())[:5]
    requests = [e.request for e in examples]
    for request in requests:
        request.response_schema = call_schema(registry.tools)
    backend = HFBackend("smollm2-135m", reuse_prefix=True)
    passes = {"n": 0}
    step = backend._step

    def counted(*args, **kwargs):
        passes["n"] += 1
        return step(*args, **kwargs)

    monkeypatch.setattr(backend, "_step", counted)
    answers, counts = {}, {}
    for draft in (0, hf_backend.MAX_DRAFT):
        monkeypatch.setattr(hf_backend, "MAX_DRAFT", draft)
        for batch in (5, 1):
            passes["n"] = 0
            config = GenerationConfig(max_new_tokens=64, stop_at_first_call=True, batch_size=batch)
            answers[draft, batch] = backend.generate(requests, config, adapter=False)
            counts[draft, batch] = passes["n"]
    reference = answers[0, 5]
    assert_all_valid([g.text for g in reference], registry.tools)
    for got in answers.values():
        assert [g.token_ids for g in got] == [g.token_ids for g in reference]
        for g, r in zip(got, reference):
            assert g.token_logprobs == pytest.approx(r.token_logprobs, abs=1e-4)
    assert backend.reused_tokens > 0  # batch 1 went over the kept cache of the previous request
    drafted = hf_backend.MAX_DRAFT
    assert counts[drafted, 5] < counts[0, 5] and counts[drafted, 1] < 0.7 * counts[0, 1]
