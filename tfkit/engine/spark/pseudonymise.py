"""`tfkit pseudonymise --engine spark`: contract v1 per partition, by the polars engine's own query.

Spark has no HMAC. Each partition's Arrow batches go through `mapInArrow` into exactly the lazy
query the polars engine runs (`plan_and_query`: the contract's normalisation and the polars-hash
HMAC kernel), so the two engines give the same pseudonyms by construction, not by a second
implementation.

The master key never leaves the driver. Executors receive only the HKDF domain keys of the fields
this job hashes (`DomainKeys`), inside the pickled task closure: not in the plan's string form (the
plan names the function only), not in logs, never on disk. Input is validated canonical rows:
`tfkit validate --quarantine DIR` writes them as `<stem>.valid.parquet`; row-level validation stays
with the polars engine (a cross-row rule cannot be judged one partition at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tfkit.pseudonymise.apply import plan_and_query
from tfkit.pseudonymise.contract import MasterKey
from tfkit.pseudonymise.policy import Policy


class DomainKeys(MasterKey):
    """The domain keys of one project's fields, standing in for the master key on executors.

    It answers `hmac_key_text` and `fingerprint` as the master key does, for these fields only, and
    prints as the fingerprint alone."""

    __slots__ = ("_keys", "_fingerprint", "_project")

    def __init__(self, project: str, keys: dict[str, str], fingerprint: str) -> None:
        self._secret, self.source = None, None
        self._project, self._keys, self._fingerprint = project, dict(keys), fingerprint

    @classmethod
    def derive(cls, master: MasterKey, project: str, fields: list[str]) -> "DomainKeys":
        return cls(project, {f: master.hmac_key_text(project, f) for f in fields}, master.fingerprint)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def domain_key(self, project: str, field: str) -> bytes:
        return bytes.fromhex(self.hmac_key_text(project, field))

    def hmac_key_text(self, project: str, field: str) -> str:
        if project != self._project or field not in self._keys:
            raise KeyError(f"no domain key for {project}/{field} in this job")
        return self._keys[field]

    def __repr__(self) -> str:
        return f"DomainKeys(fingerprint={self._fingerprint!r}, fields={sorted(self._keys)!r})"

    __str__ = __repr__

    def __reduce__(self):  # executors need the domain keys (never the master key) to hash
        return (DomainKeys, (self._project, self._keys, self._fingerprint))


@dataclass
class SparkPseudonymisation:
    """What `pseudonymise_spark` did (counts and names only)."""

    input: str
    output: str
    project: str
    policy: str
    key_fingerprint: str
    rows_in: int
    rows_out: int
    columns: dict[str, str]
    dropped: list[str]
    engine: str = "spark"

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _hashed_fields(plan) -> list[str]:
    return [c.source for c in plan.columns if c.action == "hash"] + [mk.field for mk in plan.match_keys]


def pseudonymised_frame(df, *, key: MasterKey, project: str, policy: Policy, la_code: str | None = None):
    """`(plan, DataFrame)`: `df`'s rows pseudonymised per partition by the polars engine's query."""
    from pyspark.sql.pandas.types import from_arrow_schema

    empty = pl.from_arrow(df.limit(0).toArrow())
    plan, query = plan_and_query(empty, key=key, project=project, policy=policy, la_code=la_code)
    out_schema = from_arrow_schema(query.collect().to_arrow().schema)
    keys = DomainKeys.derive(key, project, _hashed_fields(plan))

    def pseudonymise_partition(batches):
        import polars as pl  # noqa: F811  (on the executor)

        from tfkit.pseudonymise.apply import plan_and_query

        for batch in batches:
            frame = pl.from_arrow(batch)
            if isinstance(frame, pl.Series):
                frame = frame.to_frame()
            _, q = plan_and_query(frame, key=keys, project=project, policy=policy, la_code=la_code)
            yield from q.collect().to_arrow().to_batches()

    return plan, df.mapInArrow(pseudonymise_partition, out_schema)


def pseudonymise_spark(spark, input_path: str, out: str, *, key: MasterKey, project: str, policy: Policy,
                       la_code: str | None = None) -> SparkPseudonymisation:
    """Pseudonymise a Parquet file or folder of validated canonical rows into a Parquet folder."""
    from tfkit.engine.spark.io import read_parquet, write_parquet
    from tfkit.errors import InputFileError

    if out.rstrip("/") == input_path.rstrip("/"):
        raise InputFileError("the output would overwrite the input", file=out, hint="choose another --out")
    df = read_parquet(spark, input_path)
    plan, result = pseudonymised_frame(df, key=key, project=project, policy=policy, la_code=la_code)
    write_parquet(result, out, statistics=False)
    rows_out = spark.read.parquet(out).count()
    return SparkPseudonymisation(
        input=input_path, output=out, project=project, policy=policy.name, key_fingerprint=key.fingerprint,
        rows_in=df.count(), rows_out=rows_out, columns={c.name: c.action for c in plan.columns},
        dropped=plan.dropped)


def pseudonymise_job(input_path: str, out: str, *, key: MasterKey, project: str, policy: Policy,
                     la_code: str | None, settings) -> SparkPseudonymisation:
    """`tfkit pseudonymise --engine spark`: start (or join) Spark and pseudonymise."""
    from tfkit.engine.spark.session import spark_session

    return pseudonymise_spark(spark_session(settings), input_path, out, key=key, project=project, policy=policy,
                              la_code=la_code)
