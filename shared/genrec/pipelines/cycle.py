"""Train-evaluate-publish: one candidate against the production model on the same split.

1. train a candidate (tokenizer + model) on the feature output's leave-one-out split;
2. load the production artifact named by ``model_versions`` and evaluate both on that split;
3. only when the gate passes (or ``force``): save, upload, export, register a ``candidate``.
Promotion is a separate, explicit step (``genrec pipeline promote``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genrec.config import Settings, get_settings
from genrec.pipelines.backfill import bundle_code_changes
from genrec.pipelines.featureset import FeatureSet
from genrec.pipelines.gate import GateConfig, GateDecision, decide, evaluate_on_split
from genrec.pipelines.publish import Published, new_version, publish_candidate
from genrec.stores.model_registry import ModelRegistry, ModelVersion
from genrec.training.bundle import TrainedBundle
from genrec.training.config import TrainConfig
from genrec.training.generative import train_generative

Step = Callable[[str], None]


@dataclass
class CycleOptions:
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    export: bool = True
    export_format: str = "torchscript"
    force: bool = False  # publish even when the gate says no (first deploys, manual overrides)
    version: str | None = None


@dataclass
class CycleResult:
    version: str
    decision: GateDecision
    candidate: dict[str, float]
    production: dict[str, float] | None
    production_version: str | None
    published: Published | None = None
    code_changes: dict[str, int] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self, fs: FeatureSet) -> dict[str, Any]:
        """What the registry stores with the candidate."""
        return {
            "test": self.candidate,
            "baseline": {"version": self.production_version, "test": self.production},
            "gate": self.decision.as_dict(),
            "code_changes": self.code_changes,
            "features": {"output": fs.manifest.get("output"), "hashes": {k: v for k, v in
                         fs.manifest.get("hashes", {}).items() if k != "files"},
                         "counts": fs.manifest.get("counts"), "time_range": fs.manifest.get("time_range")},
        }


def load_production(registry: ModelRegistry, s: Settings | None = None) -> tuple[ModelVersion | None,
                                                                                 TrainedBundle | None]:
    """The production row and its artifact (downloaded once per URI), or (None, None)."""
    from genrec.serving.artifact import fetch

    current = registry.production()
    if current is None:
        return None, None
    return current, TrainedBundle.load(fetch(current.artifact_uri, s or get_settings()))


def train_evaluate_publish(fs: FeatureSet, registry: ModelRegistry, s: Settings | None = None,
                           opts: CycleOptions | None = None, *, work_dir: Path | None = None,
                           step: Step = lambda _name: None) -> CycleResult:
    s = s or get_settings()
    opts = opts or CycleOptions()
    timings: dict[str, float] = {}
    version = opts.version or new_version()

    step("train candidate")
    t = time.perf_counter()
    split = fs.split(opts.train.max_history)
    candidate = train_generative(fs.dataset(), opts.train, split=split, progress=False, evaluate_test=False)
    timings["train"] = round(time.perf_counter() - t, 1)

    step("evaluate candidate and production on the same split")
    t = time.perf_counter()
    beam = opts.gate.beam_width or candidate.config.test_beam_width
    cand_metrics = evaluate_on_split(candidate, split, opts.gate, beam_width=beam)
    prod_row, prod_bundle = load_production(registry, s)
    prod_metrics = evaluate_on_split(prod_bundle, split, opts.gate, beam_width=beam) if prod_bundle else None
    timings["evaluate"] = round(time.perf_counter() - t, 1)
    decision = decide(cand_metrics, prod_metrics, opts.gate)
    result = CycleResult(
        version=version, decision=decision, candidate=cand_metrics, production=prod_metrics,
        production_version=prod_row.version if prod_row else None,
        code_changes=bundle_code_changes(prod_bundle, candidate).as_dict() if prod_bundle else None,
        seconds=timings,
    )
    if not (decision.publish or opts.force):
        return result

    step(f"publish {version}")
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genrec-candidate-", dir=work_dir) as tmp:
        local = Path(tmp) / version
        candidate.report["test"] = cand_metrics
        candidate.save(local)
        result.published = publish_candidate(local, version, result.metrics(fs), registry, s,
                                             export=opts.export, export_format=opts.export_format)
    timings["publish"] = round(time.perf_counter() - t, 1)
    return result
