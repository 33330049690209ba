"""The tfkit CLI as a script for `spark-submit` (which runs .py files), e.g.

    spark-submit --master yarn "$(python -c 'import tfkit.engine.spark.submit as s; print(s.__file__)')" \\
        link-keys A B --out OUT --engine spark

The session spark-submit configures is the one tfkit uses (no [engine] master needed)."""

if __name__ == "__main__":
    from tfkit.entry import main

    main()
