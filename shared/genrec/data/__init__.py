"""Datasets: the typed in-memory layout, CSV loaders, a synthetic generator and splits."""

from genrec.data.loaders import load_dataset, save_dataset
from genrec.data.schema import Catalog, InteractionDataset
from genrec.data.splits import PAD_ITEM, ItemIndex, LeaveOneOutSplit, leave_one_out, pad_histories
from genrec.data.synth import SynthConfig, generate_synthetic

__all__ = [
    "PAD_ITEM",
    "Catalog",
    "InteractionDataset",
    "ItemIndex",
    "LeaveOneOutSplit",
    "SynthConfig",
    "generate_synthetic",
    "leave_one_out",
    "load_dataset",
    "pad_histories",
    "save_dataset",
]
