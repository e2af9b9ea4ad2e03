"""The Hugging Face transformers backend: the reference, with its own batched decoding loop.

Prompts are sorted by length and decoded greedily (by default) in batches. What keeps it fast
where ``model.generate`` is not:

* the prompt prefix every request of a batch shares (system prompt and tool list) is
  prefilled once and its KV cache repeated across the batch (:meth:`HFBackend._prefill`);
* with ``reuse_prefix``, a batch of one keeps its KV cache, and the next request reuses the
  longest token prefix it shares with it (a live speculator's prompt k+1 extends prompt k);
* a row leaves the batch, and the KV cache, as soon as it is finished: end of turn, a stop
  string, the end of its first complete call (``stop_at_first_call``), a terminated grammar
  (``response_schema``) or ``max_new_tokens`` (:meth:`HFBackend._accept`, :func:`_drop_rows`);
* with a response schema, the text its grammar forces next (``", "arguments": {"`` after a
  tool's name) is fed as a draft beside the row's last token and verified in the same forward
  pass, as speculative decoding does (greedy only): the answer is the token-by-token one, in
  fewer passes (:meth:`HFBackend._drafts`);
* adapter answers run on weights with the LoRA merged in (PEFT ``merge_adapter``, once: the
  merged and the base weights are kept side by side and swapped), base answers with the
  adapter disabled;
* recent greedy answers are kept, so a second predictor asking the same question can
  :meth:`HFBackend.recall` the first one's answer instead of decoding it again.

Each row's latency is the time from its batch's start to its own last token.
"""

from __future__ import annotations

import hashlib
import json
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from specdecode.evaluate.backends.types import (
    Generation,
    GenerationConfig,
    Request,
    backend_identity,
    base_and_tokenizer,
    finish_text,
    shared_prefix_len,
)
from specdecode.evaluate.stops import CallScanner
from specdecode.prompts import render_prompt

GREEDY_KEPT = 2048  # recent greedy answers kept for ``HFBackend.recall``
MAX_DRAFT = 16  # draft tokens verified per forward pass at most (:meth:`HFBackend._drafts`)
# The adapter's merged weights are kept beside the base weights (swapped in for adapter answers)
# when they take at most this much memory (SmolLM2-135M: 0.4 GB in fp32); larger models merge in
# place around every call.
MERGED_COPY_MAX_BYTES = 2 * 1024**3


