"""Read-only catalogue queries the admin pages need and the repositories do not offer:
text search, the category and semantic-ID trees with counts, recent users, and a 3-D
projection of item embeddings. Parameterised SQL only; writes never happen here (they go
through event capture)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genrec.stores.categories import CATEGORY_SEP
from genrec.stores.postgres import Db, transaction

_ITEM_COLUMNS = "item_id, title, description, category_path, attributes, semantic_ids, status, updated_at"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _category_sql(category: str | None) -> tuple[str, list[Any]]:
    if not category:
        return "TRUE", []
    return "(category_path = %s OR starts_with(category_path, %s))", [category, category + CATEGORY_SEP]


def _item_row(r: tuple) -> dict[str, Any]:
    return {"item_id": r[0], "title": r[1], "description": r[2], "category_path": r[3], "attributes": r[4],
            "semantic_ids": r[5], "status": r[6], "updated_at": r[7]}


def search_items(db: Db, *, q: str = "", category: str | None = None, status: str | None = "active",
                 after: str | None = None, limit: int = 25) -> tuple[list[dict[str, Any]], str | None]:
    """One page of items ordered by id: ``q`` matches the id exactly or title/description as text."""
    cat_sql, cat_params = _category_sql(category)
    pattern = f"%{_like_escape(q)}%"
    with transaction(db) as conn:
        rows = conn.execute(
            f"""
            SELECT {_ITEM_COLUMNS} FROM items
            WHERE {cat_sql} AND (%s::text IS NULL OR status = %s) AND (%s::text IS NULL OR item_id > %s)
              AND (%s = '' OR item_id = %s OR title ILIKE %s OR description ILIKE %s)
            ORDER BY item_id LIMIT %s
            """,
            [*cat_params, status, status, after, after, q, q, pattern, pattern, limit],
        ).fetchall()
    items = [_item_row(r) for r in rows]
    return items, (items[-1]["item_id"] if len(items) == limit else None)


def category_counts(db: Db) -> list[dict[str, Any]]:
    """Active item counts per full category path (the client folds them into a tree)."""
    with transaction(db) as conn:
        rows = conn.execute(
            "SELECT category_path, count(*) FROM items WHERE status = 'active'"
            " GROUP BY category_path ORDER BY category_path"
        ).fetchall()
    return [{"category_path": p, "count": int(n)} for p, n in rows]


def category_tree(counts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nested {name, path, count, children} from per-leaf counts (counts roll up to ancestors)."""
    root: dict[str, Any] = {"children": {}}
    for row in counts:
        node, path = root, []
        for part in [p for p in row["category_path"].split(CATEGORY_SEP) if p] or ["(none)"]:
            path.append(part)
            node = node["children"].setdefault(part, {"name": part, "path": CATEGORY_SEP.join(path), "count": 0,
                                                      "children": {}})
            node["count"] += row["count"]

    def freeze(n: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**c, "children": freeze(c)} for c in n["children"].values()]

    return freeze(root)


def semantic_level(db: Db, prefix: list[int], samples: int = 3) -> dict[str, Any]:
    """The codes one level below ``prefix`` with item counts and a few sample titles each."""
    level = len(prefix)
    with transaction(db) as conn:
        rows = conn.execute(
            """
            SELECT semantic_ids[%s + 1] AS code, count(*) AS n,
                   (array_agg(title ORDER BY item_id))[1:%s] AS titles,
                   count(*) FILTER (WHERE cardinality(semantic_ids) > %s + 1) AS deeper
            FROM items
            WHERE status = 'active' AND cardinality(semantic_ids) > %s
              AND semantic_ids[1:%s] = %s::integer[]
            GROUP BY code ORDER BY n DESC, code
            """,
            [level, samples, level, level, level, prefix],
        ).fetchall()
        depth = conn.execute("SELECT coalesce(max(cardinality(semantic_ids)), 0) FROM items").fetchone()[0]
        with_ids = conn.execute(
            "SELECT count(*) FROM items WHERE status = 'active' AND cardinality(semantic_ids) > %s"
            " AND semantic_ids[1:%s] = %s::integer[]", [level, level, prefix],
        ).fetchone()[0]
    return {
        "prefix": prefix, "level": level, "depth": int(depth), "items": int(with_ids),
        "codes": [{"code": int(c), "count": int(n), "sample_titles": list(t), "has_children": int(d) > 0}
                  for c, n, t, d in rows],
    }


