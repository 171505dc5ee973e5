"""Read and write the ``interactions.csv`` + ``items.csv`` folder layout (local or S3)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from genrec.data.schema import ITEM_ID, USER_ID, Catalog, InteractionDataset

INTERACTIONS_FILE = "interactions.csv"
ITEMS_FILE = "items.csv"


def load_dataset(path: str | Path, name: str | None = None) -> InteractionDataset:
    """Load a dataset folder holding ``interactions.csv`` and (optionally) ``items.csv``.

    ``path`` may be an ``s3://bucket/prefix`` URI; the two files are fetched to a temporary
    folder with the endpoint from ``genrec.config.get_settings().s3``.
    """
    spath = str(path)
    if spath.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="genrec-ds-") as tmp:
            _fetch_s3_folder(spath, Path(tmp))
            return load_dataset(tmp, name=name or spath.rstrip("/").rsplit("/", 1)[-1])
    folder = Path(path)
    inter_path = folder / INTERACTIONS_FILE
    if not inter_path.is_file():
        raise FileNotFoundError(f"no {INTERACTIONS_FILE} in {folder}")
    # Ids stay strings: numeric-looking ASINs or MovieLens ids must not become floats.
    interactions = pd.read_csv(inter_path, dtype={USER_ID: str, ITEM_ID: str}, keep_default_na=False)
    items_path = folder / ITEMS_FILE
    if items_path.is_file():
        items = pd.read_csv(items_path, dtype={ITEM_ID: str}, keep_default_na=False, na_values=[])
    else:
        items = pd.DataFrame({ITEM_ID: pd.unique(interactions[ITEM_ID])})
    return InteractionDataset(
        catalog=Catalog(items),
        interactions=interactions,
        name=name or folder.resolve().name,
    )


def save_dataset(dataset: InteractionDataset, folder: str | Path) -> Path:
    """Write the dataset in the same CSV layout that :func:`load_dataset` reads."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    dataset.interactions.to_csv(out / INTERACTIONS_FILE, index=False)
    dataset.items.to_csv(out / ITEMS_FILE, index=False)
    return out


def _fetch_s3_folder(uri: str, dest: Path) -> None:
    from genrec.stores.objects import s3_client, split_uri

    bucket, prefix = split_uri(uri)
    client = s3_client()
    for fname in (INTERACTIONS_FILE, ITEMS_FILE):
        key = f"{prefix.rstrip('/')}/{fname}" if prefix else fname
        try:
            client.download_file(bucket, key, str(dest / fname))
        except Exception as exc:  # items.csv is optional; interactions.csv is not
            if fname == INTERACTIONS_FILE:
                raise FileNotFoundError(f"cannot fetch s3://{bucket}/{key}: {exc}") from exc
