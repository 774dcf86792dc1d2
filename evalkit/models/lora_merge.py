"""Adapter arms on merged weights, with the base weights restored bit for bit (``--merge-adapters``).

Unmerged LoRA adds two small matrix products, a scaling and an addition to each of the
adapted layers (210 in a 30-layer model with all seven projections adapted) on every
forward pass. Merging ``W + scaling · B A`` into the base weights for the length of an
arm removes that cost. Going back must restore the base *exactly*: peft's ``unmerge``
subtracts the delta again, and ``(W + Δ) − Δ`` is not ``W`` in floating point, so the
base arm would drift after an adapter arm ran. Here the original weights of the adapted
layers are copied once, before the first merge, and copied back for the base arm or
before another adapter merges.

Merged and unmerged adapters compute the same function with a different rounding
(``x·(W + Δ)ᵀ`` against ``x·Wᵀ + (x·Aᵀ)·Bᵀ·s``), so a greedy text can differ where two
tokens are nearly tied. That is why merging is opt-in, recorded in the backend identity
(so merged outputs are cached apart), and never used for quantized bases (merging into
4/8-bit weights rounds the adapter away).

Memory: the copy holds the adapted layers' weights once (for SmolLM2-135M with all seven
projections adapted, 107 M parameters, 0.4 GB at float32). It is kept in host memory,
so a model on a GPU pays host RAM and one host-to-device copy per arm switch, not GPU
memory; a base too large for a second copy in host RAM should not use ``--merge-adapters``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["MergedArms"]


class MergedArms:
    """Switches a ``PeftModel`` between its base and one merged adapter at a time.

    Args:
        model: the ``PeftModel`` holding every adapter arm (not quantized).
    """

    def __init__(self, model: Any) -> None:
        from peft.tuners.lora import LoraLayer

        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        self.originals: list[dict[str, torch.Tensor]] | None = None
        self.merged: str | None = None

    def use(self, arm: str) -> None:
        """Make ``arm`` (``"base"`` or an adapter name) the model's weights."""
        if arm == self.merged or (arm == "base" and self.merged is None):
            return
        self.restore()
        if arm == "base":
            return
        if self.originals is None:
            # Once, before the first merge: the weights every later restore copies back.
            # (the bias too: a LoRA with lora_bias merges into it)
            self.originals = [{name: p.detach().to("cpu", copy=True) for name, p in layer.get_base_layer().named_parameters(recurse=False)}
                              for layer in self.layers]
        self.model.set_adapter(arm)
        for layer in self.layers:
            if arm in layer.lora_A or arm in getattr(layer, "lora_embedding_A", {}):
                layer.merge(adapter_names=[arm])
        self.merged = arm

    def restore(self) -> None:
        """Put the original base weights back (an exact copy) and mark no adapter as merged."""
        if self.merged is None:
            return
        assert self.originals is not None
        with torch.no_grad():
            for layer, original in zip(self.layers, self.originals):
                params = dict(layer.get_base_layer().named_parameters(recurse=False))
                for name, value in original.items():
                    params[name].copy_(value)
                layer.merged_adapters.clear()
        self.merged = None
