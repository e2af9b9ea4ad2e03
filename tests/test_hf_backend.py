"""The hf backend's own decoding loop (shared-prefix prefill, finished rows dropped, adapter
merged for adapter answers) against transformers' ``model.generate`` one prompt at a time."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from specdecode import load_registry
from specdecode.evaluate.backends import GenerationConfig, HFBackend, cut_first_call
from specdecode.evaluate.backends import shared_prefix_len as _shared_prefix_len
from specdecode.evaluate.run import load_examples
from specdecode.prompts import PromptOptions

pytestmark = pytest.mark.slow


def test_shared_prefix_leaves_every_prompt_a_token() -> None:
    assert _shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert _shared_prefix_len([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert _shared_prefix_len([[7, 8, 9]]) == 2
    assert _shared_prefix_len([[1, 2], [3, 4]]) == 0


def _reference(backend: HFBackend, prompt: list[int], adapter: bool, **kwargs) -> list[int]:
    """The prototype's loop: one prompt, ``model.generate``, no padding."""
    ids = torch.tensor([prompt], device=backend.device)
    ctx = backend.model.disable_adapter() if backend.has_adapter and not adapter else nullcontext()
    with ctx, torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            pad_token_id=backend.tokenizer.pad_token_id,
            tokenizer=backend.tokenizer,
            **kwargs,
        )
    return out[0, len(prompt) :].tolist()


@pytest.fixture(scope="module")
def backend(smol_run) -> HFBackend:
    _, _, config = smol_run
    return HFBackend("smollm2-135m", config.output_dir)


@pytest.fixture(scope="module")
def requests(synth_split: Path):
    examples = load_examples(
        synth_split / "test.jsonl", "next-call", load_registry("tools4"), PromptOptions()
    )
    return [e.request for e in examples[:8]]


@pytest.mark.parametrize("adapter", [True, False])
def test_batched_answers_equal_one_at_a_time_generate(backend: HFBackend, requests, adapter: bool) -> None:
    # The loop stops at the end of the first complete call; the reference runs on and is cut.
    config = GenerationConfig(max_new_tokens=40, stop_at_first_call=True, batch_size=8)
    got = backend.generate(requests, config, adapter=adapter)
    for request, generation in zip(requests, got):
        prompt = backend.prompt_ids(request)
        ref = _reference(backend, prompt, adapter, max_new_tokens=40)
        text = cut_first_call(backend.tokenizer.decode(ref, skip_special_tokens=True))
        assert generation.text == text
        assert generation.prompt_tokens == len(prompt)
        assert 0 < generation.completion_tokens <= len(ref)
        assert generation.batch_size == len(requests)


def test_prompts_without_a_shared_prefix_and_repetition_penalty(backend: HFBackend) -> None:
    # Raw token ids that differ from the first token on: no shared prefix, so the batch is
    # left-padded from position 0, and rows of different lengths finish at different steps.
    texts = ["The capital of France is", "Numbers: 1, 2, 3,", "def add(a, b):\n    return", "Hi"]
    prompts = [backend.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert _shared_prefix_len(prompts) == 0
    for penalty in (1.0, 1.3):
        config = GenerationConfig(max_new_tokens=12, repetition_penalty=penalty)
        with backend._weights(False), torch.inference_mode():
            got = backend._decode(prompts, config)
        for prompt, new in zip(prompts, got):
            ref = _reference(backend, prompt, False, max_new_tokens=12, repetition_penalty=penalty)
            assert new == ref


def test_adapter_answers_leave_the_base_weights_as_they_were(backend: HFBackend, requests) -> None:
    ids = torch.tensor([backend.prompt_ids(requests[0])], device=backend.device)
    with torch.inference_mode(), backend.model.disable_adapter():
        before = backend.model(input_ids=ids).logits
    backend.generate(requests[:2], GenerationConfig(max_new_tokens=4), adapter=True)
    with torch.inference_mode(), backend.model.disable_adapter():
        after = backend.model(input_ids=ids).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-4)
    with torch.inference_mode():
        lora = backend.model(input_ids=ids).logits
    assert not torch.allclose(lora, before, atol=1e-2)  # the adapter is still applied when enabled


