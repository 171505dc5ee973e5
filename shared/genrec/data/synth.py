"""A deterministic synthetic catalogue and event stream with learnable structure.

Realism knobs: a three-level category tree, brands tied to top categories, log-normal
prices, titles/descriptions composed from per-category vocabularies, Zipf popularity,
per-user category affinity, sessions spread over days, and typed events (view, click,
add_to_cart, purchase) with values.

Learnable signal: each item has a short list of "complements" (mostly in a sibling leaf
category). Inside a session a user follows a complement of the current item with
probability ``p_follow``, so next-item prediction is far better than popularity.

``planted_rule=True`` replaces all of that with a deterministic successor permutation:
each user walks ``item -> succ[item]`` from a random start, so the next item is a pure
function of the last one (tests use it to check that a model can reach Recall@1 ~ 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from genrec.data.schema import Catalog, InteractionDataset

_TREE: dict[str, dict[str, list[str]]] = {
    "Beauty": {
        "Skin Care": ["Moisturizers", "Cleansers", "Serums", "Sunscreen"],
        "Makeup": ["Lipstick", "Foundation", "Mascara", "Eyeshadow"],
        "Hair Care": ["Shampoo", "Conditioner", "Styling Gel"],
    },
    "Electronics": {
        "Audio": ["Headphones", "Speakers", "Earbuds"],
        "Computers": ["Laptops", "Keyboards", "Mice", "Monitors"],
        "Phones": ["Smartphones", "Phone Cases", "Chargers"],
    },
    "Home": {
        "Kitchen": ["Cookware", "Knives", "Blenders", "Coffee Makers"],
        "Bedding": ["Pillows", "Sheets", "Duvets"],
        "Decor": ["Candles", "Vases", "Picture Frames"],
    },
    "Sports": {
        "Fitness": ["Yoga Mats", "Dumbbells", "Resistance Bands"],
        "Outdoor": ["Tents", "Backpacks", "Water Bottles"],
        "Cycling": ["Helmets", "Bike Lights", "Bike Locks"],
    },
    "Books": {
        "Fiction": ["Mystery", "Fantasy", "Romance", "Thriller"],
        "Non-Fiction": ["Biography", "History", "Cooking"],
    },
}
_ADJECTIVES = [
    "Classic", "Premium", "Ultra", "Organic", "Compact", "Deluxe", "Lightweight", "Pro",
    "Essential", "Advanced", "Gentle", "Vintage", "Smart", "Eco", "Travel", "Everyday",
]
_QUALITIES = [
    "long-lasting", "durable", "hypoallergenic", "water-resistant", "fast", "soft",
    "ergonomic", "recyclable", "award-winning", "best-selling", "dermatologist-tested",
]
_BRAND_SYLLABLES = ["lu", "ma", "ro", "ve", "ka", "zen", "tor", "qui", "sol", "nex", "ari", "bel"]
_EVENTS = np.array(["view", "click", "add_to_cart", "purchase"], dtype=object)
_EVENT_P = np.array([0.55, 0.25, 0.12, 0.08])


@dataclass
class SynthConfig:
    n_items: int = 2000
    n_users: int = 1000
    seed: int = 0
    mean_sessions: float = 2.0
    mean_session_length: float = 5.0
    min_sequence_length: int = 5
    zipf_a: float = 1.1
    p_follow: float = 0.7
    n_complements: int = 3
    brands_per_top: int = 12
    start_time: int = 1_600_000_000
    planted_rule: bool = False


def _category_leaves() -> list[tuple[str, str, str]]:
    return [(top, mid, leaf) for top, mids in _TREE.items() for mid, leaves in mids.items() for leaf in leaves]


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        k = int(rng.integers(2, 4))
        name = "".join(rng.choice(_BRAND_SYLLABLES, size=k)).capitalize()
        if name not in names:
            names.append(name)
    return names


def _make_items(cfg: SynthConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    leaves = _category_leaves()
    tops = list(_TREE)
    brands = {t: _brand_names(rng, cfg.brands_per_top) for t in tops}
    leaf_of = rng.integers(0, len(leaves), size=cfg.n_items)
    leaf_price = np.exp(rng.normal(3.0, 0.8, size=len(leaves)))
    rows = []
    for i in range(cfg.n_items):
        top, mid, leaf = leaves[leaf_of[i]]
        brand = str(rng.choice(brands[top]))
        adj = str(rng.choice(_ADJECTIVES))
        quals = rng.choice(_QUALITIES, size=2, replace=False)
        noun = leaf[:-1] if leaf.endswith("s") and not leaf.endswith("ss") else leaf
        price = round(float(leaf_price[leaf_of[i]] * np.exp(rng.normal(0, 0.3))), 2)
        rows.append(
            {
                "item_id": f"I{i:06d}",
                "title": f"{brand} {adj} {noun} {int(rng.integers(1, 100))}",
                "brand": brand,
                "categories": f"{top}|{mid}|{leaf}",
                "price": price,
                "description": (
                    f"A {quals[0]}, {quals[1]} {noun.lower()} from {brand} for {mid.lower()} lovers. "
                    f"Part of our {top.lower()} range."
                ),
            }
        )
    return pd.DataFrame(rows), leaf_of


def _complements(cfg: SynthConfig, rng: np.random.Generator, leaf_of: np.ndarray, pop: np.ndarray) -> np.ndarray:
    """For each item, ``n_complements`` successors drawn mostly from a sibling leaf."""
    leaves = _category_leaves()
    by_leaf: dict[int, np.ndarray] = {}
    for li in range(len(leaves)):
        by_leaf[li] = np.flatnonzero(leaf_of == li)
    siblings: dict[int, list[int]] = {}
    for li, (top, mid, _) in enumerate(leaves):
        sib = [lj for lj, (t2, m2, _) in enumerate(leaves) if t2 == top and lj != li and len(by_leaf[lj])]
        near = [lj for lj in sib if leaves[lj][1] == mid]
        siblings[li] = near or sib or [li]
    comp = np.empty((cfg.n_items, cfg.n_complements), dtype=np.int64)
    all_items = np.arange(cfg.n_items)
    for i in range(cfg.n_items):
        target_leaf = int(rng.choice(siblings[int(leaf_of[i])]))
        cand = by_leaf[target_leaf]
        if len(cand) == 0:
            cand = all_items
        p = pop[cand] / pop[cand].sum()
        comp[i] = rng.choice(cand, size=cfg.n_complements, replace=len(cand) < cfg.n_complements, p=p)
    return comp


def _planted_sequences(cfg: SynthConfig, rng: np.random.Generator) -> list[np.ndarray]:
    succ = rng.permutation(cfg.n_items)
    seqs = []
    for _ in range(cfg.n_users):
        length = cfg.min_sequence_length + int(rng.poisson(cfg.mean_session_length))
        cur = int(rng.integers(cfg.n_items))
        seq = [cur]
        for _ in range(length - 1):
            cur = int(succ[cur])
            seq.append(cur)
        seqs.append(np.asarray(seq))
    return seqs


def planted_successor(cfg: SynthConfig) -> np.ndarray:
    """The successor permutation used when ``planted_rule=True`` (for assertions)."""
    rng = np.random.default_rng(cfg.seed)
    _make_items(cfg, rng)
    return rng.permutation(cfg.n_items)


def _organic_sequences(
    cfg: SynthConfig, rng: np.random.Generator, leaf_of: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Session-structured sequences; also returns session ids per event."""
    ranks = rng.permutation(cfg.n_items) + 1
    pop = 1.0 / ranks.astype(float) ** cfg.zipf_a
    comp = _complements(cfg, rng, leaf_of, pop)
    tops = [t for t, _, _ in _category_leaves()]
    top_names = list(_TREE)
    top_of_item = np.asarray([top_names.index(tops[li]) for li in leaf_of])
    items_by_top = [np.flatnonzero(top_of_item == t) for t in range(len(top_names))]
    items_by_top = [c if len(c) else np.arange(cfg.n_items) for c in items_by_top]
    # Popularity CDFs per top category: sampling by searchsorted is O(log n) per draw.
    cdfs = [np.cumsum(pop[c]) / pop[c].sum() for c in items_by_top]

    def draw(top: int) -> int:
        c = items_by_top[top]
        return int(c[min(int(np.searchsorted(cdfs[top], rng.random())), len(c) - 1)])

    seqs, sessions = [], []
    for _ in range(cfg.n_users):
        affinity = rng.dirichlet(np.full(len(top_names), 0.3))
        n_sess = 1 + int(rng.poisson(cfg.mean_sessions - 1)) if cfg.mean_sessions > 1 else 1
        seq: list[int] = []
        sess: list[int] = []
        s = 0
        while s < n_sess or len(seq) < cfg.min_sequence_length:
            top = int(rng.choice(len(top_names), p=affinity))
            cur = draw(top)
            length = 1 + int(rng.poisson(cfg.mean_session_length - 1))
            for _ in range(length):
                seq.append(cur)
                sess.append(s)
                follow = rng.random() < cfg.p_follow
                cur = int(comp[cur, rng.integers(cfg.n_complements)]) if follow else draw(top)
            s += 1
        seqs.append(np.asarray(seq))
        sessions.append(np.asarray(sess))
    return seqs, sessions


