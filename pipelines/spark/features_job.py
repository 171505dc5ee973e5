"""spark-submit entry point of the feature job (the code lives in ``genrec.pipelines``).

Local (what ``genrec pipeline features`` does in-process)::

    python pipelines/spark/features_job.py --dataset data/beauty --out /tmp/features

Cluster (S3 read/written by Spark itself; hadoop-aws must match the cluster's Hadoop)::

    spark-submit --master k8s://... --packages org.apache.hadoop:hadoop-aws:3.4.1 \\
      --conf spark.hadoop.fs.s3a.endpoint=http://minio.genrec:9000 \\
      --conf spark.hadoop.fs.s3a.path.style.access=true \\
      --conf spark.hadoop.fs.s3a.access.key=... --conf spark.hadoop.fs.s3a.secret.key=... \\
      pipelines/spark/features_job.py --events s3://genrec/exports/events/2026-11-24 \\
        --items s3://genrec/exports/items/2026-11-24 --out s3://genrec/features/2026-11-24 --direct-s3

Without ``--events`` it exports PostgreSQL itself (COPY through the driver) first.
"""

from __future__ import annotations

from genrec.pipelines.job import main

if __name__ == "__main__":
    main()
