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
    """``SFTTrainer`` with the CPU loss above; on CUDA, TRL's own fused LM-head loss is kept."""
    import torch
    from trl import SFTTrainer

    class SpeculatorTrainer(SFTTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            add_selected_lm_head(base)

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