def generate_synthetic(cfg: SynthConfig | None = None) -> InteractionDataset:
    """Build the catalogue and event log; identical output for identical ``cfg``."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng(cfg.seed)
    items, leaf_of = _make_items(cfg, rng)
    if cfg.planted_rule:
        seqs = _planted_sequences(cfg, rng)
        sessions = [np.zeros(len(s), dtype=np.int64) for s in seqs]
    else:
        seqs, sessions = _organic_sequences(cfg, rng, leaf_of)
    frames = []
    prices = items["price"].to_numpy()
    for u, (seq, sess) in enumerate(zip(seqs, sessions, strict=True)):
        n = len(seq)
        # Sessions a few days apart, events a few minutes apart inside a session.
        day = np.cumsum(np.diff(np.concatenate([[0], sess])) * rng.integers(1, 6, size=n) * 86_400)
        ts = cfg.start_time + int(rng.integers(0, 30 * 86_400)) + day + np.arange(n) * 180
        ev = rng.choice(_EVENTS, size=n, p=_EVENT_P)
        val = np.where(ev == "purchase", prices[seq], 1.0)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": f"U{u:06d}",
                    "item_id": items["item_id"].to_numpy()[seq],
                    "timestamp": ts.astype(np.int64),
                    "event_type": ev,
                    "value": np.round(val, 2),
                }
            )
        )
    interactions = pd.concat(frames, ignore_index=True)
    name = "synthetic-planted" if cfg.planted_rule else "synthetic"
    return InteractionDataset(catalog=Catalog(items), interactions=interactions, name=name)
