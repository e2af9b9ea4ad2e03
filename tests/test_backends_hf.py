"""The hf decoding loop on a tiny random Qwen3: the first-call check, per-request latency,
prefix reuse for a live speculator, seeded sampling of duplicates, mixed constrained rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from specdecode.evaluate.backends import GenerationConfig, HFBackend, Request, cut_first_call, first_call_end

NESTED = '{"tool_name": "f", "arguments": {"filter": {"year": 2020}}}'
IN_STRING = '{"tool_name": "python", "arguments": {"code": "t = \\"{{x}}\\"; print(t)"}}'


@pytest.fixture(scope="module")
def backend(tiny_qwen3: Path) -> HFBackend:
    return HFBackend(str(tiny_qwen3))


def _chat(question: str, history: list[str] = ()) -> Request:  # type: ignore[assignment]
    user = f"Question: {question}\n\n" + "\n".join(history) + "\n\nNext tool call?"
    messages = [
        {"role": "system", "content": "You predict the next tool call."},
        {"role": "user", "content": user},
    ]
    return Request(id=question + str(len(history)), messages=messages)


@pytest.mark.parametrize("call", [NESTED, IN_STRING])
def test_first_call_check_lets_nested_calls_and_braces_in_strings_finish(
    backend: HFBackend, call: str
) -> None:
    # Regression: the old check (stop string "}}" in the last 16 tokens) ended these rows early.
    config = GenerationConfig(max_new_tokens=500, stop_at_first_call=True)
    tokens = backend.tokenizer(call + '\n{"tool_name": "g", "arguments": {}}', add_special_tokens=False)[
        "input_ids"
    ]
    row = backend._new_row([1, 2, 3], None, config)
    finished_at = next(n for n, token in enumerate(tokens, 1) if backend._accept(row, token, config, 0.0))
    text = backend.tokenizer.decode(tokens[:finished_at])
    assert cut_first_call(text) == call
    assert first_call_end(backend.tokenizer.decode(tokens[: finished_at - 1])) is None


def test_latency_is_per_request_and_batch_size_is_reported(backend: HFBackend) -> None:
    # A constrained row (a boolean: a couple of tokens, then end of turn) finishes long before an
    # unconstrained row of the same batch (random model: runs to max_new_tokens).
    short = Request("short", _chat("q").messages, response_schema={"type": "boolean"})
    long = _chat("q")
    got = backend.generate([short, long], GenerationConfig(max_new_tokens=40, batch_size=2), adapter=False)
    assert got[0].text in ("true", "false")
    assert got[1].completion_tokens == 40
    assert got[0].completion_tokens < got[1].completion_tokens
    assert got[0].latency < got[1].latency  # the old code gave both the batch time / 2
    for g in got:
        assert g.batch_size == 2
        assert g.first_token_latency is not None and 0 < g.first_token_latency <= g.latency
    alone = backend.generate([long], GenerationConfig(max_new_tokens=40, batch_size=1), adapter=False)
    assert alone[0].batch_size == 1 and alone[0].text == got[1].text


def test_prefix_reuse_answers_the_same_and_prefills_less(backend: HFBackend) -> None:
    # A live speculator: prompt k+1 extends prompt k (one more call in the history).
    history = [f'{n}. {{"tool_name": "search", "arguments": {{"query": "step {n}"}}}}' for n in range(1, 5)]
    requests = [_chat("How tall is the tower?", history[:k]) for k in range(4)]
    config = GenerationConfig(max_new_tokens=12, batch_size=1)
    texts = {}
    prefilled = {}
    for reuse in (False, True):
        backend.reuse_prefix, backend._kept = reuse, None
        before, reused_before = backend.prefilled_tokens, backend.reused_tokens
        texts[reuse] = [backend.generate([r], config, adapter=False)[0].text for r in requests]
        texts[reuse] += [g.text for g in backend.generate(requests[::-1], config, adapter=False)]
        prefilled[reuse] = backend.prefilled_tokens - before
        if reuse:
            assert backend.reused_tokens - reused_before > 0
    backend.reuse_prefix, backend._kept = False, None
    assert texts[True] == texts[False]
    assert prefilled[True] < prefilled[False] / 2


def test_duplicate_requests_sample_differently_and_reproducibly(backend: HFBackend) -> None:
    requests = [_chat("same")] * 3
    for batch_size in (1, 3):
        config = GenerationConfig(max_new_tokens=8, temperature=1.0, batch_size=batch_size)
        first = [g.text for g in backend.generate(requests, config, adapter=False)]
        assert len(set(first)) == 3, batch_size
        assert [g.text for g in backend.generate(requests, config, adapter=False)] == first
        config.seed = 1
        assert [g.text for g in backend.generate(requests, config, adapter=False)] != first
