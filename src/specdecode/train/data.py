"""Training examples: chat records rendered by the model's chat template, with a label mask
that trains exactly the assistant's tokens and the end-of-turn token that closes each turn.

The mask is built from character spans of the rendered text (prompt prefix vs. assistant
turn), so it does not depend on the pad token: a pad equal to eos cannot mask the eos out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specdecode.errors import InputError
from specdecode.jsonl import iter_json_lines, read_records
from specdecode.prompts import Form, PromptOptions, render_prompt
from specdecode.records import ChatRecord, TraceRecord
from specdecode.registry import Registry

IGNORE = -100


@dataclass
class DataReport:
    """What happened to the examples of one file: nothing is dropped silently."""

    path: str
    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_empty: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "lengths"}
        d["max_length_seen"] = max(self.lengths, default=0)
        return d


def load_chat_file(
    path: str | Path, form: Form, registry: Registry, options: PromptOptions, skip_invalid: bool = False
) -> list[ChatRecord]:
    """Chat records from a chat JSONL, or from a trace JSONL converted to ``form``."""
    from specdecode.data.convert import convert

    first = next(iter_json_lines(path), None)
    if first is None:
        raise InputError("file has no records", path)
    if "trace" in first[1] and "messages" not in first[1]:
        traces = read_records(path, TraceRecord, skip_invalid=skip_invalid)
        return convert(traces, form, registry, options)
    return read_records(path, ChatRecord, skip_invalid=skip_invalid)


def chat_dicts(record: ChatRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """A record's messages and tool schemas as plain dicts for ``apply_chat_template``."""
    return [m.model_dump(exclude_none=True) for m in record.messages], record.tools


def assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant turn.

    A span starts after the generation prompt and ends just after the end-of-turn token
    (eos); whatever the template adds after it (a newline) is not trained.
    """
    full = render_prompt(tokenizer, messages, tools, add_generation_prompt=False)
    eot = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render_prompt(tokenizer, messages[:i], tools, add_generation_prompt=True)
        upto = render_prompt(tokenizer, messages[: i + 1], tools, add_generation_prompt=False)
        if not (full.startswith(upto) and upto.startswith(prefix)):
            raise ValueError("the chat template does not render conversations prefix by prefix")
        end = len(upto)
        cut = upto.rfind(eot, len(prefix)) if eot else -1
        if cut >= 0:
            end = cut + len(eot)
        spans.append((len(prefix), end))
    return full, spans


def tokenize_example(
    tokenizer: Any, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` (``-100`` outside assistant turns) for one conversation."""
    text, spans = assistant_spans(tokenizer, messages, tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        inside = any(a <= start < b or (start == end and a < end <= b) for a, b in spans)
        labels.append(token if inside else IGNORE)
    return {"input_ids": list(enc["input_ids"]), "labels": labels}


def build_examples(
    tokenizer: Any, records: Sequence[ChatRecord], max_length: int, report: DataReport
) -> list[dict[str, list[int]]]:
    """Tokenise records; truncate or drop over-long ones and drop empty ones, counting each."""
    out = []
    for record in records:
        report.examples += 1
        messages, tools = chat_dicts(record)
        try:
            example = tokenize_example(tokenizer, messages, tools)
        except ValueError as exc:
            raise InputError(f"example {record.id!r}: {exc}", report.path) from None
        ids, labels = example["input_ids"], example["labels"]
        report.lengths.append(len(ids))
        trained = [i for i, label in enumerate(labels) if label != IGNORE]
        if not trained:
            report.dropped_empty += 1
            continue
        if len(ids) > max_length:
            if trained[0] >= max_length - 1:
                report.dropped_too_long += 1
                continue
            ids, labels = ids[:max_length], labels[:max_length]
            report.truncated += 1
        report.kept += 1
        report.tokens += len(ids)
        report.trained_tokens += sum(label != IGNORE for label in labels)
        out.append({"input_ids": ids, "labels": labels})
    return out
