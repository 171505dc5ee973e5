"""Training: configs, the epoch loop, the generative bundle and baselines.

Main entry points::

    bundle = train_generative(dataset, load_config("cfg.toml"), out_dir="artifacts/beauty")
    bundle = TrainedBundle.load("artifacts/beauty")
    bundle.recommend([["item-a", "item-b"]], k=10)
    bundle.add_items(["new-item"], items=new_items_frame)
"""

from genrec.training.bundle import BUNDLE_FORMAT_VERSION, TrainedBundle
from genrec.training.config import OptimConfig, TrainConfig, load_config
from genrec.training.generative import evaluate_bundle, train_generative
from genrec.training.loop import FitResult, fit
from genrec.training.sasrec import train_sasrec

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "FitResult",
    "OptimConfig",
    "TrainConfig",
    "TrainedBundle",
    "evaluate_bundle",
    "fit",
    "load_config",
    "train_generative",
    "train_sasrec",
]
