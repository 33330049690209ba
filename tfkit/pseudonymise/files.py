"""File-level pseudonymisation: read, validate, apply a policy, write deterministic Parquet.

`tfkit pseudonymise` is a thin skin over `pseudonymise_file`. Invalid rows are never silently
dropped: without a quarantine directory the run is refused (DataCheckFailed, exit 1) and points to
`tfkit validate --quarantine`; with one, the failing rows (raw, so kept apart from the output) go
to `<dir>/<stem>.quarantine.csv` and the counts reconcile: rows_in = rows_out + rows_quarantined.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from tfkit.errors import DataCheckFailed, InputFileError
from tfkit.parquet import write_parquet
from tfkit.pseudonymise.apply import PseudonymisationPlan, metadata, plan_and_query
from tfkit.pseudonymise.contract import MasterKey
from tfkit.pseudonymise.policy import Policy


@dataclass
class PseudonymisationSummary:
    """What a pseudonymisation run did: counts, columns and fingerprints (never values or keys)."""

    input: str
    output: str
    schema: str
    policy: str
    project: str
    key_fingerprint: str
    rows_in: int
    rows_quarantined: int
    rows_out: int
    columns: dict[str, str] = field(default_factory=dict)  # output column -> keep | hash | generalise | match_key
    dropped: list[str] = field(default_factory=list)
    match_key_coverage: dict[str, int] = field(default_factory=dict)  # mk column -> non-null rows
    quarantine_file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def write_pseudonymised(df: pl.DataFrame, path: str | Path, plan: PseudonymisationPlan, *, key: MasterKey,
                        project: str, policy: Policy) -> Path:
    """Deterministic, atomic Parquet; min/max statistics only for kept and generalised columns."""
    return write_parquet(df, path, statistics=plan.statistics_columns, metadata=metadata(key, project, policy))


def pseudonymise_file(
    input_path: str | Path,
    *,
    schema: str,
    key: MasterKey,
    project: str,
    out: str | Path,
    policy: Policy,
    la_code: str | None = None,
    quarantine_dir: str | Path | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
) -> PseudonymisationSummary:
    from tfkit.schemas import load_schema
    from tfkit.validation.source import read_validated

    input_path, out = Path(input_path), Path(out)
    if out.resolve() == input_path.resolve():
        raise InputFileError("the output would overwrite the input", file=out, hint="choose another --out")
    loaded = load_schema(schema)
    checked = read_validated(input_path, loaded, encoding=encoding, sheet=sheet)
    result, rows_in = checked.result, checked.rows_in
    quarantine_file = None
    checked.refuse_if_columns_missing()  # the header, not the rows: named before any raw row is written
    if result.quarantine.height:
        if quarantine_dir is None:
            raise DataCheckFailed(
                f"{result.quarantine.height:,} of {rows_in:,} row(s) failed validation against schema "
                f"{loaded.name!r}; nothing was written",
                file=input_path,
                hint=f"see which with: tfkit validate {input_path} --schema {schema} --quarantine DIR; "
                     "fix them at source, or rerun with --quarantine DIR to set them aside",
            )
        if not result.valid.height:  # the wrong file or schema: the quarantine file says why
            quarantine_file = checked.write_quarantine(quarantine_dir)
            checked.refuse_if_none_valid(f"check --schema suits this file; the reasons are in {quarantine_file}")
    plan, query = plan_and_query(result.valid, key=key, project=project, policy=policy, la_code=la_code)
    df = query.collect(engine="streaming")
    write_pseudonymised(df, out, plan, key=key, project=project, policy=policy)
    if result.quarantine.height:  # published only once the output is written: a failed run leaves no raw rows
        quarantine_file = str(checked.write_quarantine(quarantine_dir))
    coverage = df.select([pl.col(mk.column).count() for mk in plan.match_keys]).row(0) if plan.match_keys else ()
    return PseudonymisationSummary(
        input=str(input_path), output=str(out), schema=loaded.name, policy=policy.name, project=project,
        key_fingerprint=key.fingerprint, rows_in=rows_in, rows_quarantined=result.quarantine.height,
        rows_out=df.height, columns={c.name: c.action for c in plan.columns}, dropped=plan.dropped,
        match_key_coverage={mk.column: int(n) for mk, n in zip(plan.match_keys, coverage, strict=True)},
        quarantine_file=quarantine_file,
    )
