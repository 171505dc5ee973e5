"""Cold start through the code feed: an appended item is generatable without restart,
and the client maps its index back to its id."""

from __future__ import annotations

import time

import numpy as np
import pytest

from genrec.serving.catalog import ItemCatalog
from genrec.serving.client import ModelClient
from genrec.serving.feed import CodesTaken, append_items, assign_and_append, feed_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_appended_item_becomes_generatable_without_restart(model_server) -> None:
    from genrec.training import TrainedBundle

    s, art, r = model_server["settings"], model_server["artifact"], model_server["redis"]
    client = ModelClient(s, timeout_s=30.0)
    feed = feed_for(art, r)
    # Exclude every item known so far: nothing is left to recommend...
    seq = np.array([[0, 1, 2]])
    everything = np.arange(art.n_items + feed.length())[None]
    before = client.infer(seq, exclude=everything)
    assert (before.items == -1).all()

    # ...until the cold-start path gives a new item codes (tokenizer.assign against the
    # trained + fed table, as the cold-start function does) and appends it to the feed.
    bundle = TrainedBundle.load(art.root)
    emb = np.random.default_rng(5).normal(size=(1, 16)).astype(np.float32)
    n_fed = feed.length()
    [index] = assign_and_append(bundle.tokenizer, ["sku-new"], emb, artifact=art, client=r)
    assert index == art.n_items + n_fed

    deadline = time.monotonic() + 30
    after = client.infer(seq, exclude=everything)
    while after.items[0, 0] != index and time.monotonic() < deadline:
        time.sleep(0.2)  # replicas poll the feed every 0.5 s
        after = client.infer(seq, exclude=everything)
    assert after.items[0, 0] == index and np.isfinite(after.scores[0, 0])
    assert (after.items[0, 1:] == -1).all()

    # The recommend function maps it back to the external id.
    catalog = ItemCatalog(art)
    catalog.refresh(r)
    assert catalog.item_id(index) == "sku-new"
    assert catalog.indices(["sku-new", "sku-0", "nope"]).tolist() == [index, 0, -1]
    others = [i for i in catalog.item_ids(range(len(catalog))) if i != "sku-new"]
    top = client.recommend([["sku-0"]], exclude=[others], k=5)
    assert top[0][0][0] == "sku-new"


def test_appends_are_idempotent_and_codes_stay_unique(model_server) -> None:
    art, r = model_server["artifact"], model_server["redis"]
    feed = feed_for(art, r)
    free = _free_codes(feed, 2)
    first = append_items(["sku-a", "sku-b"], free, artifact=art, client=r)
    again = append_items(["sku-a"], free[:1], artifact=art, client=r)  # redelivered event
    assert again[0] == first[0] and first[1] == first[0] + 1
    with pytest.raises(CodesTaken):
        append_items(["sku-c"], free[1:], artifact=art, client=r)  # codes of a fed item
    with pytest.raises(CodesTaken):
        append_items(["sku-d"], art.item_codes[:1], artifact=art, client=r)  # codes of a trained item
    assert append_items(["sku-0"], free[:1], artifact=art, client=r).tolist() == [0]  # trained id: no-op


def _free_codes(feed, n: int) -> np.ndarray:
    taken = {tuple(c) for c in feed.all_codes().tolist()}
    sizes = feed.level_sizes
    out = []
    for flat in range(int(np.prod(sizes))):
        codes = tuple(int(v) for v in np.unravel_index(flat, sizes))
        if codes not in taken:
            out.append(codes)
            if len(out) == n:
                break
    return np.asarray(out, dtype=np.int64)
