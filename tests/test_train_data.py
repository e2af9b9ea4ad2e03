"""The label mask, token by token, against the chat template."""

from __future__ import annotations

import pytest

from specdecode import load_registry
from specdecode.data import convert, synthesize
from specdecode.prompts import render_prompt
from specdecode.train.data import IGNORE, DataReport, build_examples, chat_dicts, tokenize_example


def _encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_steps_mask_matches_template_token_by_token(smol_tokenizer) -> None:
    tok = smol_tokenizer
    [trace] = synthesize(1, seed=11)
    chat = convert([trace], "steps", load_registry("tools4"))[1]
    messages, tools = chat_dicts(chat)
    example = tokenize_example(tok, messages, tools)
    prompt = render_prompt(tok, messages[:-1], tools, add_generation_prompt=True)
    full = render_prompt(tok, messages, tools, add_generation_prompt=False)
    answer = messages[-1]["content"]
    assert full == prompt + answer + "<|im_end|>\n"
    expected_ids = _encode(tok, prompt) + _encode(tok, answer) + [tok.eos_token_id] + _encode(tok, "\n")
    assert example["input_ids"] == expected_ids
    n_prompt, n_answer = len(_encode(tok, prompt)), len(_encode(tok, answer))
    expected_labels = [IGNORE] * n_prompt + _encode(tok, answer) + [tok.eos_token_id] + [IGNORE]
    assert example["labels"] == expected_labels
    # pad == eos here, and the eos of the assistant turn is still trained
    assert tok.pad_token_id == tok.eos_token_id
    assert example["labels"][n_prompt + n_answer] == tok.eos_token_id


def test_native_mask_trains_every_assistant_turn_and_nothing_else(smol_tokenizer) -> None:
    tok = smol_tokenizer
    trace = next(t for t in synthesize(20, seed=1) if len(t.trace) >= 4)
    [chat] = convert([trace], "native", load_registry("tools4"))
    messages, tools = chat_dicts(chat)
    example = tokenize_example(tok, messages, tools)
    ids, labels = example["input_ids"], example["labels"]
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    assert len(runs) == len(trace.trace)
    for run, step in zip(runs, trace.trace):
        text = tok.decode(run)
        assert text.endswith("<|im_end|>")
        assert step.action.tool_name in text and step.thought in text
        assert trace.question not in text and "<|im_start|>" not in text
        if step.observation:
            assert step.observation[:20] not in text


def test_build_examples_counts_truncated_dropped_and_empty(smol_tokenizer) -> None:
    chats = convert(synthesize(6, seed=2), "steps", load_registry("tools4"))
    lengths = [len(tokenize_example(smol_tokenizer, *chat_dicts(c))["input_ids"]) for c in chats]
    prompt_len = min(lengths) - 5  # the shortest prompt's tokens + a few of its answer
    report = DataReport("x")
    rows = build_examples(smol_tokenizer, chats, max_length=prompt_len, report=report)
    assert report.examples == len(chats)
    assert (
        report.kept
        == len(rows)
        == report.truncated + (len(chats) - report.truncated - report.dropped_too_long)
    )
    assert report.truncated + report.dropped_too_long > 0
    assert all(len(r["input_ids"]) <= prompt_len for r in rows)


@pytest.mark.parametrize("form", ["plain", "steps", "native", "conversation"])
def test_every_form_tokenises(smol_tokenizer, form: str) -> None:
    chats = convert(synthesize(3, seed=3), form, load_registry("tools4"))
    report = DataReport("x")
    rows = build_examples(smol_tokenizer, chats, 4096, report)
    assert report.dropped_empty == 0 and len(rows) == len(chats)
