"""Constrained beam search over code tuples, vectorised over batch and beams.

Only the loop over code levels (a handful, static) is in Python. The decoder is a step
function with a cache: after each level's selection the cache rows follow their parent
beam, so the next level decodes one new position per beam. Each beam stands on a node of
the table's prefix tree (``genrec.model.code_table.build_trie``): its possible next codes are
that node's children, read off in a few gathers (no search over the keys: that was the largest
cost besides the network itself at a million items). A level reads as many child slots per beam
as its busiest node has children (``code_table.child_slots``), not its whole vocabulary: below
the first levels a prefix has a handful of children, so most codes are never candidates. A (beam,
next code) candidate is kept when the number of catalogue items under it, minus the number of
excluded items (the user's history) under it, is positive; the excluded items are few, so each
is placed under its beam and code directly. So the search can only ever reach real,
non-excluded items, and never wastes a beam on a prefix whose items are all excluded. Ties are
broken as a stable sort would (the lower candidate index first), making the result
deterministic and the same on CPU and CUDA for the same scores.

Items added after training (index ``trained_items`` and above) have code paths the
decoder never saw as targets, so their raw log-probabilities say nothing. A branch that leads
to fresh items only is scored by its trained siblings instead: where it leaves the trained
tree it gets their mean probability (times a weight), and below that the probability is split
evenly among its children. So a new item ranks like an average item of the region its content
placed it in, and with no fresh item in the table every score is the decoder's own.

There is no data-dependent Python control flow: shapes depend only on input shapes (batch,
each level's child slots) and static numbers (beam width, level sizes), which keeps the
function traceable by torch.export / ONNX.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from genrec.model.code_table import TRIE_CHILDREN, TRIE_CODE, TRIE_COUNT, TRIE_FIRST_ITEM

# A decoder's state between levels: tensors whose rows are the B*W beams (row b*W + w), such
# as the keys / values of the positions decoded so far. Empty at the first level.
Cache = tuple[torch.Tensor, ...]
# (prefix codes [B, W, t], level, cache) -> (logits [B, W, level_size], the cache extended)
StepFn = Callable[[torch.Tensor, int, Cache], tuple[torch.Tensor, Cache]]


def exclusion_keys(items: torch.Tensor, item_keys: torch.Tensor, sentinel: int) -> torch.Tensor:
    """Sorted, de-duplicated keys of ``items [B, H]`` (pad < 0), padded with ``sentinel``."""
    valid = items >= 0
    keys = torch.where(valid, item_keys[items.clamp(min=0)], torch.full_like(items, sentinel))
    keys, _ = torch.sort(keys, dim=1)
    dup = torch.zeros_like(valid)
    dup[:, 1:] = keys[:, 1:] == keys[:, :-1]
    keys = torch.where(dup, torch.full_like(keys, sentinel), keys)
    keys, _ = torch.sort(keys, dim=1)
    return keys.contiguous()


def constrained_beam_search(
    step_fn: StepFn,
    batch_size: int,
    level_sizes: Sequence[int],
    base: int,
    trie: torch.Tensor,
    child_slots: Sequence[torch.Tensor],
    exclude_keys: torch.Tensor | None,
    beam_width: int,
    top_k: int,
    trained_items: int | None = None,
    fresh_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``top_k`` item indices ``[B, K]`` and their log-probabilities (descending).

    Slots that cannot be filled (catalogue smaller than K after exclusions) get item -1
    and score -inf. ``beam_width`` beams are kept between levels. Items from index
    ``trained_items`` on were added after training: their branches are scored by their
    siblings' mean probability times ``fresh_weight`` (None: every score is the decoder's).
    ``trie`` and ``child_slots`` (one tensor per level) are the table's ``CodeTable.trie`` and
    ``CodeTable.slots``.
    """
    if beam_width < top_k:
        raise ValueError("beam_width must be >= top_k")
    if trained_items is not None and fresh_weight <= 0:
        raise ValueError("fresh_weight must be > 0 (for the decoder's own scores, pass no trained_items)")
    device = trie.device
    n_levels = len(level_sizes)
    B = batch_size
    neg_inf = torch.tensor(float("-inf"), device=device)
    # One live beam at the first level; the beam count at each level is a static number.
    scores = torch.zeros((B, 1), device=device)
    prefix = torch.zeros((B, 1, 0), dtype=torch.long, device=device)
    prefix_key = torch.zeros((B, 1), dtype=torch.long, device=device)
    node = torch.zeros((B, 1), dtype=torch.long, device=device)  # the root
    fresh_beam = torch.zeros((B, 1), dtype=torch.bool, device=device)  # the beam's prefix leads to fresh items only
    cache: Cache = ()
    for level, size in enumerate(level_sizes):
        beams = prefix.shape[1]
        logits, cache = step_fn(prefix, level, cache)
        logp = torch.log_softmax(logits.float(), dim=-1)  # [B, beams, V]
        slots = child_slots[level]
        fanout = slots.shape[0]
        child = _children(trie, node, slots)  # [B, beams, fanout]
        child_code = _trie_at(trie, TRIE_CODE, child).clamp(max=size - 1)  # the pad's code is past the level's
        count = _trie_at(trie, TRIE_COUNT, child)
        logp = logp.gather(2, child_code)
        if trained_items is not None:  # fresh: the lowest item index under the branch is past training
            all_fresh = _trie_at(trie, TRIE_FIRST_ITEM, child) >= trained_items
            logp, only_fresh = _score_fresh_branches(logp, count, all_fresh, fresh_beam, fresh_weight)
        if exclude_keys is not None:
            span = base ** (n_levels - 1 - level)
            excluded = _excluded_counts(exclude_keys, prefix_key, base * span, span, size)
            count = count - excluded.gather(2, child_code)
        keep = min(top_k if level == n_levels - 1 else beam_width, beams * size)
        total = torch.where(count > 0, scores[..., None] + logp, neg_inf).reshape(B, -1)
        # ``keep`` may exceed the beams x fanout candidates: dead ones (-inf) fill the rest, and a
        # pick among them stands on the last candidate, dead (its -inf score stays with it).
        scores, pick = stable_top(torch.cat([total, neg_inf.expand(B, keep)], dim=1), keep)
        pick = torch.minimum(pick, torch.full_like(pick, beams) * fanout - 1)
        beam = torch.div(pick, fanout, rounding_mode="floor")
        code = child_code.reshape(B, -1).gather(1, pick)
        prefix = torch.cat(
            [torch.gather(prefix, 1, beam[..., None].expand(-1, -1, prefix.shape[2])), code[..., None]], dim=2
        )
        prefix_key = torch.gather(prefix_key, 1, beam) * base + code
        node = child.reshape(B, -1).gather(1, pick)
        if trained_items is not None:
            fresh_beam = only_fresh.reshape(B, -1).gather(1, pick)
        if level < n_levels - 1:  # static; the last level's cache is not used again
            rows = (beam + torch.arange(B, device=device)[:, None] * beams).reshape(-1)
            cache = tuple(c.index_select(0, rows) for c in cache)
    found = torch.isfinite(scores)  # then the beam ends on a leaf: one item
    items = torch.where(found, _trie_at(trie, TRIE_FIRST_ITEM, node), torch.full_like(node, -1))
    if items.shape[1] < top_k:  # tiny code spaces: pad to the promised width
        pad = top_k - items.shape[1]
        items = torch.cat([items, items.new_full((B, pad), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((B, pad), float("-inf"))], dim=1)
    return items, scores


def _trie_at(trie: torch.Tensor, row: int, nodes: torch.Tensor) -> torch.Tensor:
    """``trie[row][nodes]``, read from the flat tree: an exported graph copied the whole row first
    (the four rows of a 100k-item tree, 8 MB, on every served call). A ``gather`` along a ``[1, N]``
    view, not an index: ONNX Runtime's Gather read these 8-byte values ~10x slower than GatherElements
    (three reads of a level's children were ~5 % of a served call at 100k items)."""
    flat = (nodes + row * trie.shape[1]).reshape(1, -1)
    return trie.reshape(1, -1).gather(1, flat).view_as(nodes)


def _children(trie: torch.Tensor, node: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """The children of each beam's node ``[B, beams]``: ``[B, beams, F]`` node indices, F = the
    level's ``slots``; a node's children are consecutive in the tree, so slot k holds child
    ``first + k``, or the pad node (no items, no children) past the node's last child."""
    # ``pad`` is traced as a CPU number: filled into tensors of the trie's device, not passed as a
    # tensor operand (a CUDA graph rejects a CPU one)
    pad = trie.shape[1] - 1
    first = _trie_at(trie, TRIE_CHILDREN, node)
    end = _trie_at(trie, TRIE_CHILDREN, torch.minimum(node + 1, torch.full_like(node, pad)))  # a dead beam: none
    slot = first[..., None] + slots
    return torch.where(slot < end[..., None], slot, torch.full_like(slot, pad))


def _excluded_counts(
    exclude_keys: torch.Tensor, prefix_key: torch.Tensor, parent_span: int, span: int, size: int
) -> torch.Tensor:
    """How many of each row's excluded keys ``[B, E]`` fall under each (beam, next code):
    ``[B, beams, size]``. A key is under beam ``w`` when its prefix at this level is the beam's
    (``key // parent_span``), and under that beam's code ``key // span % base``; one matrix
    product adds them up (exact: the counts are small integers). Padding keys (the sentinel)
    are under no beam.

    Both tests are written as products and remainders, without dividing: ONNX exporters turn an
    integer division into a float32 one, which rounds keys past 2**24 (four levels of 256 codes
    reach 2**32), and ONNX Runtime and TensorRT excluded the wrong items."""
    below = torch.remainder(exclude_keys, parent_span)  # the key's part below the beam's prefix
    parent = exclude_keys - below  # the prefix, times parent_span
    code = below - torch.remainder(below, span)  # the next code, times span
    under = (parent[:, None, :] == (prefix_key * parent_span)[..., None]).float()  # [B, beams, E]
    codes = (code[..., None] == torch.arange(size, device=code.device) * span).float()  # [B, E, size]
    return torch.bmm(under, codes).to(torch.long)


def _score_fresh_branches(
    logp: torch.Tensor, count: torch.Tensor, all_fresh: torch.Tensor, fresh_beam: torch.Tensor, weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``logp [B, beams, V]`` with the branches that lead to fresh items only re-scored, and
    which branches those are. ``count``: catalogue items under each branch; ``all_fresh``: all of
    them were added after training; ``fresh_beam [B, beams]``: the beam itself leads to fresh
    items only.

    A branch leaving the trained tree gets ``weight`` times its trained siblings' mean probability
    (the decoder has no opinion of a code it was never taught, but has one of the region); below
    that, the beam's probability is split evenly among its children."""
    only_fresh = all_fresh & (count > 0)
    trained = (count > 0) & ~all_fresh
    n_trained = trained.sum(-1, keepdim=True)
    sibling_mean = torch.log(
        torch.where(trained, logp.exp(), 0.0).sum(-1, keepdim=True) / n_trained.clamp(min=1)
    ) + math.log(weight)
    even_split = -torch.log((count > 0).sum(-1, keepdim=True).clamp(min=1).to(logp.dtype))
    rescored = torch.where(fresh_beam[..., None], even_split,
                           torch.where(only_fresh & (n_trained > 0), sibling_mean, logp))
    return rescored, only_fresh


def stable_top(total: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``keep`` values and indices of a stable descending sort of ``total [B, N]`` (ties:
    the lower index first), without sorting all N.

    ``topk`` breaks ties arbitrarily, so it only gives the keep-th largest value v and every value
    above it. The picks are those, in a stable order (sorted by index, then stably by value), then
    as many values equal to v as are missing, lowest index first: a second ``topk``, over a key that
    is larger the lower a tied value's index. Four passes over N (two ``topk``, a compare, a product):
    at a served head's catalogue of 100k items this selection cost as much as the scan itself.
    """
    n = total.shape[1]
    values, first = torch.topk(total, keep, dim=1)
    kth = values[:, -1:]
    above = values > kth  # every value above the keep-th is among the first ``keep``
    by_index = torch.arange(n, 0, -1, device=total.device, dtype=total.dtype)  # exact below 2**24
    _, tied = torch.topk((total == kth).to(total.dtype) * by_index, keep, dim=1)  # a product: cheaper than a select
    slot = torch.arange(keep, device=total.device)[None]
    n_above = above.sum(1, keepdim=True)
    placed = slot < n_above  # the slots the ``above`` items take, once listed by index
    by_position = first.gather(1, torch.sort(torch.where(above, first, torch.full_like(first, n)), dim=1).indices)
    listed = torch.where(placed, total.gather(1, by_position), float("-inf"))
    top, order = torch.sort(listed, dim=1, descending=True, stable=True)  # ``above`` ones stay first (they exceed v)
    from_tied = tied.gather(1, (slot - n_above).clamp(min=0))  # the remaining slots: the tied ones in order
    return torch.where(placed, top, kth), torch.where(placed, by_position.gather(1, order), from_tied)
