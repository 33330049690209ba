"""The Apache Spark engine (optional extra `tfkit[spark]`). Import only when a job asks for Spark.

  session.spark_session(settings) -> SparkSession   (one clear error, exit 2, when Spark cannot start)
  io.read_parquet(spark, path) / io.write_parquet(df, path)   (Parquet folders on any Hadoop path)
  link_keys.link_on_match_keys_spark(...)             (hierarchical match keys as distributed joins)
  pseudonymise.pseudonymise_spark(...)                (contract v1 per partition through mapInArrow)
"""
