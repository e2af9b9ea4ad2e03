"""The speculator's training loss on CPU: the LM head applied only where a token is trained.

Why this exists: a speculator's examples are mostly prompt (system prompt, tool list, question,
calls so far) and a short target call. The usual causal-LM loss builds ``tokens × vocab`` logits
for every position and throws away all but the target's; TRL's fused LM-head loss avoids that on
CUDA (a Triton kernel), but its CPU fallback runs in Python-tiled chunks and made tiny-model steps
about 12× slower here. On CPU we therefore run the transformer body once and project through the
LM head only the positions whose next token is trained. The loss equals the model's own loss on
those positions (``tests/test_train.py`` checks the parity); CUDA keeps TRL's fused loss.
"""

from __future__ import annotations

from typing import Any


def add_selected_lm_head(model: Any) -> None:
    """Let ``model(..., select_positions=mask)`` return LM-head logits for the masked positions only.

    The forward of the Hugging Face model itself is patched (as TRL does for its fused head), so the
    call still goes through the PEFT and DDP wrappers and gradients synchronise as usual.
    """
    inner = model.forward

    def forward(*args: Any, select_positions: Any = None, **kwargs: Any) -> Any:
        if select_positions is None:
            return inner(*args, **kwargs)
        hidden = model.base_model(*args, **kwargs).last_hidden_state
        return model.get_output_embeddings()(hidden[select_positions])

    model.forward = forward


def trained_positions_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> tuple[Any, Any]:
    """Causal-LM loss that projects through the LM head only the positions whose next token is trained.

    The ``(tokens × vocab)`` logits of the prompt are never built. ``model`` must carry
    ``add_selected_lm_head``. Returns ``(loss, share of trained tokens predicted exactly)``.
    """
    import torch
    import torch.nn.functional as F

    labels = inputs.pop("labels")
    trained = labels[:, 1:] != -100
    select = torch.zeros_like(labels, dtype=torch.bool)
    select[:, :-1] = trained
    logits = model(**inputs, select_positions=select, use_cache=False)
    targets = labels[:, 1:][trained]
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else targets.numel()
    with torch.no_grad():
        accuracy = (logits.argmax(-1) == targets).float().mean()
    return loss / torch.as_tensor(count, device=loss.device).clamp(min=1), accuracy


def speculator_trainer() -> type:
    """``SFTTrainer`` with the CPU loss above (on CUDA, TRL's own fused LM-head loss is kept) and,
    when ``token_budget`` is set, batches cut into micro-batches by token budget
    (:mod:`specdecode.train.batching`): gradients accumulated over the micro-batches with the loss
    normalised by the update's trained tokens, so an update is the one the padded batch computes."""
    import contextlib

    import torch
    from trl import SFTTrainer

    from specdecode.train.batching import TokenBudgetCollator

    class SpeculatorTrainer(SFTTrainer):
        token_budget: int | None = None
        padded_budget: bool = True  # budget counts examples × longest (False: packed, the sum)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            add_selected_lm_head(base)
            self.budget_collators: list[TokenBudgetCollator] = []

        # ---------------------------------------------------------- token-budget batches
        def _budgeted(self, make: Any) -> Any:
            if not self.token_budget:
                return make()
            collate = self.data_collator
            wrapped = TokenBudgetCollator(collate, self.token_budget, padded=self.padded_budget)
            self.budget_collators.append(wrapped)
            self.data_collator = wrapped
            try:
                return make()
            finally:
                self.data_collator = collate

        def get_train_dataloader(self):  # type: ignore[override]
            return self._budgeted(super().get_train_dataloader)

        def get_eval_dataloader(self, eval_dataset=None):  # type: ignore[override]
            parent = super()
            return self._budgeted(lambda: parent.get_eval_dataloader(eval_dataset))

        def _get_num_items_in_batch(self, batch_samples, device):  # type: ignore[override]
            if batch_samples and "micro_batches" in batch_samples[0]:
                batch_samples = [mb for batch in batch_samples for mb in batch["micro_batches"]]
            return super()._get_num_items_in_batch(batch_samples, device)

        train_tokens_seen: int = 0  # real (non-pad) tokens trained on in this run
        checkpointing: tuple[list[Any], Any] | None = None  # decoder layers, memory plan
        checkpointed_passes: int = 0  # layer passes run under checkpointing (recomputed)
        layer_passes: int = 0

        def _count(self, batch: dict[str, Any]) -> None:
            mask = batch.get("attention_mask")
            self.train_tokens_seen += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
            if self.checkpointing is not None:  # just enough layers for this micro-batch's size
                layers, plan = self.checkpointing
                ids = batch["input_ids"]
                n = plan.layers_for(int(ids.numel()), int(ids.shape[-1]))
                for i, layer in enumerate(layers):
                    layer.gradient_checkpointing = i < n
                self.checkpointed_passes += n
                self.layer_passes += len(layers)

        def training_step(self, model, inputs, num_items_in_batch=None):  # type: ignore[override]
            micro = inputs.get("micro_batches")
            if micro is None:
                self._count(inputs)
                return super().training_step(model, inputs, num_items_in_batch)
            if num_items_in_batch is None:  # normalise by this batch's trained tokens, as one batch would
                num_items_in_batch = sum(int((mb["labels"][:, 1:] != -100).sum()) for mb in micro)
            total = None
            for i, batch in enumerate(micro):
                self._count(batch)
                sync = i == len(micro) - 1 or self.accelerator.num_processes == 1
                with contextlib.nullcontext() if sync else self.accelerator.no_sync(model):
                    loss = super().training_step(model, batch, num_items_in_batch)
                total = loss if total is None else total + loss
            return total

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):  # type: ignore[override]
            micro = inputs.get("micro_batches")
            if micro is None:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            weighted, count = None, 0
            for batch in micro:
                n = int((batch["labels"][:, 1:] != -100).sum())
                loss, _, _ = super().prediction_step(model, batch, True, ignore_keys)
                weighted = loss * n if weighted is None else weighted + loss * n
                count += n
            return weighted / max(count, 1), None, None

        # ---------------------------------------------------------- loss
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
            if torch.cuda.is_available():
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, accuracy = trained_positions_loss(model, inputs, num_items_in_batch)
            self._metrics["train" if model.training else "eval"]["mean_token_accuracy"].append(
                accuracy.item()
            )
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, None) if return_outputs else loss

    return SpeculatorTrainer
