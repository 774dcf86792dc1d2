"""oneDNN-prepacked weights for the fast greedy loop on CPU.

PyTorch's default CPU kernel for ``nn.Linear`` (MKL ``sgemm``) repacks the weight matrix into
its blocked layout on every call. In a decode step (one new token for each of 16 rows) that
repacking, streamed from main memory, costs as much as the arithmetic: 67 GFLOP/s for
SmolLM2's MLP shapes here, against 137 for the same product on a weight packed once; in a
prompt's prefill (16 × 124 tokens) packing still buys 1.1-1.3×. :class:`PackedLinears` keeps a
oneDNN-packed copy of each ``nn.Linear`` weight and, only inside :meth:`PackedLinears.enabled`
(which :func:`evalkit.models.greedy.greedy_generate` enters around its forward passes),
computes the layer with ``torch.ops.mkldnn._linear_pointwise`` on that copy. Log-likelihoods,
KL drift and ``generate`` keep the stock kernel.

The packed product sums in another order than MKL's, so values differ in the last bits, as
they do between batch sizes; greedy float32 text does not see it (``tests/models/test_greedy.py``
compares with ``generate``, ``benchmarks/bench_vs_lmeval.py`` with lm-evaluation-harness).
A weight changed in place after packing (``--merge-adapters`` swaps arms that way) is packed
again on its next use: each copy remembers the weight's version counter.

The cost is a second copy of the dense weights (0.5 GB for SmolLM2-135M in float32); a model
whose copy would take more than a quarter of the RAM is not packed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["PackedLinears", "fits_in_memory", "packing_available"]

ROWS_HINT = 16
"""Rows oneDNN tunes the packed layout for (a decode step's batch); prefill shapes run as fast with it."""

MEMORY_SHARE = 0.25
"""Pack only when the packed copy takes at most this share of the machine's RAM."""


def packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def fits_in_memory(model: torch.nn.Module) -> bool:
    """Whether a packed copy of ``model``'s linear weights stays within :data:`MEMORY_SHARE` of the RAM."""
    import os

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return sum(m.weight.numel() * m.weight.element_size() for m in _linears(model)) <= MEMORY_SHARE * ram


def _linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The float32 CPU ``nn.Linear`` layers, except LoRA's own low-rank factors: a rank-8 product runs
    in 7 µs on the stock kernel and 18 µs packed (oneDNN's fixed cost per call)."""
    low_rank = {id(f) for m in model.modules() for name in ("lora_A", "lora_B")
                if isinstance(getattr(m, name, None), torch.nn.ModuleDict) for f in getattr(m, name).values()}
    return [m for m in model.modules() if type(m) is torch.nn.Linear and id(m) not in low_rank
            and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu"]


class PackedLinears:
    """Packed copies of a float32 CPU model's ``nn.Linear`` weights, used inside :meth:`enabled`."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.active = False
        self._modules = _linears(model)
        for module in self._modules:
            module._evalkit_packed = (-1, None)  # (weight version packed, packed weight): packed on first use
            module.forward = _packed_forward(self, module, module.forward)

    @contextmanager
    def enabled(self) -> Iterator[None]:
        """Linear layers use their packed weights inside this block."""
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def remove(self) -> None:
        """Give the modules their own ``forward`` back and free the packed copies."""
        for module in self._modules:
            del module.forward, module._evalkit_packed
        self._modules = []


def _packed_forward(owner: PackedLinears, module: torch.nn.Linear, stock: Any) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if not owner.active:
            return stock(x)
        version, packed = module._evalkit_packed
        if version != module.weight._version:
            packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), ROWS_HINT)
            module._evalkit_packed = (module.weight._version, packed)
        return torch.ops.mkldnn._linear_pointwise(x, packed, module.bias, "none", [], "")

    return forward
