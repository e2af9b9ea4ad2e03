"""Training examples: chat records rendered by the model's chat template, with a label mask
that trains exactly the assistant's tokens and the end-of-turn token that closes each turn.

The mask is built from character spans of the rendered text (prompt prefix vs. assistant
turn), so it does not depend on the pad token: a pad equal to eos cannot mask the eos out.

``conversation``-form records (every call of a trace as an assistant turn) that are longer than
``max_length`` are split into windows (``build_conversation_examples``): each window keeps the
system prompt and the question, carries the most recent earlier calls as untrained context and
trains the calls after them, so every call is trained in exactly one window; ``WindowStats``
counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
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

    windows: WindowStats | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("lengths", "windows")}
        d["max_length_seen"] = max(self.lengths, default=0)
        if self.windows is not None:
            d["windows"] = self.windows.summary()
        return d


@dataclass
class WindowStats:
    """How ``conversation`` records became training rows (one row per window).

    ``targets`` calls in ``conversations`` records; ``split`` records needed more than one
    window; each call is trained in exactly one window (``targets_trained``), unless a single
    call with the system prompt and question exceeds ``max_length`` on its own: then its window
    is truncated (``targets_truncated``: calls whose tokens were cut, partly or wholly) or
    dropped (``targets_dropped``) — counted, never silent.
    """

    conversations: int = 0
    windows: int = 0
    split: int = 0
    max_windows: int = 0
    targets: int = 0
    targets_trained: int = 0
    targets_truncated: int = 0
    targets_dropped: int = 0
    context_calls: int = 0  # earlier calls carried into a window as (untrained) context

    def summary(self) -> dict[str, int]:
        return asdict(self)


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
    (eos); whatever the template adds after it (a newline) is not trained. An assistant turn
    with ``"weight": 0`` (OpenAI's fine-tuning convention) is context, not trained: the earlier
    calls in a conversation-form step example.
    """
    full = render_prompt(tokenizer, messages, tools, add_generation_prompt=False)
    eot = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
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
    return _label(tokenizer, text, spans)