def test_a_held_merge_serves_every_adapter_call_and_is_undone(backend: HFBackend, requests) -> None:
    from peft.tuners.lora import LoraLayer

    from specdecode.data import synthesize
    from specdecode.records import ToolCall
    from specdecode.speculate.predictors import DraftScorer, contexts_of

    layers = [m for m in backend.model.modules() if isinstance(m, LoraLayer)]
    ids = torch.tensor([backend.prompt_ids(requests[0])], device=backend.device)
    with torch.inference_mode():
        lora = backend.model(input_ids=ids).logits  # the adapter beside the weights
        with backend.model.disable_adapter():
            base = backend.model(input_ids=ids).logits
    config = GenerationConfig(max_new_tokens=24, stop_at_first_call=True, batch_size=2)
    free = [g.text for g in backend.generate(requests[:2], config, adapter=True)]
    scorer = DraftScorer(backend, adapter=True, form="conversation")
    context = contexts_of(synthesize(4, seed=3)[0], load_registry("tools4"))[1]
    drafts = [ToolCall(tool_name="search", arguments={"query": "x"}), ToolCall(tool_name="calculator")]
    unmerged_scores = scorer.score(context, drafts)
    scorer.reset()
    with scorer.merged():
        assert all(m.merged for m in layers)
        held = [g.text for g in backend.generate(requests[:2], config, adapter=True)]
        assert all(m.merged for m in layers)  # the call did not unmerge the held weights
        with torch.inference_mode():
            inside = backend.model(input_ids=ids).logits
        merged_scores = scorer.score(context, drafts)
        with pytest.raises(RuntimeError, match="held merged"):
            backend.generate(requests[:1], config, adapter=False)
    assert held == free
    torch.testing.assert_close(inside, lora, rtol=0, atol=1e-3)
    for (got, n), (ref, ref_n) in zip(merged_scores, unmerged_scores):
        assert n == ref_n and got == pytest.approx(ref, abs=2e-3)
    assert not any(m.merged for m in layers)
    with torch.inference_mode(), backend.model.disable_adapter():
        torch.testing.assert_close(backend.model(input_ids=ids).logits, base, rtol=0, atol=1e-4)


def test_sampling_is_seeded(backend: HFBackend, requests) -> None:
    config = GenerationConfig(max_new_tokens=16, temperature=1.0)
    first = [g.text for g in backend.generate(requests[:3], config, adapter=False)]
    again = [g.text for g in backend.generate(requests[:3], config, adapter=False)]
    greedy = [
        g.text for g in backend.generate(requests[:3], GenerationConfig(max_new_tokens=16), adapter=False)
    ]
    assert first == again
    assert first != greedy


def test_the_lm_head_reads_compact_hidden_states(backend: HFBackend, requests) -> None:
    # logits_to_keep as an int makes transformers hand the LM head a strided slice of the hidden
    # states, which torch on CPU multiplies by copying the whole head per row (1.4 s a bf16
    # prefill); an index tensor gives a compact one. Prefix prefill, batched prefill, decoding
    # and draft scoring all go through the head here.
    from specdecode.data import synthesize
    from specdecode.records import ToolCall
    from specdecode.speculate.predictors import DraftScorer, contexts_of

    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    head = backend.model.get_output_embeddings()
    hook = head.register_forward_pre_hook(
        lambda _, args: seen.append((tuple(args[0].shape), args[0].stride()))
    )
    try:
        backend.generate(requests[:4], GenerationConfig(max_new_tokens=2, batch_size=4), adapter=False)
        scorer = DraftScorer(backend, adapter=True, form="conversation")
        context = contexts_of(synthesize(4, seed=3)[0], load_registry("tools4"))[1]
        drafts = [ToolCall(tool_name="search", arguments={"query": "x"}), ToolCall(tool_name="calculator")]
        scorer.score(context, drafts)
    finally:
        hook.remove()
    assert len(seen) >= 4  # prefix, prefill, a decoding step, the scoring pass
    for shape, stride in seen:
        assert stride[0] == shape[1] * shape[2], f"the LM head got a strided view: {shape} {stride}"
