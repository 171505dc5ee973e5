"""Run the feature job end to end: stage inputs, build with Spark, write outputs + manifest.

``main`` is what ``pipelines/spark/features_job.py`` (the spark-submit script) calls; the
CLI (``genrec pipeline features``) and the nightly flow call :func:`run_features`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genrec.config import Settings, get_settings
from genrec.pipelines.features import FeatureParams, build_features, params_dict, write_features
from genrec.pipelines.manifest import build_manifest, file_hashes, write_manifest
from genrec.pipelines.spark import get_spark
from genrec.pipelines.staging import staged_input, staged_output

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run_features(events: str | Path, items: str | Path | None, out: str | Path,
                 params: FeatureParams | None = None, *, spark: SparkSession | None = None,
                 s: Settings | None = None, source: dict[str, Any] | None = None,
                 direct_s3: bool = False) -> dict[str, Any]:
    """Build features from parquet events (+ catalogue) into ``out`` (dir or s3://); returns the manifest."""
    s = s or get_settings()
    params = params or FeatureParams(max_history=s.model.max_history)
    spark = spark or get_spark("genrec-features")
    t0 = time.perf_counter()
    items_ctx = staged_input(items, s, direct_s3) if items else nullcontext(None)
    with staged_input(events, s, direct_s3) as ev_path, items_ctx as it_path, \
            staged_output(out, s, direct_s3) as out_path:
        raw_items = spark.read.parquet(it_path) if it_path else None
        frames = build_features(spark.read.parquet(ev_path), raw_items, params)
        write_features(frames, str(out_path))
        files = file_hashes(out_path) if isinstance(out_path, Path) else {}
        manifest = build_manifest(
            source=source or {"kind": "parquet", "events": str(events), "items": str(items) if items else None},
            params=params_dict(params), counts=frames.counts, time_range=frames.time_range,
            hashes=frames.hashes, files=files, output=str(out), seconds=time.perf_counter() - t0,
        )
        write_manifest(out_path, manifest, s)
    return manifest


def run_features_from_postgres(out: str | Path, params: FeatureParams | None = None, *,
                               spark: SparkSession | None = None, s: Settings | None = None,
                               since: datetime | None = None, until: datetime | None = None,
                               sources: list[str] | None = None, direct_s3: bool = False) -> dict[str, Any]:
    """Export ``user_events`` + ``items`` with COPY to a local staging folder, then build."""
    from genrec.pipelines.sources import export_postgres

    s = s or get_settings()
    with tempfile.TemporaryDirectory(prefix="genrec-pg-export-") as tmp:
        exp = export_postgres(Path(tmp), s, since=since, until=until, sources=sources)
        source = {**exp.source, "exported_events": exp.events, "exported_items": exp.items}
        return run_features(exp.events_dir, exp.items_dir, out, params, spark=spark, s=s, source=source,
                            direct_s3=direct_s3)


def run_features_from_dataset(dataset: str | Path, out: str | Path, params: FeatureParams | None = None, *,
                              spark: SparkSession | None = None, s: Settings | None = None) -> dict[str, Any]:
    """A dataset folder (interactions.csv + items.csv) through the same job (dev and tests)."""
    from genrec.pipelines.sources import export_dataset

    with tempfile.TemporaryDirectory(prefix="genrec-ds-export-") as tmp:
        exp = export_dataset(dataset, Path(tmp))
        return run_features(exp.events_dir, exp.items_dir, out, params, spark=spark, s=s, source=exp.source)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """spark-submit entry point: ``features_job.py --out URI [--events URI --items URI | --dataset DIR]``."""
    ap = argparse.ArgumentParser(prog="features_job", description=__doc__)
    ap.add_argument("--out", required=True, help="output folder or s3:// prefix")
    ap.add_argument("--events", help="events parquet folder (PostgreSQL/Kafka export); default: export PostgreSQL")
    ap.add_argument("--items", help="catalogue parquet folder")
    ap.add_argument("--dataset", help="a dataset folder (interactions.csv + items.csv) instead")
    ap.add_argument("--since", type=datetime.fromisoformat)
    ap.add_argument("--until", type=datetime.fromisoformat)
    ap.add_argument("--source", action="append", dest="sources", help="only these event sources (repeatable)")
    ap.add_argument("--max-history", type=int)
    ap.add_argument("--min-length", type=int, default=3)
    ap.add_argument("--direct-s3", action="store_true", help="read/write s3a:// directly (cluster with hadoop-aws)")
    args = ap.parse_args(argv)
    s = get_settings()
    params = FeatureParams(max_history=args.max_history or s.model.max_history, min_length=args.min_length)
    if args.dataset:
        manifest = run_features_from_dataset(args.dataset, args.out, params, s=s)
    elif args.events:
        manifest = run_features(args.events, args.items, args.out, params, s=s, direct_s3=args.direct_s3)
    else:
        manifest = run_features_from_postgres(args.out, params, s=s, since=args.since, until=args.until,
                                              sources=args.sources, direct_s3=args.direct_s3)
    print({"output": manifest["output"], **manifest["counts"]})
    return manifest
