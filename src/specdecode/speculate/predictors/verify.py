"""``verify``: cheap drafts, an expensive judge. The pattern table proposes schema-valid candidate
calls (its top tools × their argument candidates); the adapter scores every draft's call text
given the step prompt it was trained on, in one forward pass over the cached conversation prefix;
a calibrated probability per candidate says how likely it is to be the actor's next call.

Scoring (:class:`DraftScorer`, on the ``hf`` backend):

* the prompt of step k+1 extends the prompt of step k (conversation form), so the KV cache of the
  previous prompt is kept and only the new tokens (the last call and its observation) are
  prefilled, as a live speculator would;
* the drafts' token sequences form a trie (drafts of one tool share their first tokens); the trie
  is run in **one** forward pass over the cached prefix, each node attending to the prefix and its
  ancestors (a tree attention mask), so a shared token is computed once;
* a draft's score is the sum (or, chosen on validation data, the mean) of its tokens' log
  probabilities, end-of-turn token included.

Calibration (:class:`Calibration`, fitted on the validation split only): a candidate's
probability is ``sigmoid(a · log q + w · log π + b)`` with ``q`` its share of the softmax over the
drafts' scores and ``π`` the table's own probability of the draft (its tool's times its
arguments'), a logistic regression, so the probabilities say how often such a candidate was the
actor's call, including the steps where no draft was right. Whether the table's prior enters
(``w`` ≠ 0) is chosen on validation hit@1: where the model's scores know less than the table, the
fit leans on the table; weights are never negative. The model's scores are used only where, on
the validation steps, the best fit with them puts the actor's call first significantly more
often than the table's own ranking (exact McNemar p < 0.05); elsewhere ``verify`` ranks the
drafts by the table's own probabilities (those ``pattern`` gives them) and runs no model. When
no draft is likely enough, one constrained call is generated as well (the model's own arguments,
beyond what the tables can propose) and scored with the drafts, if on the validation split that
added top-1 hits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from specdecode.prompts import PromptOptions, call_text, render_prompt
from specdecode.records import ToolCall
from specdecode.speculate.calibration import Calibration, fit_calibration, reliability
from specdecode.speculate.predictors.base import Prediction, Predictor, StepContext
from specdecode.speculate.predictors.model import ModelPredictor, set_prefix_reuse, step_prompt
from specdecode.speculate.predictors.registry import BuildContext, PredictorSpec, register

MAX_DRAFTS = 32
TOOLS_DRAFTED = 4  # the table's top tools that get drafts
ARGUMENTS_PER_TOOL = 8  # argument candidates per drafted tool
GENERATED_ARGUMENTS_PRIOR = 1e-3  # the table's probability of arguments only the model proposed
VALIDATION_BATCH = 16  # generated calls per batch when checking generation on validation steps


# --------------------------------------------------------------------------- scoring
class DraftScorer:
    """Log-likelihood of candidate calls under a model, over a KV cache kept across steps."""

    def __init__(
        self, backend: Any, adapter: bool, options: PromptOptions = PromptOptions(), form: str = "steps"
    ):
        if not hasattr(backend, "model") or not hasattr(backend, "tokenizer"):
            raise ValueError("draft scoring runs on the hf backend (it reads the model's logits)")
        self.backend, self.adapter = backend, adapter and getattr(backend, "has_adapter", False)
        self.options, self.form = options, form
        self._ids: list[int] = []  # tokens whose keys and values ``_cache`` holds
        self._cache: Any = None
        self.prefilled_tokens = 0
        self.scored_tokens = 0

    # -- texts ----------------------------------------------------------------------------
    def prompt_text(self, context: StepContext) -> str:
        messages, tools = step_prompt(context, self.options, self.form)
        return render_prompt(self.backend.tokenizer, messages, tools)

    def call_suffix(self, context: StepContext, call: ToolCall, prompt: str) -> str:
        """The text the model would write for ``call`` after ``prompt``: the call as the training
        target renders it, up to and including the end-of-turn token."""
        messages, tools = step_prompt(context, self.options, self.form)
        if self.form == "conversation":
            turn: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "type": "function",
                        "id": f"call_{len(context.history)}",
                        "function": {"name": call.tool_name, "arguments": call.arguments},
                    }
                ],
            }
        else:
            turn = {"role": "assistant", "content": call_text(call)}
        full = render_prompt(self.backend.tokenizer, [*messages, turn], tools, add_generation_prompt=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template does not render the call after its prompt")
        suffix = full[len(prompt) :]
        eot = self.backend.tokenizer.eos_token or ""
        cut = suffix.find(eot) if eot else -1
        return suffix[: cut + len(eot)] if cut >= 0 else suffix

    def encode(self, text: str) -> list[int]:
        return self.backend.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- the cached prefix ------------------------------------------------------------------
    def _prefix(self, prompt_ids: list[int]) -> tuple[Any, list[int]]:
        """The kept KV cache cut back to where it matches ``prompt_ids[:-1]``, and the tokens of
        ``prompt_ids[:-1]`` it still lacks (run with the drafts, in the same pass)."""
        from transformers import DynamicCache

        target = prompt_ids[:-1]
        common = 0
        limit = min(len(self._ids), len(target))
        while common < limit and self._ids[common] == target[common]:
            common += 1
        if self._cache is None or common == 0:
            self._cache, self._ids = DynamicCache(config=self.backend.model.config), []
            common = 0
        elif common < len(self._ids):
            self._cache.crop(common - self._cache.get_seq_length())  # negative: tokens to drop
            self._ids = self._ids[:common]
        return self._cache, target[common:]

    # -- scoring ----------------------------------------------------------------------------
    def score(self, context: StepContext, calls: Sequence[ToolCall]) -> list[tuple[float, int]]:
        """(sum of token log-probabilities, tokens) of each call's text as the next turn."""
        if not calls:
            return []
        prompt = self.prompt_text(context)
        prompt_ids = self.encode(prompt)
        suffixes = [self.encode(self.call_suffix(context, call, prompt)) for call in calls]
        torch = self.backend.torch
        with torch.inference_mode(), self._adapter_mode():
            cache, new = self._prefix(prompt_ids)
            return self._score_tree(cache, new, prompt_ids[-1], suffixes)

    def _adapter_mode(self) -> Any:
        import contextlib

        model = self.backend.model
        if not getattr(self.backend, "has_adapter", False) or self.adapter:
            return contextlib.nullcontext()  # the adapter active (merged inside ``merged()``)
        return model.disable_adapter()

    def merged(self) -> Any:
        """A block in which the adapter stays merged into the weights (the backend's
        ``adapter_merged``): scoring step after step then runs the plain weights, as a deployed
        speculator would, instead of the adapter's extra matrices beside them. A no-op for base
        scoring or a backend without the switch."""
        import contextlib

        hold = getattr(self.backend, "adapter_merged", None)
        return hold() if self.adapter and hold is not None else contextlib.nullcontext()

    def _score_tree(
        self, cache: Any, new: list[int], last: int, suffixes: Sequence[list[int]]
    ) -> list[tuple[float, int]]:
        """One forward pass: the prompt tokens the cache lacks (``new``), then the trie of
        ``suffixes`` rooted at the last prompt token ``last``, under a mask that lets the new
        tokens see the cache and each other causally and each trie node see the whole prompt and
        its own ancestors. The cache keeps the prompt (``new`` included) and drops the trie."""
        from specdecode.evaluate.backends.hf import logits_index

        torch, device = self.backend.torch, self.backend.device
        tokens, parents, depth = [last], [-1], [0]
        children: dict[tuple[int, int], int] = {}
        reads: list[list[tuple[int, int]]] = []  # per suffix: (node whose logits predict, target)
        for suffix in suffixes:
            node, path = 0, []
            for j, token in enumerate(suffix):
                path.append((node, token))
                if j == len(suffix) - 1:
                    break
                child = children.get((node, token))
                if child is None:
                    child = len(tokens)
                    children[(node, token)] = child
                    tokens.append(token)
                    parents.append(node)
                    depth.append(depth[node] + 1)
                node = child
            reads.append(path)
        cached, m, n = cache.get_seq_length(), len(new), len(tokens)
        rows = []
        for i in range(n):  # each node's ancestors, itself included
            row, j = [False] * n, i
            while j >= 0:
                row[j] = True
                j = parents[j]
            rows.append(row)
        trie = torch.tensor(rows, dtype=torch.bool)
        prompt = torch.cat(
            [torch.ones((m, cached), dtype=torch.bool), torch.ones((m, m), dtype=torch.bool).tril()], dim=1
        )
        mask = torch.cat(
            [
                torch.cat([prompt, torch.zeros((m, n), dtype=torch.bool)], dim=1),
                torch.cat([torch.ones((n, cached + m), dtype=torch.bool), trie], dim=1),
            ]
        )[None, None].to(device)
        ids = torch.tensor([new + tokens], device=device)
        start = cached + m  # the root's position
        positions = torch.tensor([list(range(cached, start)) + [start + d for d in depth]], device=device)
        try:
            logits = self.backend.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                logits_to_keep=logits_index(m + n, n, device),
            ).logits[0]
        except BaseException:
            self.reset()  # the cache may hold part of this pass
            raise
        cache.crop(start - cache.get_seq_length())  # keep the prompt, drop the trie
        self._ids += new
        self.prefilled_tokens += m
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        self.scored_tokens += n
        nodes = torch.tensor([node for path in reads for node, _ in path])
        targets = torch.tensor([token for path in reads for _, token in path])
        picked = logprobs[nodes, targets].tolist()
        out, at = [], 0
        for path in reads:
            out.append((float(sum(picked[at : at + len(path)])), len(path)))
            at += len(path)
        return out

    def reset(self) -> None:
        self._cache, self._ids = None, []


