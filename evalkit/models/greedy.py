"""Greedy decoding for a batch of prompts, without paying for shared prefixes or finished rows.

``transformers``' ``generate`` spends most of a CPU evaluation's time on work whose result
is thrown away or computed twice:

- every prompt of a suite usually starts with the same system prompt and template
  (128 of the incident-triage suite's 234 prompt tokens on average); ``generate``
  runs it through the model once per row. Here it runs once per batch, and its keys
  and values are copied into every row of the cache;
- a row that has produced its end-of-turn token keeps being computed until the
  longest row ends. Here finished rows leave the batch (and the KV cache);
- ``DynamicCache`` grows by ``torch.cat``, copying the whole cache every step. Here
  the cache is allocated once for the batch's final length and written in place.

The arithmetic per row is the model's own forward pass, with the same token ids,
positions (``attention_mask.cumsum() - 1``, as ``generate`` computes them), float32
argmax over the last position's logits and stop rule as ``generate``. What differs is
only which rows share a matrix product, and where a prompt's padding sits: the
same kind of difference as running at another batch size, which greedy float32
decoding does not see in its text (tests compare against ``generate`` at several
batch sizes, and ``benchmarks/bench_vs_lmeval.py`` against lm-evaluation-harness).

Layout of one batch in the cache (``P`` shared prefix, ``S`` longest suffix)::

    columns  0 .. P-1      P .. P+S-1                  P+S ..
    row 0    prefix        pad pad suffix-0            generated-0 ...
    row 1    prefix        suffix-1 (longest)          generated-1 ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

__all__ = ["common_prefix_length", "greedy_generate", "supports_fast_greedy"]

# generation_config fields that do not change what greedy decoding picks; anything else
# (repetition_penalty, suppress_tokens, min_new_tokens, ...) is a logits processor that
# ``generate`` would apply, so such models take ``generate``'s path instead.
_NEUTRAL_GENERATION_FIELDS = frozenset({
    "bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "do_sample", "temperature", "top_p",
    "top_k", "min_p", "typical_p", "max_length", "max_new_tokens", "use_cache", "num_beams", "num_return_sequences",
    "output_attentions", "output_hidden_states", "output_scores", "output_logits", "return_dict_in_generate",
    "transformers_version", "_from_model_config", "cache_implementation",
})

FINISHED_SHARE_TO_COMPACT = 0.125
"""Drop finished rows once they are this share of the batch: compacting copies the cache
of the rows that remain, which costs about half a decode step at 64 rows here."""


class _PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers sized for the whole generation, written in place.

    ``DynamicLayer`` concatenates every step (a copy of the whole cache per token); this
    writes the new columns into a buffer allocated once and returns a view of the filled part.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        b, h, _, d = key_states.shape
        self._k = torch.empty((b, h, self.capacity, d), dtype=key_states.dtype, device=key_states.device)
        self._v = torch.empty((b, value_states.shape[1], self.capacity, value_states.shape[-1]), dtype=value_states.dtype, device=value_states.device)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        self._k[:, :, self.length : self.length + n] = key_states
        self._v[:, :, self.length : self.length + n] = value_states
        self.length += n
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def broadcast_rows(self, rows: int) -> None:
        """Repeat a one-row cache (the shared prefix) into ``rows`` rows."""
        self._k = self._k.expand(rows, -1, -1, -1).clone()
        self._v = self._v.expand(rows, -1, -1, -1).clone()
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def select(self, rows: torch.Tensor, columns: torch.Tensor) -> None:
        """Keep only ``rows`` and the filled ``columns`` (in order); the rest of the capacity stays free."""
        spare = self.capacity - self.length
        self._k = _gather(self._k, rows, columns, spare)
        self._v = _gather(self._v, rows, columns, spare)
        self.length = len(columns)
        self.capacity = self.length + spare
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]


def _gather(buf: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, spare: int) -> torch.Tensor:
    out = buf.new_empty((len(rows), buf.shape[1], len(columns) + spare, buf.shape[3]))
    out[:, :, : len(columns)] = buf[rows][:, :, columns]
    return out


def supports_fast_greedy(model: Any) -> bool:
    """Whether :func:`greedy_generate` computes what ``model.generate`` would for greedy decoding.

    True for decoder-only models whose every layer is full attention with a plain key/value
    cache (Llama, Mistral, Qwen, SmolLM, ...) and whose generation config adds no logits
    processor. Sliding-window, hybrid, recurrent and encoder-decoder models use ``generate``.
    """
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None)
    if layer_types is not None and any(t != "full_attention" for t in layer_types):
        return False
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        return False
    gen = getattr(model, "generation_config", None)
    if gen is not None and set(gen.to_diff_dict()) - _NEUTRAL_GENERATION_FIELDS:
        return False
    return True


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix every prompt starts with."""
    first, n = prompts[0], min(len(p) for p in prompts)
    for i in range(n):
        t = first[i]
        if any(p[i] != t for p in prompts):
            return i
    return n


