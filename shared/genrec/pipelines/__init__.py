"""Batch pipelines: the Spark feature job, the embedding backfill and train-evaluate-publish.

Flow of ``genrec pipeline nightly`` (each step is also its own command)::

    export     PostgreSQL user_events/items --COPY--> parquet      (sources.py)
    features   parquet --Spark--> sequences, splits, item stats   (features.py, manifest.json)
    backfill   catalogue text -> embeddings (+ tokenizer) -> PG    (backfill.py)
    train      features -> candidate bundle                        (cycle.py, genrec.training)
    gate       candidate vs production on the SAME split           (gate.py)
    publish    S3 + serving export + registry candidate            (publish.py)
    promote    canary weight / production + serving pointer        (publish.py)

``seed.py`` loads a dataset folder into PostgreSQL for local runs; ``staging.py`` moves
s3:// inputs/outputs through local files for Spark in local mode; ``featureset.py`` reads a
feature output back as ``InteractionDataset`` + ``LeaveOneOutSplit``.

``pipelines/`` at the repository root holds the thin entry points (``spark-submit`` scripts,
Kubernetes manifests); everything they run lives here so it is importable and tested.
"""
