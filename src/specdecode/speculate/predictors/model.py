"""The LLM speculator (base model or adapter, on any generation backend) and the hybrid
(pattern table's tools, the model's arguments).

Prompts come from :mod:`specdecode.prompts` — the same prompt the adapter was trained on (its
``train_config.yaml`` names the form). Top-k beyond the greedy answer comes from sampled
duplicates of the request (temperature > 0), deduplicated. ``constrained`` asks the backend
to decode against the JSON schema of one call among the offered tools.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from specdecode.evaluate.backends.types import GenerationConfig, Request
from specdecode.evaluate.parse import parse_calls
from specdecode.prompts import PromptOptions, conversation_messages, next_call_messages
from specdecode.records import ToolCall, ToolSpec
from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext, dedupe
from specdecode.speculate.predictors.registry import BuildContext, PredictorSpec, register


def step_prompt(
    context: StepContext, options: PromptOptions, form: str = "steps"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The speculator's prompt for one step in the form the model was trained on: messages and
    the JSON-schema tools that travel beside them (``conversation`` form) or None (``steps``)."""
    if form == "conversation":
        messages = conversation_messages(context.question, list(context.history), options)
        return messages, [t.json_schema() for t in context.tools]
    return next_call_messages(context.question, list(context.tools), list(context.history), options), None


def _request(rid: str, prompt: tuple[list[dict[str, Any]], Any], schema: dict[str, Any] | None) -> Request:
    messages, tools = prompt
    return Request(rid, messages, tools, response_schema=schema)


def _config(batch_size: int, max_new_tokens: int, temperature: float, seed: int) -> GenerationConfig:
    """Next-call generation: the answer ends with its first complete call."""
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        stop_at_first_call=True,
        seed=seed,
    )


SEQUENTIAL_PROMPT_TOKENS = 768  # auto: prompts at least this long are answered one at a time


def _prob(generation: Any) -> float | None:
    """The model's own probability of what it generated (None: the backend does not say)."""
    logprob = getattr(generation, "logprob", None)
    return None if logprob is None else math.exp(min(0.0, float(logprob)))


def _call_key(call: ToolCall) -> str:
    return dedupe([call])[0].model_dump_json()


def set_prefix_reuse(backend: Any, on: bool) -> bool:
    """Switch the backend's reuse of the previous prompt's KV cache (a live speculator's cached
    prefix) on or off; False when the backend has no such switch (only ``hf`` has one)."""
    if not hasattr(backend, "reuse_prefix"):
        return False
    backend.reuse_prefix = on
    return True