def _label(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]]) -> dict[str, list[int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        inside = any(a <= start < b or (start == end and a < end <= b) for a, b in spans)
        labels.append(token if inside else IGNORE)
    return {"input_ids": list(enc["input_ids"]), "labels": labels}


def is_conversation(record: ChatRecord) -> bool:
    """Whether a record is in the ``conversation`` form (set by ``convert``; survives JSONL)."""
    return getattr(record, "form", None) == "conversation"


def build_examples(
    tokenizer: Any, records: Sequence[ChatRecord], max_length: int, report: DataReport
) -> list[dict[str, list[int]]]:
    """Tokenise records; truncate or drop over-long ones and drop empty ones, counting each.

    ``conversation``-form records are split into windows instead of truncated
    (``build_conversation_examples``); their ``WindowStats`` land in ``report.windows``.
    """
    if any(is_conversation(r) for r in records):
        conversations = [r for r in records if is_conversation(r)]
        others = [r for r in records if not is_conversation(r)]
        rows, stats = build_conversation_examples(tokenizer, conversations, max_length, report)
        report.windows = stats
        return rows + (build_examples(tokenizer, others, max_length, report) if others else [])
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


def _units(messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """A conversation as its head (everything before the first assistant turn: system, question)
    and one unit per assistant turn (the turn and the tool results that follow it)."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    head, units = list(messages[:first]), []
    for message in messages[first:]:
        if message["role"] == "assistant" or not units:
            units.append([])
        units[-1].append(message)
    return head, units


def _window_messages(head: list[dict], units: list[list[dict]], a: int, b: int) -> list[dict[str, Any]]:
    """Head + units ``a..b-1``; the tool results after the window's last call are left out
    (nothing after them is trained)."""
    body = [m for unit in units[a:b] for m in unit]
    while body and body[-1]["role"] != "assistant":
        body.pop()
    return [*head, *body]


def plan_windows(
    length: Any, n: int, max_length: int, context_share: float = 0.5
) -> list[tuple[int, int, int]]:
    """Windows ``(a, t, b)`` over ``n`` calls: units ``a..b-1`` are rendered, calls ``t..b-1``
    trained, ``a..t-1`` carried as context. ``length(a, b)`` is the token length of such a window.

    The first window starts at the first call and takes as many calls as fit. Each later window
    carries the most recent calls before its first target, up to ``context_share`` of the room
    left after the head, then takes as many new calls as fit; it always takes at least one, so
    every call is a target of exactly one window.
    """
    if n == 0:
        return []
    if length(0, n) <= max_length:
        return [(0, 0, n)]
    head = length(0, 0)
    context_room = (max_length - head) * context_share
    windows, t = [], 0
    while t < n:
        a = t
        while a > 0 and length(a - 1, t) - head <= context_room and length(a - 1, t + 1) <= max_length:
            a -= 1
        b = t + 1
        while b < n and length(a, b + 1) <= max_length:
            b += 1
        windows.append((a, t, b))
        t = b
    return windows


def build_conversation_examples(
    tokenizer: Any,
    records: Sequence[ChatRecord],
    max_length: int,
    report: DataReport,
    context_share: float = 0.5,
) -> tuple[list[dict[str, list[int]]], WindowStats]:
    """Rows for ``conversation``-form records: the whole conversation when it fits in
    ``max_length`` tokens, else windows (``plan_windows``) that keep the system prompt and the
    question, carry the most recent calls as untrained context and train every call once.

    ``report`` counts conversations as ``examples`` and windows as ``kept`` rows; a window that
    still exceeds ``max_length`` (one call too long on its own) is truncated or dropped and
    counted in both ``report`` and the returned ``WindowStats``.
    """
    stats = WindowStats()
    out: list[dict[str, list[int]]] = []
    for record in records:
        report.examples += 1
        stats.conversations += 1
        messages, tools = chat_dicts(record)
        head, units = _units(messages)
        n = sum(1 for unit in units if unit[0]["role"] == "assistant")
        stats.targets += n
        if n == 0:
            report.dropped_empty += 1
            continue
        length = partial(_window_length, tokenizer, head, units, tools, {})
        windows = plan_windows(length, n, max_length, context_share)
        stats.windows += len(windows)
        stats.split += len(windows) > 1
        stats.max_windows = max(stats.max_windows, len(windows))
        for a, t, b in windows:
            window = _window_messages(head, units, a, b)
            try:
                text, spans = assistant_spans(tokenizer, window, tools)
            except ValueError as exc:
                raise InputError(f"example {record.id!r}: {exc}", report.path) from None
            example = _label(tokenizer, text, spans[t - a :])
            ids, labels = example["input_ids"], example["labels"]
            report.lengths.append(len(ids))
            stats.context_calls += t - a
            if len(ids) > max_length:
                trained = [i for i, label in enumerate(labels) if label != IGNORE]
                if trained[0] >= max_length - 1:
                    report.dropped_too_long += 1
                    stats.targets_dropped += b - t
                    continue
                ids, labels = ids[:max_length], labels[:max_length]
                report.truncated += 1
                cut = _cut_targets(tokenizer, text, spans[t - a :], max_length)
                stats.targets_truncated += cut
                stats.targets_trained += b - t - cut
            else:
                stats.targets_trained += b - t
            report.kept += 1
            report.tokens += len(ids)
            report.trained_tokens += sum(label != IGNORE for label in labels)
            out.append({"input_ids": ids, "labels": labels})
    return out, stats


def _window_length(
    tokenizer: Any,
    head: list[dict],
    units: list[list[dict]],
    tools: Sequence[dict[str, Any]] | None,
    cache: dict[tuple[int, int], int],
    a: int,
    b: int,
) -> int:
    if (a, b) not in cache:
        text = render_prompt(tokenizer, _window_messages(head, units, a, b), tools, False)
        cache[(a, b)] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return cache[(a, b)]


def _cut_targets(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]], max_length: int) -> int:
    """How many trained turns end beyond the first ``max_length`` tokens of ``text``."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    kept_until = offsets[max_length - 1][1] if len(offsets) >= max_length else len(text)
    return sum(1 for _, end in spans if end > kept_until)