class IncrementalText:
    """The text of a growing token list, decoded a few tokens at a time (the offsets scheme of
    vLLM's and TGI's detokenizers), so a stopping check never re-decodes the whole answer."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # decoding restarts here (a few tokens back, for byte-level merges)
        self._read = 0  # tokens already turned into text

    def add(self, token: int) -> str:
        """Append ``token``; the new text it completes ('' while a character is incomplete)."""
        self.ids.append(token)
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        piece = after[len(before) :]
        self._prefix, self._read = self._read, len(self.ids)
        self.text += piece
        return piece


@dataclass
class _Row:
    """One request being decoded: its tokens so far and what decides that it is finished."""

    ids: list[int]  # prompt + new tokens
    prompt_len: int
    text: IncrementalText | None = None  # only when a stop string or the first call can end it
    scanner: CallScanner | None = None
    matcher: Any = None  # xgrammar GrammarMatcher for a request with a response schema
    first_at: float | None = None
    done_at: float | None = None
    logprob: float = 0.0  # of the tokens chosen, under the distribution they were chosen from
    logprobs: list[float] = field(default_factory=list)  # the same, token by token

    @property
    def new(self) -> list[int]:
        return self.ids[self.prompt_len :]


@dataclass
class _Batch:
    """The model-side state of the rows still decoding."""

    cache: Any
    mask: Any  # attention mask over cache + current tokens (rows × length)
    next_position: Any  # position id of each row's next token (rows × 1)
    active: list[int] = field(default_factory=list)  # row indices still decoding


@dataclass
class _Kept:
    """The KV cache of the last batch-of-one request, for ``reuse_prefix``."""

    adapter: bool
    ids: list[int]  # tokens whose keys and values the cache holds
    cache: Any


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def logits_index(width: int, n: int, device: Any) -> Any:
    """``logits_to_keep`` for the last ``n`` of ``width`` fed positions, as an index tensor rather
    than the int ``n``: with an int, transformers slices the hidden states, and on CPU torch runs
    the LM head on that strided view as a batched matmul that first copies the whole head for
    every row (in bf16: 1.4 s for a batch-16 prefill instead of 4 ms, 0.1 s for a draft trie
    instead of 8 ms; BENCHMARKS.md). Indexing gives a compact tensor and a plain matrix product."""
    import torch

    return torch.arange(width - n, width, device=device)


def _drop_rows(batch: _Batch, keep: list[int]) -> None:
    """Keep only the positions ``keep`` of the batch (finished rows leave the KV cache)."""
    import torch

    index = torch.tensor(keep, device=batch.mask.device)
    batch.cache.batch_select_indices(index)
    batch.mask, batch.next_position = batch.mask[index], batch.next_position[index]
    batch.active = [batch.active[k] for k in keep]


class HFBackend:
    """Hugging Face transformers, batched: the reference backend (see the module docstring).

    ``reuse_prefix``: keep the KV cache of the last request decoded alone (batch of one) and
    prefill only what the next one adds to their common token prefix. ``prefilled_tokens``
    counts the prompt tokens run through the model, ``reused_tokens`` those served from a
    kept cache.
    """

    name = "hf"

    def __init__(
        self,
        base_model: str,
        lora_dir: str | None = None,
        trust_remote_code: bool = False,
        dtype: str = "auto",
        reuse_prefix: bool = False,
    ):
        import torch

        from specdecode.models import load_model, resolve_dtype

        self.torch = torch
        base_path, self.tokenizer = base_and_tokenizer(base_model, lora_dir, trust_remote_code)
        self.tokenizer.padding_side = "left"
        self.model = load_model(base_path, resolve_dtype(dtype), trust_remote_code=trust_remote_code)
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        self.has_adapter = lora_dir is not None
        self.identity = backend_identity(self.name, base_model, lora_dir, self.dtype)
        if lora_dir is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, lora_dir)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {self.tokenizer.eos_token_id} | set(eos if isinstance(eos, list) else [eos])
        self.eos_ids.discard(None)
        self.reuse_prefix = reuse_prefix
        self.prefilled_tokens = 0
        self.reused_tokens = 0
        self._kept: _Kept | None = None
        self._constraint: Any = None
        self._merged = False  # the adapter is merged into the weights (inside ``_weights(True)``)
        self._pairs: list[tuple[Any, Any, Any]] | None = None  # base and merged weights (``_merged_pairs``)
        self._greedy: OrderedDict[Any, Generation] = OrderedDict()  # recent greedy answers (``recall``)
        self._forced_ids: dict[str, list[int]] = {}  # a grammar's forced text → its tokens (drafts)

    def prompt_ids(self, request: Request) -> list[int]:
        text = render_prompt(self.tokenizer, request.messages, request.tools)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(
        self, requests: Sequence[Request], config: GenerationConfig, adapter: bool
    ) -> list[Generation]:
        encoded = [self.prompt_ids(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]))
        size = max(config.batch_size, 1)
        sampler = self.torch.Generator(device=self.device).manual_seed(config.seed)
        results: list[Generation | None] = [None] * len(requests)
        adapter = adapter and self.has_adapter
        with self._weights(adapter), self.torch.inference_mode():
            for start in range(0, len(order), size):
                batch = order[start : start + size]
                rows = [self._new_row(encoded[i], requests[i], config) for i in batch]
                started = time.perf_counter()
                self._decode_rows(rows, config, sampler, adapter)
                for i, row in zip(batch, rows):
                    results[i] = self._generation(row, config, started, len(batch))
        if config.temperature == 0:
            for request, ids, result in zip(requests, encoded, results):
                self._remember(self._greedy_key(request, ids, config, adapter), result)
        return [r for r in results if r is not None]

    # -- greedy answers, kept for ``recall`` ------------------------------------------------
    def _greedy_key(self, request: Request, ids: list[int], config: GenerationConfig, adapter: bool) -> Any:
        schema = request.response_schema
        return (
            hashlib.blake2b(array("q", ids).tobytes(), digest_size=16).digest(),  # not the ids: long
            json.dumps(schema, sort_keys=True) if schema is not None else None,
            adapter and self.has_adapter,
            config.max_new_tokens,
            config.stop_at_first_call,
            tuple(config.stop),
            config.repetition_penalty,
        )

    def _remember(self, key: Any, generation: Generation | None) -> None:
        if generation is None:
            return
        self._greedy[key] = generation
        self._greedy.move_to_end(key)
        while len(self._greedy) > GREEDY_KEPT:
            self._greedy.popitem(last=False)

    def recall(self, request: Request, config: GenerationConfig, adapter: bool) -> Generation | None:
        """The greedy answer this backend last generated for the same prompt, schema, adapter and
        decoding settings (batch size aside), or None; never generates. ``generate`` always decodes
        (latencies stay measured); this lets a second predictor reuse a first one's answer."""
        if config.temperature != 0:
            return None
        return self._greedy.get(self._greedy_key(request, self.prompt_ids(request), config, adapter))

    def _generation(self, row: _Row, config: GenerationConfig, started: float, batch: int) -> Generation:
        text = self.tokenizer.decode(row.new, skip_special_tokens=True)
        return Generation(
            text=finish_text(text, config),
            latency=(row.done_at or time.perf_counter()) - started,
            first_token_latency=None if row.first_at is None else row.first_at - started,
            prompt_tokens=row.prompt_len,
            completion_tokens=len(row.new),
            batch_size=batch,
            logprob=row.logprob,
            token_ids=list(row.new),
            token_logprobs=list(row.logprobs),
        )

    @contextmanager
    def adapter_merged(self) -> Iterator[None]:
        """Keep the adapter merged into the weights for a whole block of work (a speculator
        scoring step after step, as a deployed one would run: merged once), instead of merging and
        unmerging around every call; generations with the adapter inside the block run on the same
        merged weights. Asking for the base weights inside the block is an error."""
        with self._weights(True):
            yield

    @contextmanager
    def _weights(self, adapter: bool) -> Iterator[None]:
        """Adapter merged into the weights, or disabled; the model is as it was afterwards. Inside
        :meth:`adapter_merged`, adapter calls use the weights already merged."""
        if not self.has_adapter or (adapter and self._merged):
            yield
        elif self._merged:
            raise RuntimeError("the base model's weights were asked for while the adapter is held merged")
        elif adapter:
            pairs = self._merged_pairs()
            if pairs is None:  # too large to keep a merged copy: merge in place, undo after
                with self._merged_in_place():
                    yield
                return
            for layer, _, merged in pairs:
                layer.get_base_layer().weight.data = merged
                layer.merged_adapters = list(layer.active_adapters)
            self._merged = True
            try:
                yield
            finally:
                self._merged = False
                for layer, base, _ in pairs:
                    layer.get_base_layer().weight.data = base
                    layer.merged_adapters = []
        else:
            with self.model.disable_adapter():
                yield

    def _merged_pairs(self) -> list[tuple[Any, Any, Any]] | None:
        """(LoRA layer, its base weight, the same weight with the adapter merged in) for every
        layer the adapter wraps, merged once and kept: an adapter call swaps the tensors in and
        out instead of merging and unmerging (which costs a pass over every adapted weight per
        call, and below fp32 drifts: ``W + BA - BA != W``). None when the copy would take more
        than ``MERGED_COPY_MAX_BYTES``."""
        if self._pairs is None:
            from peft.tuners.lora import LoraLayer

            layers = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
            weights = [m.get_base_layer().weight for m in layers]
            if sum(w.numel() * w.element_size() for w in weights) > MERGED_COPY_MAX_BYTES:
                self._pairs = []
                return None
            bases = [w.data for w in weights]
            for layer, base in zip(layers, bases):
                layer.get_base_layer().weight.data = base.clone()  # merged into, then kept
            self.model.merge_adapter()
            self._pairs = [(m, b, w.data) for m, b, w in zip(layers, bases, weights)]
            for layer, base in zip(layers, bases):
                layer.get_base_layer().weight.data = base
                layer.merged_adapters = []
        return self._pairs or None

    @contextmanager
    def _merged_in_place(self) -> Iterator[None]:
        """The adapter merged into the weights in place, undone after. In bf16/fp16
        ``W + BA - BA != W`` (drift that adds up over an eval), so below fp32 the base weights
        are copied before the merge and put back after it instead."""
        saved = self._base_weights() if self.dtype != "float32" else None
        self.model.merge_adapter()
        self._merged = True
        try:
            yield
        finally:
            self._merged = False
            if saved is None:
                self.model.unmerge_adapter()
            else:
                for layer, weight in saved:
                    layer.get_base_layer().weight.data.copy_(weight)
                    layer.merged_adapters = []

    def _base_weights(self) -> list[tuple[Any, Any]]:
        """(LoRA layer, copy of its base weight) for every layer the adapter wraps."""
        from peft.tuners.lora import LoraLayer

        return [
            (m, m.get_base_layer().weight.detach().clone())
            for m in self.model.modules()
            if isinstance(m, LoraLayer)
        ]

    # -- the decoding loop, in small steps -------------------------------------------------

    def _new_row(self, prompt: list[int], request: Request | None, config: GenerationConfig) -> _Row:
        row = _Row(ids=list(prompt), prompt_len=len(prompt))
        if config.stop or config.stop_at_first_call:
            row.text = IncrementalText(self.tokenizer)
        if config.stop_at_first_call:
            row.scanner = CallScanner()
        if request is not None and request.response_schema is not None:
            row.matcher = self._grammar().matcher(request.response_schema)
        return row

    def _grammar(self) -> Any:
        if self._constraint is None:
            from specdecode.evaluate.constrain import XGrammarConstraint

            vocab = int(self.model.get_output_embeddings().weight.shape[0])
            self._constraint = XGrammarConstraint(self.tokenizer, vocab, sorted(self.eos_ids))
        return self._constraint

    def _decode(self, prompts: list[list[int]], config: GenerationConfig) -> list[list[int]]:
        """New token ids for raw prompts (one batch, base or adapter as the caller set it)."""
        rows = [self._new_row(p, None, config) for p in prompts]
        sampler = self.torch.Generator(device=self.device).manual_seed(config.seed)
        self._decode_rows(rows, config, sampler, adapter=False)
        return [r.new for r in rows]

    def _decode_rows(self, rows: list[_Row], config: GenerationConfig, sampler: Any, adapter: bool) -> None:
        """Decode one batch: prefill, then pick and accept each row's tokens, drop finished rows,
        and feed each row its last token and its draft (:meth:`_drafts`) in one forward pass."""
        batch, logits = self._prefill([r.ids for r in rows], adapter)
        logits, drafts = logits[:, None], [[] for _ in rows]  # one fed column per row so far
        while True:
            used = self._verify(logits, [rows[i] for i in batch.active], drafts, config, sampler)
            self._settle(batch, drafts, used, single=len(rows) == 1)
            keep = [k for k, i in enumerate(batch.active) if rows[i].done_at is None]
            if not keep:
                break
            if len(keep) < len(batch.active):
                _drop_rows(batch, keep)
            drafts = self._drafts([rows[i] for i in batch.active], config)
            logits = self._step(batch, [rows[i].ids[-1] for i in batch.active], drafts)
        if self.reuse_prefix and len(rows) == 1:
            # The cache holds the prompt and every new token but the last (never fed back).
            row = rows[0]
            self._kept = _Kept(adapter, row.ids[:-1] if row.new else list(row.ids), batch.cache)

    def _drafts(self, rows: list[_Row], config: GenerationConfig) -> list[list[int]]:
        """Each constrained row's draft: the tokens of the text its grammar forces next (after
        ``"tool_name": "`` comes a tool's name, after it ``", "arguments": {"``...), verified
        like speculative decoding's drafts (:meth:`_verify`), so a forced stretch costs one forward
        pass instead of one per token and the answer is the one token-by-token decoding gives.
        Greedy decoding only (a sampled answer is drawn token by token)."""
        if config.temperature > 0:
            return [[] for _ in rows]
        drafts = []
        for row in rows:
            forced = row.matcher.find_jump_forward_string() if row.matcher is not None else ""
            ids = self._forced_ids.get(forced) if forced else []
            if ids is None:
                ids = self._forced_ids[forced] = self.tokenizer(forced, add_special_tokens=False)["input_ids"]
            drafts.append(ids[:MAX_DRAFT])
        return drafts

    def _verify(
        self, logits: Any, rows: list[_Row], drafts: list[list[int]], config: GenerationConfig, sampler: Any
    ) -> list[int]:
        """Pick and accept each row's tokens from the logits of its fed columns (rows × columns ×
        vocab): column c's token is picked as always (grammar mask, greedy or sampling); while it
        equals the row's draft token c the next column is read too. Returns, per row, the columns
        whose keys and values stay valid in the cache (the fed token and its accepted draft)."""
        used = [1] * len(rows)
        open_rows = list(range(len(rows)))
        for column in range(logits.shape[1]):
            tokens = self._pick(logits[open_rows, column], [rows[k] for k in open_rows], config, sampler)
            now = time.perf_counter()
            still = []
            for k, token in zip(open_rows, tokens):
                done = self._accept(rows[k], token, config, now)
                if not done and column < len(drafts[k]) and token == drafts[k][column]:
                    used[k] += 1
                    still.append(k)
            if not still:
                break
            open_rows = still
        return used

    def _settle(self, batch: _Batch, drafts: list[list[int]], used: list[int], single: bool) -> None:
        """After a verification: the cache keeps, per row, only its valid fed columns. A batch of
        one drops the rest from the cache's end (so a kept cache holds exactly its tokens); a larger
        batch masks them (rows accept drafts of different lengths)."""
        width = 1 + max((len(d) for d in drafts), default=0)
        if width == 1:
            return
        torch, device = self.torch, batch.mask.device
        kept = torch.tensor(used, device=device)[:, None]
        if single:
            extra = width - used[0]
            if extra:
                batch.cache.crop(-extra)
                batch.mask = batch.mask[:, :-extra]
        else:
            valid = torch.arange(width, device=device)[None, :] < kept
            batch.mask[:, -width:] &= valid.to(batch.mask.dtype)
        batch.next_position = batch.next_position + kept - 1  # _step added one already

    def _prefill(self, prompts: list[list[int]], adapter: bool) -> tuple[_Batch, Any]:
        """KV cache of the prompts and the logits of their last tokens. The prefix all prompts
        share is computed once (or cropped from the kept cache), then the left-padded tails."""
        torch, model, device = self.torch, self.model, self.device
        cache, shared = self._prefix_cache(prompts, adapter)
        tails = [p[shared:] for p in prompts]
        width = max(len(t) for t in tails)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in tails], device=device)
        mask = torch.tensor(
            [[1] * shared + [0] * (width - len(t)) + [1] * len(t) for t in tails], device=device
        )
        positions = torch.tensor(
            [[shared] * (width - len(t)) + list(range(shared, shared + len(t))) for t in tails],
            device=device,
        )
        self.prefilled_tokens += sum(len(t) for t in tails)
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            logits_to_keep=logits_index(width, 1, device),
        ).logits[:, -1]
        batch = _Batch(cache, mask, positions[:, -1:] + 1, list(range(len(prompts))))
        return batch, logits

    def _prefix_cache(self, prompts: list[list[int]], adapter: bool) -> tuple[Any, int]:
        """A KV cache holding the first ``shared`` tokens every prompt starts with."""
        from transformers import DynamicCache

        kept, self._kept = self._kept, None
        if self.reuse_prefix and len(prompts) == 1 and kept is not None and kept.adapter == adapter:
            common = min(_common_prefix_len(kept.ids, prompts[0]), len(prompts[0]) - 1)
            if common > 0:
                kept.cache.crop(common - kept.cache.get_seq_length())  # negative: tokens to drop
                self.reused_tokens += common
                return kept.cache, common
        cache = DynamicCache(config=self.model.config)
        shared = shared_prefix_len(prompts)
        if shared:
            prefix = self.torch.tensor([prompts[0][:shared]], device=self.device)
            keep = logits_index(shared, 1, self.device)
            self.model(input_ids=prefix, past_key_values=cache, logits_to_keep=keep)
            self.prefilled_tokens += shared
            if len(prompts) > 1:
                cache.batch_repeat_interleave(len(prompts))
        return cache, shared

    def _step(self, batch: _Batch, tokens: list[int], drafts: list[list[int]]) -> Any:
        """Feed each active row its last token and its draft (padded to the longest draft, the
        padding masked); the logits of every fed column (rows × columns × vocab)."""
        torch, device = self.torch, self.device
        width = 1 + max(len(d) for d in drafts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        fed = [[t, *d] for t, d in zip(tokens, drafts)]
        ids = torch.tensor([f + [pad] * (width - len(f)) for f in fed], device=device)
        real = torch.tensor([[1] * len(f) + [0] * (width - len(f)) for f in fed], device=device)
        batch.mask = torch.cat([batch.mask, real.to(batch.mask.dtype)], dim=1)
        logits = self.model(
            input_ids=ids,
            attention_mask=batch.mask,
            position_ids=batch.next_position + torch.arange(width, device=device)[None, :],
            past_key_values=batch.cache,
        ).logits
        batch.next_position = batch.next_position + 1
        return logits

    def _pick(self, logits: Any, rows: list[_Row], config: GenerationConfig, sampler: Any) -> list[int]:
        """Next token per row: repetition penalty (HF's processor), the grammar's mask for
        constrained rows, then greedy or sampling."""
        torch = self.torch
        logits = logits.float()
        if config.repetition_penalty != 1.0:
            from transformers import RepetitionPenaltyLogitsProcessor

            penalty = RepetitionPenaltyLogitsProcessor(config.repetition_penalty)
            logits = torch.cat(
                [
                    penalty(torch.tensor([row.ids], device=logits.device), logits[k : k + 1])
                    for k, row in enumerate(rows)
                ]
            )
        if any(row.matcher is not None for row in rows):
            logits = self._grammar().mask(logits, [row.matcher for row in rows])
        if config.temperature > 0:
            logits = logits / config.temperature
            chosen = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=sampler)[:, 0]
        else:
            chosen = logits.argmax(dim=-1)
        logprobs = torch.log_softmax(logits, dim=-1).gather(1, chosen[:, None])[:, 0].tolist()
        for row, lp in zip(rows, logprobs):
            row.logprob += lp
            row.logprobs.append(lp)
        return chosen.tolist()

    def _accept(self, row: _Row, token: int, config: GenerationConfig, now: float) -> bool:
        """Append ``token`` to ``row``; True when the row is finished."""
        row.ids.append(token)
        if row.first_at is None:
            row.first_at = now
        done = token in self.eos_ids or len(row.ids) - row.prompt_len >= config.max_new_tokens
        if row.matcher is not None and not done:
            done = not row.matcher.accept_token(token) or row.matcher.is_terminated()
        if row.text is not None and not done:
            piece = row.text.add(token)
            if piece and row.scanner is not None:
                done = row.scanner.feed(piece) is not None
            if piece and config.stop and not done:
                text = row.text.text
                done = any(s and s in text[max(0, len(text) - len(piece) - len(s)) :] for s in config.stop)
        if done:
            row.done_at = now
        return done
