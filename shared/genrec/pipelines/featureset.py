"""Read a feature output back into the in-memory types the trainer uses.

``FeatureSet.split()`` is a ``LeaveOneOutSplit`` over the job's dense item index, and
``FeatureSet.dataset()`` an ``InteractionDataset`` whose catalogue rows are in that same
index order (the trainer embeds ``dataset.items`` row i as item i).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.config import Settings, get_settings
from genrec.data.schema import Catalog, InteractionDataset
from genrec.data.splits import ItemIndex, LeaveOneOutSplit
from genrec.pipelines.manifest import read_manifest
from genrec.pipelines.schema import EVENTS_DIR, ITEM_TEXT_COLUMNS, ITEMS_DIR, SEQUENCES_DIR, SPLITS_DIR
from genrec.stores import objects


@dataclass
class FeatureSet:
    root: Path
    manifest: dict[str, Any] = field(repr=False)
    _tmp: Path | None = field(default=None, repr=False)

    @classmethod
    def open(cls, uri: str | Path, s: Settings | None = None) -> FeatureSet:
        """A local folder as is; an s3:// prefix is downloaded to a temporary folder (see ``close``)."""
        if str(uri).startswith("s3://"):
            tmp = Path(tempfile.mkdtemp(prefix="genrec-features-"))
            objects.download_dir(str(uri), tmp, s or get_settings())
            return cls(tmp, read_manifest(tmp), tmp)
        root = Path(uri)
        return cls(root, read_manifest(root))

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FeatureSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def max_history(self) -> int:
        return int(self.manifest["params"]["max_history"])

    # pyarrow skips Spark's _SUCCESS and .crc files (ignored prefixes "_" and ".").
    def _read(self, sub: str, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.root / sub, columns=columns)

    @cached_property
    def items(self) -> pd.DataFrame:
        df = self._read(ITEMS_DIR).sort_values("item_idx", kind="mergesort").reset_index(drop=True)
        if not np.array_equal(df["item_idx"].to_numpy(), np.arange(len(df))):
            raise ValueError(f"{self.root}: item_idx is not dense 0..N-1")
        return df

    @cached_property
    def sequences(self) -> pd.DataFrame:
        return self._read(SEQUENCES_DIR).sort_values("user_id", kind="mergesort").reset_index(drop=True)

    def splits_table(self) -> pd.DataFrame:
        return self._read(SPLITS_DIR).sort_values("user_id", kind="mergesort").reset_index(drop=True)

    def item_index(self) -> ItemIndex:
        return ItemIndex(self.items["item_id"].to_numpy(dtype=object))

    def split(self, max_history: int | None = None) -> LeaveOneOutSplit:
        seq = self.sequences[self.sequences["in_split"]]
        return LeaveOneOutSplit(
            item_index=self.item_index(),
            user_ids=[str(u) for u in seq["user_id"]],
            sequences=[np.asarray(s, dtype=np.int64) for s in seq["item_idx"]],
            max_history=max_history or self.max_history,
        )

    def catalog(self) -> Catalog:
        cols = [c for c in ITEM_TEXT_COLUMNS if c in self.items.columns and self.items[c].notna().any()]
        frame = self.items[["item_id", *cols]].copy()
        frame[cols] = frame[cols].fillna("")
        return Catalog(frame)

    def dataset(self, name: str = "features") -> InteractionDataset:
        ev = self._read(EVENTS_DIR, ["user_id", "position", "item_id", "timestamp", "event_type", "value"])
        ev = ev.sort_values(["user_id", "position"], kind="mergesort").drop(columns="position")
        return InteractionDataset(catalog=self.catalog(), interactions=ev.reset_index(drop=True), name=name)