def items_with_prefix(db: Db, prefix: list[int], limit: int = 20) -> list[dict[str, Any]]:
    with transaction(db) as conn:
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE status = 'active'"
            " AND semantic_ids[1:%s] = %s::integer[] ORDER BY semantic_ids, item_id LIMIT %s",
            [len(prefix), prefix, limit],
        ).fetchall()
    return [_item_row(r) for r in rows]


def recent_users(db: Db, limit: int = 50, days: int = 30) -> list[dict[str, Any]]:
    """Users with the latest activity first (for the inspector's picker).

    Activity comes from the event log (bounded in time, so only recent month partitions are
    read) merged with profile rows: many users have events but no profile yet.
    """
    with transaction(db) as conn:
        rows = conn.execute(
            """
            SELECT user_id, max(ts) AS last_active_at FROM (
                SELECT user_id, ts FROM user_events WHERE ts > now() - make_interval(days => %s)
                UNION ALL
                SELECT user_id, last_active_at FROM users
            ) a GROUP BY user_id ORDER BY max(ts) DESC NULLS LAST, user_id LIMIT %s
            """,
            [days, limit],
        ).fetchall()
    return [{"user_id": u, "last_active_at": t} for u, t in rows]


def item_counts(db: Db) -> dict[str, int]:
    """Active items, and how many of them have an embedding and Semantic IDs (the overview's counts)."""
    with transaction(db) as conn:
        items, with_emb, with_sid = conn.execute(
            "SELECT count(*), count(embedding), count(semantic_ids) FROM items WHERE status = 'active'"
        ).fetchone()
    return {"items": items, "items_with_embedding": with_emb, "items_with_semantic_ids": with_sid}


def active_users(db: Db, days: int = 30) -> int:
    with transaction(db) as conn:
        return int(conn.execute(
            "SELECT count(DISTINCT user_id) FROM user_events WHERE ts > now() - make_interval(days => %s)", [days]
        ).fetchone()[0])


def titles(db: Db, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """item_id -> {title, category_path} for display next to ids."""
    if not item_ids:
        return {}
    with transaction(db) as conn:
        rows = conn.execute(
            "SELECT item_id, title, category_path FROM items WHERE item_id = ANY(%s::text[])", [list(item_ids)]
        ).fetchall()
    return {i: {"title": t, "category_path": c} for i, t, c in rows}


@dataclass(frozen=True)
class Projection:
    points: list[dict[str, Any]]
    explained_variance: list[float]
    total: int


def project_embeddings(db: Db, *, limit: int = 2000, category: str | None = None) -> Projection:
    """PCA of item embeddings to 3-D (a sample of ``limit`` items, chosen stably by id hash)."""
    cat_sql, cat_params = _category_sql(category)
    with transaction(db) as conn:
        total = conn.execute(
            f"SELECT count(*) FROM items WHERE embedding IS NOT NULL AND status = 'active' AND {cat_sql}",
            cat_params,
        ).fetchone()[0]
        rows = conn.execute(
            f"""
            SELECT item_id, title, category_path, semantic_ids, embedding FROM items
            WHERE embedding IS NOT NULL AND status = 'active' AND {cat_sql}
            ORDER BY md5(item_id) LIMIT %s
            """,
            [*cat_params, limit],
        ).fetchall()
    if not rows:
        return Projection([], [], int(total))
    x = np.stack([np.asarray(r[4].to_numpy() if hasattr(r[4], "to_numpy") else r[4], dtype=np.float32)
                  for r in rows])
    coords, ratio = pca3(x)
    points = [
        {"item_id": r[0], "title": r[1], "category": (r[2] or "").split(CATEGORY_SEP)[0],
         "category_path": r[2], "first_code": (r[3][0] if r[3] else None),
         "x": float(c[0]), "y": float(c[1]), "z": float(c[2])}
        for r, c in zip(rows, coords, strict=True)
    ]
    return Projection(points, ratio, int(total))


def pca3(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Rows projected on the top-3 principal axes, scaled into [-1, 1]; explained variance ratios.

    Fewer than three usable axes (tiny samples) are padded with zeros so the client always
    gets x, y and z.
    """
    centred = x.astype(np.float64) - x.mean(axis=0, keepdims=True)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(3, vt.shape[0])
    coords = centred @ vt[:k].T
    if k < 3:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 3 - k))])
    scale = np.abs(coords).max() or 1.0
    var = sing**2
    ratio = (var[:k] / var.sum()).tolist() if var.sum() > 0 else [0.0] * k
    return coords / scale, [float(r) for r in ratio] + [0.0] * (3 - k)