@torch.inference_mode()
def greedy_generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    device: str | torch.device = "cpu",
    share_prefix: bool = True,
    drop_finished: bool = True,
    kernels: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> list[list[int]]:
    """Greedy completions of ``prompts`` (token ids), each cut after its first stop id.

    Args:
        model: a causal LM (``transformers`` model or ``PeftModel``) for which
            :func:`supports_fast_greedy` holds, with the wanted arm active.
        max_new_tokens: at most this many tokens per row, the stop token included.
        stop_ids: a row ends at the first of these (it is kept in the row's output).
        share_prefix: run the prompts' common token prefix once for the batch.
        drop_finished: remove rows from the batch once they have stopped.
        kernels: a context entered around each forward pass of the loop, e.g.
            :meth:`evalkit.models.packed.PackedLinears.enabled`.

    Returns:
        The generated ids per prompt, in input order.
    """
    rows = len(prompts)
    if rows == 0 or max_new_tokens <= 0:
        return [[] for _ in prompts]
    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    # Each row keeps at least one token of its own, so its last position's logits come from its own prefill.
    prefix = min(common_prefix_length(prompts), min(len(p) for p in prompts) - 1) if share_prefix and rows > 1 else 0
    suffixes = [p[prefix:] for p in prompts]
    width = max(len(s) for s in suffixes)
    capacity = prefix + width + max_new_tokens
    layers = [_PreallocatedLayer(capacity) for _ in range(n_layers)]
    cache = Cache(layers=layers)

    if prefix:
        ids = torch.tensor([list(prompts[0][:prefix])], dtype=torch.long, device=device)
        with kernels():
            model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=torch.arange(prefix, device=device)[None],
                  past_key_values=cache, use_cache=True, logits_to_keep=1)
        for layer in layers:
            layer.broadcast_rows(rows)

    # Suffixes left-padded to a common width after the prefix; positions as generate derives them from the mask.
    mask = torch.zeros((rows, capacity), dtype=torch.long, device=device)
    mask[:, :prefix] = 1
    ids = torch.full((rows, width), pad_id, dtype=torch.long, device=device)
    for r, s in enumerate(suffixes):
        ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[r, prefix + width - len(s) : prefix + width] = 1
    length = prefix + width
    positions = (mask[:, :length].cumsum(-1) - 1).masked_fill(mask[:, :length] == 0, 0)
    with kernels():
        logits = model(input_ids=ids, attention_mask=mask[:, :length], position_ids=positions[:, prefix:],
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    next_pos = positions[:, -1:] + 1  # (rows, 1)

    stop = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in prompts]
    alive = list(range(rows))  # batch row -> prompt index
    ended = torch.zeros(rows, dtype=torch.bool, device=device)  # rows that have produced a stop id
    for step in range(max_new_tokens):
        tokens = logits[:, -1].float().argmax(dim=-1)  # (batch,): generate's greedy pick, on float32 logits
        for r, t, e in zip(alive, tokens.tolist(), ended.tolist()):
            if not e:
                out[r].append(t)
        ended |= torch.isin(tokens, stop)
        n_ended = int(ended.sum())
        if step == max_new_tokens - 1 or n_ended == len(alive):
            break
        if drop_finished and n_ended >= max(1.0, FINISHED_SHARE_TO_COMPACT * len(alive)):
            keep = (~ended).nonzero().squeeze(1)
            mask = mask.index_select(0, keep)
            # Columns no remaining row attends to (padding before the shorter suffixes) leave the cache too.
            columns = mask[:, :length].any(dim=0).nonzero().squeeze(1)
            for layer in layers:
                layer.select(keep, columns)
            mask = torch.cat([mask[:, :length].index_select(1, columns), mask[:, length:]], dim=1)
            length = len(columns)
            tokens, next_pos, ended = tokens.index_select(0, keep), next_pos.index_select(0, keep), ended.index_select(0, keep)
            alive = [alive[i] for i in keep.tolist()]
        # Rows that ended but stay in the batch (too few to compact) keep computing; nothing reads their tokens.
        mask[:, length] = 1
        length += 1
        with kernels():
            logits = model(input_ids=tokens[:, None], attention_mask=mask[:, :length], position_ids=next_pos,
                           past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        next_pos = next_pos + 1
    return out
