"""The conversation form: masks token by token, step prompts as token prefixes of the training
conversation (a text template and a Qwen3-style native template), windows for long conversations."""

from __future__ import annotations

import copy
import json

import pytest

from specdecode import load_registry
from specdecode.data import convert, synthesize
from specdecode.data.convert import step_examples
from specdecode.prompts import PromptOptions, call_text, render_prompt
from specdecode.records import TraceRecord
from specdecode.train.data import (
    IGNORE,
    DataReport,
    WindowStats,
    build_conversation_examples,
    build_examples,
    chat_dicts,
    plan_windows,
    tokenize_example,
)

# A Qwen3-style template written for these tests (same structure as Qwen3's: tools in the system
# turn, <tool_call> blocks, tool results as <tool_response> in a user turn, an empty think block
# for the last assistant turn or one with reasoning, and the no-think generation prompt).
QWEN3_LIKE = "{%- if tools %}\n{{- '<|im_start|>system\\n' }}\n{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}\n{{- '# Tools\\n\\nFunction signatures are within <tools></tools> XML tags:\\n<tools>' }}\n{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}\n{{- '\\n</tools>\\n\\nReturn each function call within <tool_call></tool_call> XML tags.<|im_end|>\\n' }}\n{%- elif messages[0].role == 'system' %}\n{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n{%- endif %}\n{%- set ns = namespace(last_query=messages|length - 1, found=false) %}\n{%- for message in messages[::-1] %}\n{%- if not ns.found and message.role == 'user' %}{%- set ns.found = true %}{%- set ns.last_query = messages|length - 1 - loop.index0 %}{%- endif %}\n{%- endfor %}\n{%- for message in messages %}\n{%- set content = message.content if message.content is string else '' %}\n{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}\n{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}\n{%- elif message.role == 'assistant' %}\n{%- set reasoning = message.reasoning_content if message.reasoning_content is string else '' %}\n{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}\n{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n{%- else %}\n{{- '<|im_start|>assistant\\n' + content }}\n{%- endif %}\n{%- for call in message.tool_calls or [] %}\n{%- if content or not loop.first %}{{- '\\n' }}{%- endif %}\n{{- '<tool_call>\\n{\"name\": \"' + call.function.name + '\", \"arguments\": ' + (call.function.arguments | tojson) + '}\\n</tool_call>' }}\n{%- endfor %}\n{{- '<|im_end|>\\n' }}\n{%- elif message.role == 'tool' %}\n{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}\n{{- '\\n<tool_response>\\n' + content + '\\n</tool_response>' }}\n{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}\n{%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n{{- '<|im_start|>assistant\\n' }}\n{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}\n{%- endif %}\n"  # noqa: E501
QWEN3_ADDED_TOKENS = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<tool_response>",
    "</tool_response>",
]


@pytest.fixture(scope="module")
def qwen_like(smol_tokenizer):
    """The SmolLM2 tokenizer with a Qwen3-style template and Qwen3's added tool/think tokens."""
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = QWEN3_LIKE
    tok.add_tokens(QWEN3_ADDED_TOKENS)
    return tok


@pytest.fixture(params=["text", "native"])
def tokenizer(request, smol_tokenizer, qwen_like):
    return smol_tokenizer if request.param == "text" else qwen_like


