"""Fetch public datasets and convert them to the ``interactions.csv`` + ``items.csv`` layout.

Network access is only attempted here, never at import time or from tests; any network
failure is reported as :class:`DownloadError` with the URL and a hint.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from genrec.data.loaders import INTERACTIONS_FILE, ITEMS_FILE

URLS: dict[str, str] = {
    "movielens-100k": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "movielens-1m": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    # {category} is e.g. "Beauty", "Sports_and_Outdoors", "Toys_and_Games" (5-core reviews + metadata).
    "amazon-2014-reviews": "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_{category}_5.json.gz",
    "amazon-2014-meta": "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_{category}.json.gz",
}
DATASETS = ("movielens-100k", "movielens-1m", "amazon-2014")
_ML_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]


class DownloadError(RuntimeError):
    """A dataset could not be fetched (usually: no network)."""


def _fetch(url: str, timeout: float = 30.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(
            f"could not download {url}: {exc}. Are you offline? Copy the dataset folder "
            "(interactions.csv + items.csv) by hand, or run `genrec data synth` instead."
        ) from exc


def download(name: str, dest: str | Path, category: str | None = None) -> Path:
    """Download ``name`` (one of :data:`DATASETS`) into ``dest`` in the CSV layout."""
    out = Path(dest)
    if name == "movielens-100k":
        _movielens_100k(_fetch(URLS[name]), out)
    elif name == "movielens-1m":
        _movielens_1m(_fetch(URLS[name]), out)
    elif name == "amazon-2014":
        if not category:
            raise ValueError("amazon-2014 needs a CATEGORY, e.g. Beauty")
        reviews = _fetch(URLS["amazon-2014-reviews"].format(category=category))
        meta = _fetch(URLS["amazon-2014-meta"].format(category=category))
        _amazon_2014(reviews, meta, out)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return out


def _write(out: Path, interactions: pd.DataFrame, items: pd.DataFrame) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Write to a temp name then move, so an interrupted run leaves no half dataset.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        interactions.to_csv(Path(tmp) / INTERACTIONS_FILE, index=False)
        items.to_csv(Path(tmp) / ITEMS_FILE, index=False)
        for f in (INTERACTIONS_FILE, ITEMS_FILE):
            shutil.move(str(Path(tmp) / f), out / f)


def _movielens_100k(blob: bytes, out: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        data = pd.read_csv(zf.open("ml-100k/u.data"), sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
        raw_items = pd.read_csv(zf.open("ml-100k/u.item"), sep="|", header=None, encoding="latin-1")
    genres = raw_items.iloc[:, 5:24].to_numpy()
    items = pd.DataFrame(
        {
            "item_id": raw_items[0],
            "title": raw_items[1],
            "genres": ["|".join(g for g, f in zip(_ML_GENRES, row, strict=True) if f) for row in genres],
            "release_date": raw_items[2],
        }
    )
    inter = data.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
    _write(out, inter[["user_id", "item_id", "timestamp", "rating"]], items)


def _movielens_1m(blob: bytes, out: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        text = zf.read("ml-1m/ratings.dat").decode("latin-1")
        movies = zf.read("ml-1m/movies.dat").decode("latin-1")
    rows = [line.split("::") for line in text.splitlines() if line]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).astype(
        {"rating": int, "timestamp": int}
    )
    mrows = [line.split("::") for line in movies.splitlines() if line]
    items = pd.DataFrame(mrows, columns=["item_id", "title", "genres"])
    _write(out, inter[["user_id", "item_id", "timestamp", "rating"]], items)


def _json_lines(blob: bytes) -> Iterator[dict]:
    for line in gzip.decompress(blob).decode("utf-8").splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:  # the 2014 metadata is Python-literal, not JSON
            yield ast.literal_eval(line)


def _amazon_2014(reviews: bytes, meta: bytes, out: Path) -> None:
    inter = pd.DataFrame(
        [(r["reviewerID"], r["asin"], int(r["unixReviewTime"])) for r in _json_lines(reviews)],
        columns=["user_id", "item_id", "timestamp"],
    )
    keep = set(inter["item_id"])
    rows = []
    for m in _json_lines(meta):
        if m.get("asin") not in keep:
            continue
        cats = m.get("categories") or [[]]
        rows.append(
            {
                "item_id": m["asin"],
                "title": m.get("title", ""),
                "brand": m.get("brand", ""),
                "categories": "|".join(cats[0]),
                "price": m.get("price", ""),
                "description": m.get("description", ""),
            }
        )
    _write(out, inter, pd.DataFrame(rows))