class ModelPredictor(Predictor):
    """The speculator: one request per step through a generation backend."""

    def __init__(
        self,
        backend: Any,
        adapter: bool,
        name: str | None = None,
        constrained: bool = False,
        options: PromptOptions = PromptOptions(),
        form: str = "steps",
        batch_size: int = 16,
        max_new_tokens: int = 96,
        temperature: float = 0.8,
        seed: int = 0,
        samples: int | None = None,
        sequential: bool | None = None,
    ):
        self.samples = samples  # sampled duplicates per step for k > 1 (None: 2 * (k - 1))
        # one step at a time, in the order given (replay: trace order), each prompt reusing the KV
        # cache of the one before (a live speculator's cached prefix); None: where the backend can
        self.sequential = sequential
        self.backend, self.adapter = backend, adapter and getattr(backend, "has_adapter", False)
        self.name = name or ("lora" if self.adapter else "base")
        self.constrained = constrained
        self.options, self.form = options, form
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.temperature, self.seed = temperature, seed

    # ---------------------------------------------------------------- requests
    def prompt(self, context: StepContext) -> tuple[list[dict[str, Any]], Any]:
        return step_prompt(context, self.options, self.form)

    def schema(self, tools: Sequence[ToolSpec]) -> dict[str, Any] | None:
        if not self.constrained or not tools:
            return None
        from specdecode.evaluate.constrain import call_schema

        return call_schema(list(tools))

    def request(self, context: StepContext, rid: str) -> Any:
        return _request(rid, self.prompt(context), self.schema(context.tools))

    def parse(self, generation: Any, context: StepContext) -> ToolCall | None:
        known = set(context.tool_names)
        positional = {t.name: list(t.parameters.get("properties", {})) for t in context.tools}
        parsed = parse_calls(generation.text, getattr(generation, "tool_calls", None), known, positional)
        return parsed.calls[0] if parsed.calls else None

    def generate(self, requests: list[Any], temperature: float = 0.0, batch_size: int | None = None) -> list:
        config = _config(batch_size or self.batch_size, self.max_new_tokens, temperature, self.seed)
        return self.backend.generate(requests, config, adapter=self.adapter)

    # ---------------------------------------------------------------- predicting
    def is_sequential(self, contexts: Sequence[StepContext] = ()) -> bool:
        """Steps one at a time with the cached prefix, or batched. ``sequential=None`` (auto): one at
        a time on a backend that keeps the prefix (hf) when the prompts are long enough that their
        prefill, not the decoding, is what costs (real agents' conversations); short prompts decode
        faster in batches."""
        if self.sequential is not None:
            return self.sequential
        return self.long_prompts(contexts)

    def long_prompts(self, contexts: Sequence[StepContext] = ()) -> bool:
        """The prompts are long enough (on a backend that keeps the prefix) that answering them one
        at a time, each reusing the previous one's KV cache, beats batching them."""
        if not hasattr(self.backend, "reuse_prefix") or not hasattr(self.backend, "prompt_ids"):
            return False
        sample = list(contexts)[:8]
        if not sample:
            return True
        lengths = [len(self.backend.prompt_ids(self.request(c, "length"))) for c in sample]
        return sum(lengths) / len(lengths) >= SEQUENTIAL_PROMPT_TOKENS

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        """Predictions for many steps: batched, or (``is_sequential``) one step after the other in
        the order given, each prompt prefilling only what it adds to the one before, so each
        prediction's latency is the one a live speculator has."""
        if len(contexts) <= 1 or not self.is_sequential(contexts):
            return self._predict_batch(contexts, k)
        return self._predict_one_by_one(contexts, k)

    def _predict_one_by_one(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        """One step after the other, each prompt reusing the KV cache of the one before."""
        had_switch = set_prefix_reuse(self.backend, True)
        try:
            return [p for context in contexts for p in self._predict_batch([context], k)]
        finally:
            if had_switch:
                set_prefix_reuse(self.backend, False)

    def _predict_batch(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        if not contexts:
            return []
        requests = [self.request(c, f"{c.id}#{c.step}") for c in contexts]
        started = time.perf_counter()
        greedy = self.generate(requests)
        elapsed = time.perf_counter() - started
        out = []
        probs: list[dict[str, float]] = []  # per context: call key → the model's probability of it
        for context, gen in zip(contexts, greedy):
            call = self.parse(gen, context)
            out.append(
                Prediction(
                    [call] if call else [],
                    float(getattr(gen, "latency", elapsed / len(contexts))),
                    {"text": gen.text, "batch_size": getattr(gen, "batch_size", len(contexts))},
                )
            )
            p = _prob(gen)
            probs.append({_call_key(call): p} if call is not None and p is not None else {})
        n = self.samples if self.samples is not None else 2 * (k - 1)
        if k > 1 and n > 0:
            sampled = self.generate([r for r in requests for _ in range(n)], temperature=self.temperature)
            for i, (context, pred) in enumerate(zip(contexts, out)):
                counts: Counter = Counter()
                calls: dict[Any, ToolCall] = {}
                for gen in sampled[i * n : (i + 1) * n]:
                    call = self.parse(gen, context)
                    if call is not None:
                        key = dedupe([call])[0].model_dump_json()
                        counts[key] += 1
                        calls.setdefault(key, call)
                        p = _prob(gen)
                        if p is not None:
                            probs[i].setdefault(_call_key(call), p)
                ranked = [calls[key] for key, _ in counts.most_common()]
                pred.calls = dedupe(pred.calls + ranked)[:k]
        for pred, known in zip(out, probs):
            if known and all(_call_key(c) in known for c in pred.calls):
                pred.probs = [known[_call_key(c)] for c in pred.calls]
        return out

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return self.predict_many([context], k)[0].calls

    def first_calls(self, contexts: Sequence[StepContext], batch_size: int) -> list[ToolCall | None]:
        """The greedy call for each step, for offline work where latency is not measured (checking
        on validation steps): ``batch_size`` steps per batch whatever ``sequential`` says, unless
        the prompts are long (:meth:`long_prompts`): then one at a time over the cached prefix."""
        if self.long_prompts(contexts):
            return [(p.calls or [None])[0] for p in self._predict_one_by_one(contexts, 1)]
        requests = [self.request(c, f"{c.id}#{c.step}") for c in contexts]
        generations = self.generate(requests, batch_size=batch_size) if requests else []
        return [self.parse(gen, c) for c, gen in zip(contexts, generations)]

    def measure_latency(self, contexts: Sequence[StepContext], cached_prefix: bool = True) -> list[float]:
        """Next-call latency at batch 1, one context after the other (in trace order, so that
        with ``cached_prefix`` each prompt finds the previous one's KV cache, as a live
        speculator would). Returns seconds per context."""
        had_switch = set_prefix_reuse(self.backend, cached_prefix)
        latencies = []
        try:
            for context in contexts:
                request = self.latency_request(context)
                started = time.perf_counter()
                self.generate([request], batch_size=1)
                latencies.append(time.perf_counter() - started)
        finally:
            if had_switch:
                set_prefix_reuse(self.backend, False)
        return latencies

    def latency_request(self, context: StepContext) -> Any:
        return self.request(context, f"latency:{context.id}#{context.step}")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": getattr(self.backend, "identity", None) or getattr(self.backend, "name", "?"),
            "adapter": self.adapter,
            "constrained": self.constrained,
            "form": self.form,
            "tool_style": self.options.tool_style,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "samples": self.samples,
            "sequential": self.sequential,
        }


class HybridPredictor(Predictor):
    """The pattern table picks the tools (top k), the model writes each one's arguments —
    constrained to that tool's schema where the backend can, else prompted with that tool only.

    ``write_k`` caps the generations per step: the model writes the arguments of the top
    ``write_k`` tools only and the table's own calls fill the remaining candidates (``None``:
    the model writes all k; ``--samples 0`` builds it with 1, one generation per step like the
    other model predictors). A written call's probability is the table's for its tool times the
    model's own for its arguments (the tokens after the tool's name); a fill-in keeps the table's
    probability for its call. Both estimate the chance that this exact call comes next, from two
    sources, so they need not sum to a tool's probability.

    Constrained, a tool's arguments need not be generated again when the same backend has just
    answered the step greedily over all tools and chose that tool (the ``lora`` predictor, replayed
    before): greedy decoding under the one tool's schema picks the same tokens, since every token
    chosen under the wider schema is allowed under the narrower one, and the tokens after the name
    have the same probabilities under both (:meth:`reused`)."""

    name = "hybrid"

    def __init__(self, table: Any, model: ModelPredictor, name: str = "hybrid", write_k: int | None = None):
        self.table, self.model, self.name, self.write_k = table, model, name, write_k
        self.recalled = 0  # tool arguments taken from the model's answer over all tools

    def _plan(self, context: StepContext, k: int) -> list[str]:
        """The tools whose arguments the model writes at this step."""
        return self.table.ranked_tools(context)[: min(k, self.write_k or k)]

    def _requests(self, context: StepContext, tools: Sequence[str]) -> list[Any]:
        specs = {t.name: t for t in context.tools}
        out = []
        for tool in tools:
            spec = specs.get(tool) or ToolSpec(name=tool, description="(not in registry)")
            rid = f"{context.id}#{context.step}:{tool}"
            if self.model.constrained:
                from specdecode.evaluate.constrain import call_schema

                out.append(_request(rid, self.model.prompt(context), call_schema([spec])))
            else:
                one = dataclasses.replace(context, tools=(spec,))
                out.append(_request(rid, self.model.prompt(one), None))
        return out

    def reused(self, context: StepContext, tool: str) -> Any | None:
        """The model's greedy answer to this step over all tools, when the backend has just
        generated it (``recall``: same prompt, schema and settings) and it calls ``tool``; None
        otherwise. Only for constrained decoding on a backend that reports token log-probabilities."""
        recall = getattr(self.model.backend, "recall", None)
        if recall is None or not self.model.constrained:
            return None
        config = _config(self.model.batch_size, self.model.max_new_tokens, 0.0, self.model.seed)
        gen = recall(self.model.request(context, "recall"), config, adapter=self.model.adapter)
        if gen is None or getattr(gen, "token_logprobs", None) is None:
            return None
        parsed = self.model.parse(gen, context)
        return gen if parsed is not None and parsed.tool_name == tool else None

    def _generations(self, items: Sequence[tuple[StepContext, str, Any]], batch_size: int | None) -> list:
        """One generation per (context, tool, request): recalled where the backend has it, the rest
        generated in one call."""
        out: list[Any] = [self.reused(context, tool) for context, tool, _ in items]
        missing = [i for i, gen in enumerate(out) if gen is None]
        if missing:
            made = self.model.generate([items[i][2] for i in missing], batch_size=batch_size)
            for i, gen in zip(missing, made):
                out[i] = gen
        self.recalled += len(items) - len(missing)
        return out

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        """Batched, or (the model's ``is_sequential``) each step's requests one at a time in the
        order given, every prompt reusing the KV cache of the one before."""
        if len(contexts) <= 1 or not self.model.is_sequential(contexts):
            return self._predict_batch(contexts, k)
        had_switch = set_prefix_reuse(self.model.backend, True)
        try:
            out = []
            for context in contexts:
                tools = self._plan(context, k)
                items = [(context, t, r) for t, r in zip(tools, self._requests(context, tools))]
                generations = [self._generations([item], 1)[0] for item in items]
                out.append(self._prediction(context, tools, generations, k))
            return out
        finally:
            if had_switch:
                set_prefix_reuse(self.model.backend, False)

    def _prediction(
        self, context: StepContext, tools: Sequence[str], generations: Sequence[Any], k: int
    ) -> Prediction:
        """The table's tools with the model's arguments; probability: the table's for the tool
        times the model's own for its arguments."""
        tool_probs = dict(self.table.tools.ranked(context)) if hasattr(self.table, "tools") else {}
        kept: list[tuple[ToolCall, float | None]] = []
        seen: set[str] = set()
        for tool, gen in zip(tools, generations):
            parsed = self.model.parse(gen, context)
            call = ToolCall(tool_name=tool, arguments=parsed.arguments if parsed is not None else {})
            p_args = self.arguments_prob(gen, tool)
            if _call_key(call) not in seen:
                seen.add(_call_key(call))
                kept.append(
                    (call, None if p_args is None or tool not in tool_probs else tool_probs[tool] * p_args)
                )
        if len(kept) < k and self.write_k is not None:  # the table's own calls fill the rest
            for call, p in self.table.scored(context, k):
                if _call_key(call) not in seen:
                    seen.add(_call_key(call))
                    kept.append((call, p))
        kept = kept[:k]
        latency = max((float(getattr(g, "latency", 0.0)) for g in generations), default=0.0)
        probs = [p for _, p in kept if p is not None]
        return Prediction([c for c, _ in kept], latency, probs=probs if len(probs) == len(kept) else [])

    def arguments_prob(self, generation: Any, tool: str) -> float | None:
        """The model's probability of the tokens that follow ``tool``'s name in the generated call
        (the arguments and the closing of the call); the whole answer's when the backend reports
        no per-token log-probabilities; None when it reports none at all."""
        ids, logprobs = getattr(generation, "token_ids", None), getattr(generation, "token_logprobs", None)
        tokenizer = getattr(self.model.backend, "tokenizer", None)
        if ids is None or logprobs is None or tokenizer is None:
            return _prob(generation)
        name = re.compile(r'"tool_name"\s*:\s*' + re.escape(json.dumps(tool)))
        for i in range(len(ids)):
            if name.search(tokenizer.decode(ids[: i + 1])):
                return math.exp(min(0.0, float(sum(logprobs[i + 1 :]))))
        return _prob(generation)

    def _predict_batch(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        plans = [self._plan(c, k) for c in contexts]
        items, owners = [], []
        for i, (context, tools) in enumerate(zip(contexts, plans)):
            for tool, request in zip(tools, self._requests(context, tools)):
                items.append((context, tool, request))
                owners.append((i, tool))
        generations = self._generations(items, None) if items else []
        grouped: list[list[Any]] = [[] for _ in contexts]
        for (i, _tool), gen in zip(owners, generations):
            grouped[i].append(gen)
        return [self._prediction(c, tools, gens, k) for c, tools, gens in zip(contexts, plans, grouped)]

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return self.predict_many([context], k)[0].calls

    def measure_latency(self, contexts: Sequence[StepContext], cached_prefix: bool = True) -> list[float]:
        had_switch = set_prefix_reuse(self.model.backend, cached_prefix)
        latencies = []
        try:
            for context in contexts:
                tools = self.table.ranked_tools(context)[:1]
                started = time.perf_counter()
                if tools:
                    self.model.generate(self._requests(context, tools), batch_size=1)
                latencies.append(time.perf_counter() - started)
        finally:
            if had_switch:
                set_prefix_reuse(self.model.backend, False)
        return latencies

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "table": self.table.describe(),
            "model": self.model.describe(),
            "arguments_prob": "tokens after the tool's name",  # (before: the whole answer's)
        }
        return described if self.write_k is None else {**described, "write_k": self.write_k}


def _model(context: BuildContext, adapter: bool, name: str) -> ModelPredictor:
    s = context.settings
    return ModelPredictor(
        context.backend,
        adapter=adapter,
        name=name,
        constrained=s.constrained,
        options=s.options,
        form=s.form if adapter else "steps",
        batch_size=s.batch_size,
        max_new_tokens=s.max_new_tokens,
        seed=s.seed,
        samples=s.samples,
    )


def _hybrid(context: BuildContext) -> HybridPredictor:
    writer = _model(context, context.has_adapter, "lora" if context.has_adapter else "base")
    return HybridPredictor(
        context.table("pattern"), writer, write_k=1 if context.settings.samples == 0 else None
    )


register(
    PredictorSpec(
        "base",
        "the speculator's base model, generating the next call",
        "#64748b",
        "model",
        build=lambda c: _model(c, False, "base"),
    )
)
register(
    PredictorSpec(
        "lora",
        "the LoRA speculator (base model + adapter), generating the next call",
        "#2563eb",
        "model",
        build=lambda c: _model(c, True, "lora"),
        needs_adapter=True,
    )
)
register(
    PredictorSpec(
        "hybrid",
        "the pattern table's tools, the model's arguments (the adapter's when there is one)",
        "#9333ea",
        "model",
        build=_hybrid,
        uses_tables=("pattern",),
    )
)