def _enc(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _runs(example: dict[str, list[int]]) -> list[list[int]]:
    runs, current = [], []
    for token, label in zip(example["input_ids"], example["labels"]):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def _target_text(tok, call) -> str:
    """What the template writes for one call after the generation prompt."""
    if tok.chat_template == QWEN3_LIKE:
        body = json.dumps({"name": call.tool_name, "arguments": call.arguments}, ensure_ascii=False)
        return f"<tool_call>\n{body}\n</tool_call>"
    return call_text(call)


def _trace(min_steps: int = 4, registry: str = "tools4") -> TraceRecord:
    return next(t for t in synthesize(40, seed=5, registry=registry) if len(t.trace) >= min_steps)


def test_conversation_record_shape() -> None:
    trace = _trace()
    [chat] = convert([trace], "conversation", load_registry("tools4"))
    roles = [m.role for m in chat.messages]
    assert roles[:2] == ["system", "user"] and chat.messages[1].content == trace.question
    calls = [m for m in chat.messages if m.role == "assistant"]
    assert [(m.tool_calls[0].function.name, m.tool_calls[0].function.arguments) for m in calls] == [
        (s.action.tool_name, s.action.arguments) for s in trace.trace
    ]
    assert all(m.content is None for m in calls)  # the call only: no thought
    assert roles[-1] == "assistant"  # nothing after the last call
    observed = sum(bool(s.observation) for s in trace.trace[:-1])
    assert roles.count("tool") == observed
    assert chat.form == "conversation" and chat.source_id == trace.id and chat.n_steps == len(trace.trace)
    assert {t["function"]["name"] for t in chat.tools} == set(load_registry("tools4").names)
    assert convert([trace.model_copy(update={"trace": []})], "conversation", load_registry("tools4")) == []


def test_mask_trains_every_call_and_its_end_of_turn_only(tokenizer) -> None:
    """Token by token: before each call, the ids are the step-k prompt's ids; each call's tokens
    and its end-of-turn token are trained, nothing else is."""
    tok = tokenizer
    trace = _trace()
    [chat] = convert([trace], "conversation", load_registry("tools4"))
    messages, tools = chat_dicts(chat)
    example = tokenize_example(tok, messages, tools)
    ids, labels = example["input_ids"], example["labels"]
    assistant_at = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    expected = [IGNORE] * len(ids)
    for index, step in zip(assistant_at, trace.trace):
        prompt = _enc(tok, render_prompt(tok, messages[:index], tools, add_generation_prompt=True))
        assert ids[: len(prompt)] == prompt
        target = [*_enc(tok, _target_text(tok, step.action)), tok.eos_token_id]
        assert ids[len(prompt) : len(prompt) + len(target)] == target
        expected[len(prompt) : len(prompt) + len(target)] = target
    assert labels == expected
    assert len(_runs(example)) == len(trace.trace)


def test_step_prompt_is_a_token_prefix_of_the_training_conversation(tokenizer) -> None:
    """The speculator's prompt for call k (``step_examples``, rendered for generation) is a token
    prefix of the training conversation, and call k's trained tokens are the same in both."""
    tok = tokenizer
    registry = load_registry("tools17")
    traces = [t for t in synthesize(12, seed=3, registry="tools17") if len(t.trace) >= 2][:4]
    conversations = {c.source_id: c for c in convert(traces, "conversation", registry)}
    steps = step_examples(traces, registry, prompt_form="conversation")
    assert len(steps) == sum(len(t.trace) for t in traces)
    for trace in traces:
        full = tokenize_example(tok, *chat_dicts(conversations[trace.id]))
        runs = _runs(full)
        for example in (s for s in steps if s.source_id == trace.id):
            messages, tools = chat_dicts(example)
            prompt = _enc(tok, render_prompt(tok, messages[:-1], tools, add_generation_prompt=True))
            assert full["input_ids"][: len(prompt)] == prompt
            one = tokenize_example(tok, messages, tools)
            assert one["input_ids"] == full["input_ids"][: len(one["input_ids"])]
            assert _runs(one) == [runs[example.step]]


def test_step_examples_match_the_steps_form_ids_and_gold() -> None:
    registry = load_registry("tools17")
    traces = synthesize(10, seed=4, registry="tools17")
    plain = step_examples(traces, registry, prompt_form="steps")
    assert [c.model_dump() for c in plain] == [c.model_dump() for c in convert(traces, "steps", registry)]
    conv = step_examples(traces, registry, prompt_form="conversation")
    key = lambda c: (c.id, c.step, c.n_steps, c.level, c.source_id)  # noqa: E731
    assert [key(c) for c in conv] == [key(c) for c in plain]
    for a, b in zip(conv, plain):
        gold = a.messages[-1].tool_calls[0].function
        assert json.loads(b.messages[-1].content) == {"tool_name": gold.name, "arguments": gold.arguments}
        assert a.tools and a.messages[1].content == next(t for t in traces if t.id == a.source_id).question
    with pytest.raises(ValueError):
        step_examples(traces, registry, prompt_form="plain")  # type: ignore[arg-type]


def test_native_form_renders_prefix_by_prefix_with_a_qwen3_style_template(qwen_like) -> None:
    """Qwen3 drops the empty think block from earlier turns; the prompt builder keeps it, as generated."""
    [chat] = convert([_trace()], "native", load_registry("tools4"))
    example = tokenize_example(qwen_like, *chat_dicts(chat))
    assert len(_runs(example)) >= 4


def _long_trace(n: int = 9) -> TraceRecord:
    steps = [
        {
            "thought": "",
            "action": {"tool_name": "search", "arguments": {"query": f"topic {k} " + "detail " * (k % 3)}},
            "observation": f"result {k}: " + "lorem ipsum dolor sit amet " * 12,
        }
        for k in range(n)
    ]
    return TraceRecord(id="long", question="A question that needs many calls?", trace=steps)


def test_long_conversations_split_into_windows_that_train_every_call_once(tokenizer) -> None:
    tok = tokenizer
    trace = _long_trace()
    options = PromptOptions(max_observation_chars=400)
    [chat] = convert([trace], "conversation", load_registry("tools4"), options)
    messages, tools = chat_dicts(chat)
    whole = tokenize_example(tok, messages, tools)
    max_length = len(whole["input_ids"]) // 3
    report = DataReport("x")
    rows, stats = build_conversation_examples(tok, [chat], max_length, report)
    assert stats.windows == len(rows) == report.kept >= 3 and stats.split == 1
    assert stats.targets == stats.targets_trained == len(trace.trace)
    assert stats.targets_truncated == stats.targets_dropped == 0 and report.truncated == 0
    head = _enc(tok, render_prompt(tok, messages[:2], tools, add_generation_prompt=False))
    trained = []
    for row in rows:
        assert len(row["input_ids"]) <= max_length
        assert row["input_ids"][: len(head) - 2] == head[: len(head) - 2]  # system + question kept
        trained += _runs(row)
    # every call trained exactly once, in order, with the tokens it has in the whole conversation
    assert trained == _runs(whole)
    # later windows carry the most recent calls as context (untrained)
    assert stats.context_calls > 0
    last = tok.decode(rows[-1]["input_ids"])
    first_target = len(trace.trace) - len(_runs(rows[-1]))
    assert f"topic {first_target - 1} " in last and "topic 0 " not in last


def test_windows_count_calls_too_long_to_fit(smol_tokenizer) -> None:
    tok = smol_tokenizer
    [chat] = convert([_long_trace(4)], "conversation", load_registry("tools4"), PromptOptions(400))
    head_len = len(_enc(tok, render_prompt(tok, chat_dicts(chat)[0][:2], chat.tools, False)))
    report = DataReport("x")
    rows, stats = build_conversation_examples(tok, [chat], head_len + 5, report)
    assert stats.targets == 4
    assert stats.targets_trained + stats.targets_truncated + stats.targets_dropped == 4
    assert stats.targets_trained < 4 and report.truncated + report.dropped_too_long == stats.windows
    assert all(len(r["input_ids"]) <= head_len + 5 for r in rows)


def test_plan_windows_covers_every_call_once() -> None:
    sizes = [50, 10, 80, 30, 30, 200, 10, 10]
    length = lambda a, b: 100 + sum(sizes[a:b])  # noqa: E731
    for max_length in (150, 250, 400, 10_000):
        windows = plan_windows(length, len(sizes), max_length)
        targets = [k for _, t, b in windows for k in range(t, b)]
        assert targets == list(range(len(sizes)))
        for a, t, b in windows:
            assert a <= t < b
            assert length(a, b) <= max_length or b == t + 1  # only a lone call may overflow
    assert plan_windows(length, len(sizes), 10_000) == [(0, 0, len(sizes))]


def test_build_examples_windows_conversation_records_and_reports_them(smol_tokenizer) -> None:
    chats = convert([_long_trace(), *synthesize(3, seed=1)], "conversation", load_registry("tools4"))
    report = DataReport("x")
    rows = build_examples(smol_tokenizer, chats, 400, report)
    assert isinstance(report.windows, WindowStats)
    assert report.windows.conversations == 4 and report.windows.windows == len(rows) > 4
    summary = report.summary()
    json.dumps(summary)
    assert (
        summary["windows"]["targets_trained"]
        == sum(len(c.messages) for c in chats) * 0 + report.windows.targets
    )
