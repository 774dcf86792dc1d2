"""TRL's ``SFTTrainer`` with a training loss that projects only the learned positions through the LM head.

TRL 1.x computes the loss with a chunked, fused LM head that also yields entropy and
top-1 accuracy for its logs. Where Triton runs (CUDA) it scores only the positions
whose next token is learned; elsewhere, CPU included, it scores *every* position:
prompt and padding too, each through the full 49k-word vocabulary, in float32, and
again in the backward pass. With completion-only loss on short answers after long
prompts (the incident-triage data: 36 of 271 tokens learned) that is most of the
head's work thrown away, and the head is a fifth of a small model's FLOPs.

``CompletionSFTTrainer`` keeps everything else of SFTTrainer (data preparation,
collator, peft wrapping, logging) and replaces only the training loss: a forward
pre-hook on the output layer keeps the hidden states of learned positions, so the
head's matmul, the log-softmax and its backward run on those rows alone. The loss
is the same mean token NLL, normalised the same way (``num_items_in_batch``); the
same metrics are logged (``mean_token_accuracy``, ``entropy``, ``num_tokens``),
computed on the rows that were scored anyway. Evaluation, custom losses, label
smoothing and MoE auxiliary losses go through TRL's path unchanged.

Batches padded on the right (TRL's collator) also drop the padding mask: under a
causal mask no real token attends to a later pad position, so what is learned is
unchanged, and attention runs as plain causal attention, which skips the blocks above
the diagonal instead of masking a full square. (TRL's ``padding_free`` flattens the
batch instead; without a varlen attention kernel, as on CPU, sdpa then builds a dense
mask over the whole flattened batch, which costs more than the padding it removes.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from trl import SFTTrainer

__all__ = ["CompletionSFTTrainer"]


class CompletionSFTTrainer(SFTTrainer):  # type: ignore[misc]
    """``SFTTrainer`` whose training loss runs the LM head on learned positions only."""

    causal_only: bool = True

    def _plain_nll(self) -> bool:
        return (self.compute_loss_func is None and self.label_smoother is None and self.args.loss_type == "nll"
                and not getattr(self, "aux_loss_enabled", False))

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        if return_outputs or not model.training or not self._plain_nll():
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        labels = inputs["labels"]
        learned = labels[:, 1:] != -100  # position t predicts token t+1
        head = self.accelerator.unwrap_model(model).get_output_embeddings()

        def keep_learned(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            hidden = args[0]  # [batch, seq, hidden] → [n_learned, hidden]
            return (hidden[:, :-1][learned], *args[1:])

        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        if self.causal_only and _right_padded(model_inputs.get("attention_mask")):
            # Right padding under a causal mask: no real token attends to a later pad, so the padding
            # mask changes nothing that is learned; without it attention runs causal (half the blocks).
            del model_inputs["attention_mask"]
        handle = head.register_forward_pre_hook(keep_learned)
        try:
            logits = model(**model_inputs, use_cache=False).logits  # [n_learned, vocab]
        finally:
            handle.remove()
        targets = labels[:, 1:][learned]
        log_probs = F.log_softmax(logits.float(), dim=-1)
        nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        count = learned.sum() if num_items_in_batch is None else num_items_in_batch
        loss = nll.sum() / torch.as_tensor(count, device=nll.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as TRL and Trainer do: DDP averages across ranks
        self._log_metrics(inputs, log_probs.detach(), targets)
        return loss

    def _log_metrics(self, inputs: dict[str, Any], log_probs: torch.Tensor, targets: torch.Tensor) -> None:
        """TRL's training metrics, from the rows scored for the loss."""
        n = self.accelerator.gather_for_metrics(torch.tensor(targets.numel(), device=targets.device)).sum()
        correct = self.accelerator.gather_for_metrics((log_probs.argmax(-1) == targets).sum()).sum()
        entropy = self.accelerator.gather_for_metrics(-(log_probs.exp() * log_probs).sum(-1).sum()).sum()
        metrics = self._metrics["train"]
        metrics["entropy"].append((entropy / n).item() if n > 0 else 0.0)
        metrics["mean_token_accuracy"].append((correct / n).item() if n > 0 else 0.0)
        if "attention_mask" in inputs:
            tokens = inputs["attention_mask"].sum()
        else:  # padding-free batches carry position_ids over one row instead of a mask
            tokens = torch.tensor(inputs["position_ids"].size(1), device=targets.device)
        self._total_train_tokens += self.accelerator.gather_for_metrics(tokens).sum().item()
        metrics["num_tokens"] = [self._total_train_tokens]


def _right_padded(mask: torch.Tensor | None) -> bool:
    """True when every row of an attention mask is ones then zeros (padding on the right only)."""
    return mask is not None and mask.dim() == 2 and bool((mask[:, 1:] <= mask[:, :-1]).all())
