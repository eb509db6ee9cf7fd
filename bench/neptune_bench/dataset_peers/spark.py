"""PySpark's runs of the dataset benchmark, in local mode with two task slots (local[2]).

- pairs (`spark_rdd`): an RDD with Python functions, as a PySpark user writes a reduceByKey:
  `parallelize(range(partitions)).flatMap(data.pairs).reduceByKey(operator.add, reducers)
  .collect()`; the records are made and combined in Spark's Python workers.
- columns (`spark_df`): a DataFrame made in the JVM from `spark.range` with data.py's
  expressions, `groupBy("key").agg(sum, count, avg, min, max)` with `reducers` shuffle
  partitions, `.collect()`.

Start-up (the JVM and the SparkContext) is not measured; nor are the warm-up epochs, which start
the Python workers (reused after that: spark.python.worker.reuse) and compile the JVM's code.
"""

from __future__ import annotations

import importlib
import operator
import os
import sys
import time
from typing import Any

from . import Config, data, main_for, timed_epochs

MASTER = "local[2]"


def run(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    # imported as plain modules: type checking must not need the optional package
    pyspark: Any = importlib.import_module("pyspark")
    sql: Any = importlib.import_module("pyspark.sql")
    functions: Any = importlib.import_module("pyspark.sql.functions")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = (pyspark.SparkConf().setMaster(MASTER).setAppName("neptune-dataset-bench")
            .set("spark.ui.enabled", "false")
            .set("spark.python.worker.reuse", "true")
            .set("spark.driver.memory", "4g")
            .set("spark.sql.shuffle.partitions", str(cfg.reducers))
            .set("spark.driver.bindAddress", "127.0.0.1")
            .set("spark.driver.host", "127.0.0.1")
            .set("spark.local.dir", cfg.workdir))
    spark = sql.SparkSession.builder.config(conf=conf).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.monotonic() - started
    parts, records, keys = cfg.partitions, cfg.records, cfg.keys

    def pairs() -> dict[str, Any]:
        result = (spark.sparkContext.parallelize(range(parts), parts)
                  .flatMap(lambda p: data.pairs(p, parts, records, keys))
                  .reduceByKey(operator.add, numPartitions=cfg.reducers)
                  .collect())
        return data.pairs_summary(result)

    def columns() -> dict[str, Any]:
        f = functions
        frame = spark.range(0, records, 1, parts).select(
            ((f.col("id") * data.STRIDE) % keys).alias("key"),
            ((f.col("id") % 1000).cast("double") / 4).alias("amount"))
        rows = frame.groupBy("key").agg(
            f.sum("amount").alias("total"), f.count("amount").alias("n"),
            f.avg("amount").alias("avg"), f.min("amount").alias("low"),
            f.max("amount").alias("high")).collect()
        return data.columns_summary((r["key"] for r in rows), (r["n"] for r in rows),
                                    (r["total"] for r in rows), (r["low"] for r in rows),
                                    (r["high"] for r in rows))

    try:
        result = timed_epochs(cfg, pairs if cfg.workload == "pairs" else columns)
        info = {"startup_s": round(startup, 2), "spark": spark.version, "master": MASTER,
                "partitions": parts, "reducers": cfg.reducers,
                "api": "RDD, Python functions" if cfg.workload == "pairs" else "DataFrame"}
    finally:
        spark.stop()
    return result, info


if __name__ == "__main__":
    main_for(run)
