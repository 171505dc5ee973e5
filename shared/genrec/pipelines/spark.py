"""One way to get a SparkSession: local mode by default, whatever spark-submit says on a cluster.

Local mode binds the driver to loopback and disables the UI (no stray ports, works without a
resolvable hostname). Under ``spark-submit`` (a cluster, or the Spark operator) the master and
resources come from the submit command and nothing here overrides them.

S3 on a cluster: add hadoop-aws to the job (``--packages org.apache.hadoop:hadoop-aws:<hadoop
version>``) and pass :func:`s3a_conf` (endpoint, keys, path-style) as ``--conf`` options; then
``s3://`` inputs and outputs are read directly as ``s3a://``. Locally the jars are not
available, so s3:// paths are staged through local files (see ``genrec.pipelines.staging``).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from genrec.config import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOCAL_MASTER = "local[2]"


def under_spark_submit() -> bool:
    """True when this Python driver was launched by spark-submit (it hands us its gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_conf() -> dict[str, str]:
    # Small local data: 200 shuffle partitions would be 200 tiny tasks per stage.
    shuffle_partitions = os.environ.get("GENREC_SPARK_SHUFFLE_PARTITIONS", "2")
    return {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.driver.memory": os.environ.get("GENREC_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.shuffle.partitions": shuffle_partitions,
        "spark.default.parallelism": shuffle_partitions,
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.showConsoleProgress": "false",  # progress is ours (rich), not stage bars
        # Local jobs are short: C1-only JIT warms up ~2x faster than waiting for C2 (measured
        # on the 2-core dev box); override for long local runs.
        "spark.driver.extraJavaOptions": os.environ.get("GENREC_SPARK_JAVA_OPTIONS",
                                                        "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"),
    }


def common_conf() -> dict[str, str]:
    return {
        # Timestamps are instants; rendering them in the machine's zone would shift day bounds.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


def s3a_conf(s: Settings | None = None) -> dict[str, str]:
    """``spark.hadoop.fs.s3a.*`` for the configured S3 endpoint (cluster mode with hadoop-aws)."""
    s = s or get_settings()
    conf = {
        "spark.hadoop.fs.s3a.access.key": s.s3.access_key_id,
        "spark.hadoop.fs.s3a.secret.key": s.s3.secret_access_key.get_secret_value(),
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint.region": s.s3.region,
    }
    if s.s3.endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = s.s3.endpoint_url
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(s.s3.endpoint_url.startswith("https")).lower()
    return conf


def get_spark(app_name: str = "genrec-pipeline", master: str | None = None,
              extra_conf: dict[str, str] | None = None) -> SparkSession:
    """The active session, or a new one (local[2] unless launched by spark-submit)."""
    from pyspark.sql import SparkSession

    # Python workers (for the is_positive UDF) must run this interpreter, with genrec installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    conf = dict(common_conf())
    if not under_spark_submit():
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # else Spark picks (and warns about) eth0
        builder = builder.master(master or os.environ.get("GENREC_SPARK_MASTER", LOCAL_MASTER))
        conf.update(local_conf())
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # ERROR by default: the dense item index is one global window, which Spark warns about
    # on every query although it runs over item ids only.
    spark.sparkContext.setLogLevel(os.environ.get("GENREC_SPARK_LOG_LEVEL", "ERROR"))
    return spark