# --------------------------------------------------------------------------- the predictor
class VerifyPredictor(Predictor):
    """Drafts from the pattern table, scored by the model (see the module docstring)."""

    name = "verify"

    def __init__(
        self,
        table: Any,
        scorer: DraftScorer,
        generator: ModelPredictor | None = None,
        calibration: Calibration | None = None,
        max_drafts: int = MAX_DRAFTS,
        generate_below: float = 0.2,
    ):
        self.table, self.scorer, self.generator = table, scorer, generator
        self.calibration = calibration or Calibration()
        self.max_drafts, self.generate_below = max_drafts, generate_below
        self.generated = 0  # steps where a call was generated beside the drafts

    def drafts(self, context: StepContext) -> list[ToolCall]:
        """The table's top tools × their argument candidates, deduplicated, capped."""
        return [call for call, _ in self.drafts_with_priors(context)]

    def drafts_with_priors(self, context: StepContext) -> list[tuple[ToolCall, float]]:
        """Each draft with the table's probability of it (its tool's times its arguments')."""
        from specdecode.speculate.arguments import key

        view = self.table.views.of(context.question, context.history)
        specs = {t.name: t for t in context.tools}
        out: list[tuple[ToolCall, float]] = []
        seen = set()
        for tool, p_tool in self.table.tools.ranked(context)[:TOOLS_DRAFTED]:
            for arguments, p_args, _how in self.table.args.candidates(
                tool, view, specs.get(tool), ARGUMENTS_PER_TOOL
            ):
                signature = (tool, key(arguments))
                if signature not in seen:
                    seen.add(signature)
                    out.append((ToolCall(tool_name=tool, arguments=arguments), p_tool * p_args))
        return out[: self.max_drafts]

    def valid_drafts(self, context: StepContext) -> tuple[list[ToolCall], list[float]]:
        """The schema-valid drafts and their priors."""
        from specdecode.speculate.schema import CallGuard

        guard = CallGuard(context.tools)
        calls, priors = [], []
        for draft, prior in self.drafts_with_priors(context):
            checked = guard.check(draft)
            if checked is not None:
                calls.append(checked)
                priors.append(prior)
        return calls, priors

    def scored(self, context: StepContext) -> list[tuple[ToolCall, float, tuple[float, int]]]:
        """Every candidate with its calibrated probability and raw score, most likely first."""
        calls, priors = self.valid_drafts(context)
        if not self.calibration.uses_model:  # validation kept the table: its probabilities, no model
            return sorted(zip(calls, priors, [(0.0, 0)] * len(calls)), key=lambda t: -t[1])
        scores = self.scorer.score(context, calls)
        probs = self.calibration.probabilities(scores, priors) if scores else []
        if self.calibration.generate and self.unlikely(probs):
            calls, priors, scores = self.with_generated(context, calls, priors, scores)
            probs = self.calibration.probabilities(scores, priors) if scores else []
        return sorted(zip(calls, probs, scores), key=lambda t: -t[1])

    def unlikely(self, probs: Sequence[float]) -> bool:
        """No draft is likely enough: a generated call should join them (when there is a generator)."""
        return self.generator is not None and (not probs or max(probs) < self.generate_below)

    def with_generated(
        self,
        context: StepContext,
        calls: list[ToolCall],
        priors: list[float],
        scores: list[tuple[float, int]],
        made: Sequence[ToolCall] | None = None,
    ) -> tuple[list[ToolCall], list[float], list[tuple[float, int]]]:
        """The drafts and the generator's constrained call (when valid and new), scored with them;
        its prior is the table's probability of its tool times ``GENERATED_ARGUMENTS_PRIOR``.
        ``made``: the generated call(s) when already generated (else generated now)."""
        from specdecode.speculate.schema import CallGuard

        assert self.generator is not None
        guard = CallGuard(context.tools)
        if made is None:
            made = self.generator.predict_many([context], 1)[0].calls
        extra = [c for c in (guard.check(m) for m in made) if c is not None and c not in calls]
        if not extra:
            return calls, priors, scores
        self.generated += 1
        tool_probs = dict(self.table.tools.ranked(context))
        extra_priors = [tool_probs.get(c.tool_name, 0.0) * GENERATED_ARGUMENTS_PRIOR for c in extra]
        return calls + extra, priors + extra_priors, scores + self.scorer.score(context, extra)

    @contextmanager
    def _session(self, cached_prefix: bool = True) -> Iterator[None]:
        """A block of steps: the adapter held merged (:meth:`DraftScorer.merged`) and the
        generator's KV cache kept from one prompt to the next (or not: ``cached_prefix``)."""
        had_switch = self.generator is not None and set_prefix_reuse(self.generator.backend, cached_prefix)
        try:
            with self.scorer.merged():
                yield
        finally:
            if had_switch:
                set_prefix_reuse(self.generator.backend, False)  # type: ignore[union-attr]

    def predict_many(self, contexts: Sequence[StepContext], k: int = 1) -> list[Prediction]:
        out = []
        with self._session():
            for context in contexts:
                started = time.perf_counter()
                ranked = self.scored(context)[:k]
                out.append(
                    Prediction(
                        [c for c, _, _ in ranked],
                        time.perf_counter() - started,
                        {"scores": [list(s) for _, _, s in ranked]},
                        probs=[p for _, p, _ in ranked],
                    )
                )
        return out

    def predict(self, context: StepContext, k: int = 1) -> list[ToolCall]:
        return self.predict_many([context], k)[0].calls

    def measure_latency(self, contexts: Sequence[StepContext], cached_prefix: bool = True) -> list[float]:
        """Batch-1 latency per step in trace order, the KV cache kept from step to step (or
        dropped before every step: ``cached_prefix=False``); the adapter merged once before."""
        latencies = []
        with self._session(cached_prefix):
            for context in contexts:
                if not cached_prefix:
                    self.scorer.reset()
                started = time.perf_counter()
                self.scored(context)
                latencies.append(time.perf_counter() - started)
        return latencies

    def calibrate(
        self, contexts: Sequence[StepContext], gold: Sequence[ToolCall], matcher: Any
    ) -> dict[str, Any]:
        """Fit the calibration on validation steps (never the test split): the model's scores
        (summed or length-normalised), the table's prior, or both, chosen by validation hit@1, then
        a logistic regression (:func:`fit_calibration`); then whether a generated call joins the
        drafts when none is likely enough (:meth:`validate_generation`). Returns the fit, the
        reliability diagram on those steps and the generation check."""
        self.scorer.reset()
        drafts, steps = [], []
        with self._session():
            for context, g in zip(contexts, gold):
                calls, priors = self.valid_drafts(context)
                drafts.append(calls)
                labels = [bool(matcher(c, g)) for c in calls]
                steps.append((self.scorer.score(context, calls), priors, labels))
        fitted = fit_calibration(steps)
        probs, labels = [], []
        for scores, priors, step_labels in steps:
            if scores:  # the table kept: its own probability of each draft
                probs += fitted.probabilities(scores, priors) if fitted.uses_model else list(priors)
                labels += step_labels
        diagram = reliability(probs, labels)
        self.calibration = replace(fitted, ece=diagram["ece"])
        if fitted.uses_model:
            check = self.validate_generation(contexts, gold, matcher, drafts, steps)
        else:  # the table's calls and probabilities are verify's; nothing is generated
            check = {"steps": 0, "hits_with": 0, "hits_without": 0, "kept": False, "table_kept": True}
        self.calibration = replace(self.calibration, generate=check["kept"])
        self.scorer.reset()
        return {**self.calibration.as_dict(), "reliability": diagram, "generation": check}

    def validate_generation(
        self,
        contexts: Sequence[StepContext],
        gold: Sequence[ToolCall],
        matcher: Any,
        drafts: Sequence[list[ToolCall]],
        steps: Sequence[tuple[list[tuple[float, int]], list[float], Any]],
    ) -> dict[str, Any]:
        """On the validation steps (their drafts and scores from the fit) where no draft is likely
        enough, generate a call, rank it with the drafts under the fitted calibration, and count
        top-1 hits with and without it. Generation is kept when it adds hits there, or when no
        validation step asked for it (no evidence either way); otherwise it is switched off: it
        costs a whole generation per step (seconds on a CPU) and the calibration, fitted on drafts,
        would rank its calls blind. Short prompts' calls are generated in batches (offline work:
        no latency is measured here; the same greedy constrained decoding as at batch 1), long
        ones one at a time over the cached prefix (:meth:`ModelPredictor.first_calls`)."""
        asked = [
            i
            for i, (scores, priors, _) in enumerate(steps)
            if self.unlikely(self.calibration.probabilities(scores, priors) if scores else [])
        ]
        made: list[ToolCall | None] = []
        if asked and self.generator is not None:
            with self.scorer.merged():
                made = self.generator.first_calls([contexts[i] for i in asked], VALIDATION_BATCH)
        with_hits, without_hits = 0, 0
        with self._session():
            for i, call in zip(asked, made):
                calls, (scores, priors, _) = drafts[i], steps[i]
                probs = self.calibration.probabilities(scores, priors) if scores else []
                without_hits += bool(probs) and bool(matcher(calls[probs.index(max(probs))], gold[i]))
                extra = [call] if call is not None else []
                calls, priors, scores = self.with_generated(contexts[i], calls, priors, scores, extra)
                probs = self.calibration.probabilities(scores, priors) if scores else []
                with_hits += bool(probs) and bool(matcher(calls[probs.index(max(probs))], gold[i]))
        self.generated = 0
        kept = not asked or with_hits > without_hits
        return {"steps": len(asked), "hits_with": with_hits, "hits_without": without_hits, "kept": kept}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "table": self.table.describe(),
            "scorer": {
                "backend": getattr(self.scorer.backend, "identity", None),
                "adapter": self.scorer.adapter,
                "form": self.scorer.form,
                "tool_style": self.scorer.options.tool_style,
            },
            "generator": self.generator.describe() if self.generator else None,
            "calibration": self.calibration.as_dict(),
            "max_drafts": self.max_drafts,
            "generate_below": self.generate_below,
        }


def _verify(context: BuildContext) -> VerifyPredictor:
    s = context.settings
    options = s.options
    form = s.form if context.has_adapter else "steps"
    scorer = DraftScorer(context.backend, context.has_adapter, options, form)
    generator = ModelPredictor(
        context.backend,
        adapter=context.has_adapter,
        name="lora" if context.has_adapter else "base",
        constrained=True,
        options=options,
        form=form,
        batch_size=1,
        max_new_tokens=s.max_new_tokens,
        seed=s.seed,
        samples=0,
        sequential=True,
    )
    return VerifyPredictor(context.table("pattern"), scorer, generator)


register(
    PredictorSpec(
        "verify",
        "the pattern table's drafts scored by the model in one pass over the cached prefix, "
        "calibrated probabilities; a constrained call generated only when no draft is likely",
        "#dc2626",
        "model",
        build=_verify,
        uses_tables=("pattern",),
    )
)
