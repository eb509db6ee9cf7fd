"""The Spark Structured Streaming peer: `python -m neptune_bench.kafka_peers.spark_app CONFIG_JSON`
(PySpark local mode, the spark-sql-kafka-0-10 jars of the same Spark and Scala version).

CONFIG: {"bootstrap", "in", "out", "checkpoint", "jars": [paths], "executor_cpu"}.
Kafka source -> from_json -> groupBy("key").applyInPandasWithState(update): per event the key's
running [count, sum] (kafka_peers.aggregate, the same function as ours and Quix's), kept in
Spark's state store -> to_json -> Kafka sink. `local[1]` (one task slot),
spark.sql.shuffle.partitions=1, the default trigger (a micro-batch as soon as the previous one
ended). The Kafka sink is at-least-once. The Python worker pins itself to `executor_cpu`; the
JVM (Kafka I/O, planning) runs where its parent put it (the driver's core).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from neptune_bench import kafka_peers as kp

_pinned = False


def main() -> None:
    import pandas as pd
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import col, from_json
    from pyspark.sql.streaming.state import GroupStateTimeout

    cfg: dict[str, Any] = json.loads(sys.argv[1])
    cpu = cfg.get("executor_cpu")
    spark = (SparkSession.builder.master("local[1]").appName("kafka-bench")
             .config("spark.jars", ",".join(cfg["jars"]))
             .config("spark.sql.shuffle.partitions", "1")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    raw = (spark.readStream.format("kafka")
           .option("kafka.bootstrap.servers", cfg["bootstrap"])
           .option("subscribe", cfg["in"]).option("startingOffsets", "earliest").load())
    events = (raw.select(from_json(col("value").cast("string"),
                                   "id long, key string, v long, ts double").alias("e"))
              .select("e.*"))

    def update(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
               state: Any) -> Iterator[pd.DataFrame]:
        global _pinned
        if not _pinned and cpu is not None:
            os.sched_setaffinity(0, {cpu})
            _pinned = True
        agg: list[int] | None = list(state.get) if state.exists else None
        rows = []
        for frame in frames:
            for i, k, v, ts in zip(frame["id"], frame["key"], frame["v"], frame["ts"],
                                   strict=True):
                agg, out = kp.aggregate(agg, {"id": int(i), "key": k, "v": int(v),
                                              "ts": float(ts)})
                rows.append(out)
        if agg is not None:
            state.update(tuple(agg))
        yield pd.DataFrame(rows, columns=["id", "key", "n", "sum", "ts"])

    out = events.groupBy("key").applyInPandasWithState(
        update, outputStructType="id long, key string, n long, sum long, ts double",
        stateStructType="n long, sum long", outputMode="append",
        timeoutConf=GroupStateTimeout.NoTimeout)
    query = (out.selectExpr("key", "to_json(struct(*)) AS value").writeStream.format("kafka")
             .option("kafka.bootstrap.servers", cfg["bootstrap"]).option("topic", cfg["out"])
             .option("checkpointLocation", cfg["checkpoint"]).outputMode("append").start())
    print("spark running", file=sys.stderr, flush=True)
    query.awaitTermination()


if __name__ == "__main__":
    main()
