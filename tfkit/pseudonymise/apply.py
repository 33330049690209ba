"""Apply a policy to a canonical frame: the vectorised pseudonymisation of tfkit.

Everything is one lazy polars query run on the streaming engine (both cores), with the contract's
HMAC computed by the polars-hash kernel; no Python loop over rows. Row order is the input's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from tfkit.errors import ConfigError
from tfkit.identifiers import clean_nhs_number, clean_nino, clean_postcode, clean_upn, postcode_area, postcode_district, postcode_sector
from tfkit.pseudonymise.contract import CONTRACT_VERSION, MasterKey
from tfkit.pseudonymise.match_keys import MatchKey, as_date, match_key_stages, select_match_keys
from tfkit.pseudonymise.policy import ColumnRule, Policy

PSEUDONYM_SUFFIX = "_pseudonym"
# The contract's normalisation of each canonical field before hashing (invalid -> null pseudonym).
IDENTIFIER_CLEANERS = {"nino": clean_nino, "upn": clean_upn, "nhs_number": clean_nhs_number}
# Local ids are unique only within an LA: hashed as "<la_code>:<id>".
LA_SCOPED_IDS = ("person_id", "family_id")
POLICY_MATCH_KEYS = "policy"
# tfkit's own bookkeeping (tfkit.io.SOURCE_LINE): dropped without a policy rule.
BOOKKEEPING_COLUMNS = ("_source_line",)


@dataclass(frozen=True)
class OutputColumn:
    """One output column and where it came from (for summaries, manifests and statistics choices)."""

    name: str
    source: str | None  # input column; None for a match key
    action: str  # keep | hash | generalise | match_key

    @property
    def may_have_statistics(self) -> bool:
        # Pseudonyms and match keys gain nothing from min/max statistics; keep footers minimal.
        return self.action in ("keep", "generalise")


@dataclass
class PseudonymisationPlan:
    """The columns `pseudonymise` produces for a given input, policy and match keys."""

    columns: list[OutputColumn] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    match_keys: tuple[MatchKey, ...] = ()

    @property
    def statistics_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.may_have_statistics]


def metadata(key: MasterKey, project: str, policy: Policy) -> dict[str, str]:
    """Footer metadata for a pseudonymised file: fingerprints and names, never the key."""
    return {
        "tfkit.pseudonym_contract": CONTRACT_VERSION,
        "tfkit.key_fingerprint": key.fingerprint,
        "tfkit.project": project,
        "tfkit.policy": policy.name,
    }


# --------------------------------------------------------------------------- column expressions


def _text(col: str) -> pl.Expr:
    t = pl.col(col).cast(pl.String).str.strip_chars()
    return pl.when(t == "").then(None).otherwise(t)


def normalised_for_hash(col: str, la_code: pl.Expr | None) -> pl.Expr:
    """The contract's normalised value of a hashed column (null when empty or invalid)."""
    if col in IDENTIFIER_CLEANERS:
        return IDENTIFIER_CLEANERS[col](pl.col(col).cast(pl.String))
    if col in LA_SCOPED_IDS:
        if la_code is None:
            raise ConfigError(
                f"hashing {col!r} needs the LA code (ids are only unique within an LA), "
                "and the input has no la_code column",
                column=col, hint="pass --la-code (la_code=...) with the GSS code, e.g. E09000031",
            )
        la = la_code.cast(pl.String).str.strip_chars()
        return pl.concat_str([pl.when(la == "").then(None).otherwise(la), pl.lit(":"), _text(col)])
    return _text(col)


def generalised(col: str, rule: ColumnRule, dtype: pl.DataType) -> pl.Expr:
    to = rule.to
    if to == "year_month":
        return as_date(col, dtype).dt.strftime("%Y-%m").alias(f"{col}_year_month")
    if to == "year":
        return as_date(col, dtype).dt.year().cast(pl.Int32).alias(f"{col}_year")
    if to == "age_at":
        ref = rule.reference_date
        d = as_date(col, dtype)
        before_birthday = (d.dt.month() > ref.month) | ((d.dt.month() == ref.month) & (d.dt.day() > ref.day))
        age = pl.lit(ref.year, pl.Int32) - d.dt.year().cast(pl.Int32) - before_birthday.cast(pl.Int32)
        name = f"age_at_{ref:%Y%m%d}" if col == "dob" else f"{col}_age_at_{ref:%Y%m%d}"
        return age.alias(name)
    if dtype != pl.String and not isinstance(dtype, pl.Categorical | pl.Enum):
        raise ConfigError(f"column {col!r} is {dtype}, not a postcode", column=col)
    p = clean_postcode(pl.col(col).cast(pl.String))
    part = {"sector": postcode_sector, "district": postcode_district, "area": postcode_area}[to](p)
    return part.alias(f"{col}_{to}")


# --------------------------------------------------------------------------- the query


def plan_and_query(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    key: MasterKey,
    project: str,
    policy: Policy,
    la_code: str | None = None,
    match_keys=POLICY_MATCH_KEYS,
    hash_distinct: bool = False,
) -> tuple[PseudonymisationPlan, pl.LazyFrame]:
    """The lazy query `pseudonymise` runs, and what it will produce. Raises ConfigError early."""
    if not project or "/" in project:
        raise ConfigError(f"project name {project!r} must be non-empty and contain no '/'",
                          hint="use the agreed project name, e.g. nis or fpd-2019h2")
    lf = frame.lazy()
    schema = lf.collect_schema()
    policy.check_columns([c for c in schema.names() if c not in BOOKKEEPING_COLUMNS])
    if la_code is not None and "la_code" in schema:
        lf = _check_la_code(lf, la_code)
    if "la_code" in schema:
        la_expr = pl.coalesce(pl.col("la_code"), pl.lit(la_code)) if la_code else pl.col("la_code")
    else:
        la_expr = pl.lit(la_code) if la_code else None

    plan = PseudonymisationPlan()
    exprs: list[pl.Expr] = []
    hashed: list[tuple[str, pl.Expr, str]] = []  # (output name, normalised value, contract field)
    for col in schema.names():
        rule = policy.rule_for(col)
        if col in BOOKKEEPING_COLUMNS or rule.action == "drop":
            plan.dropped.append(col)
        elif rule.action == "keep":
            exprs.append(pl.col(col))
            plan.columns.append(OutputColumn(col, col, "keep"))
        elif rule.action == "generalise":
            e = generalised(col, rule, schema[col])
            exprs.append(e)
            plan.columns.append(OutputColumn(e.meta.output_name(), col, "generalise"))
        else:
            out = col + PSEUDONYM_SUFFIX
            hashed.append((out, normalised_for_hash(col, la_expr), col))
            exprs.append(pl.col(out))
            plan.columns.append(OutputColumn(out, col, "hash"))

    spec = policy.match_keys if match_keys == POLICY_MATCH_KEYS else match_keys
    plan.match_keys = select_match_keys(spec, list(schema.names()))
    for mk in plan.match_keys:
        exprs.append(pl.col(mk.column))
        plan.columns.append(OutputColumn(mk.column, None, "match_key"))

    names = [c.name for c in plan.columns]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash:
        raise ConfigError(f"the output would have two columns named {clash!r}", column=clash,
                          hint="rename or drop the input column of that name in the policy")

    # Match-key strings: each source normalised and each component built once, into temporaries.
    bases, parts, strings = match_key_stages(plan.match_keys, schema)
    if plan.match_keys:
        lf = lf.with_columns(bases).with_columns(parts)
    # (output column, normalised value, contract field) of every pseudonym and match key
    todo = [(out, norm, fld) for out, norm, fld in hashed]
    todo += [(mk.column, strings[mk.column], mk.field) for mk in plan.match_keys]
    if hash_distinct:
        query = _hash_each_distinct_once(lf, todo, key, project)
    else:
        # Normalise into columns first, so the contract's null/empty guard reads a column rather
        # than re-evaluating the normalisation.
        query = lf.with_columns([norm.alias(out) for out, norm, _ in todo]).with_columns(
            [key.pseudonym_expr(pl.col(out), project, fld).alias(out) for out, _, fld in todo])
    return plan, query.select(exprs)


def _hash_each_distinct_once(lf, todo, key, project) -> pl.LazyFrame:
    """Normalise, hash each column's distinct values once, and join the pseudonyms back in order."""
    tmp = [f"__tfkit_norm_{i}" for i in range(len(todo))]
    # Materialise the normalised values once: reusing one lazy plan in a chain of self-joins would
    # grow the plan exponentially.
    normalised = lf.with_columns([norm.alias(t) for t, (_, norm, _) in zip(tmp, todo, strict=True)]).collect(
        engine="streaming")
    base = normalised.lazy()
    for t, (out, _, fld) in zip(tmp, todo, strict=True):
        lut = (
            normalised.lazy().select(pl.col(t)).unique().drop_nulls()
            .with_columns(key.pseudonym_expr(pl.col(t), project, fld).alias(out))
        )
        base = base.join(lut, on=t, how="left", maintain_order="left").drop(t)
    return base


def _check_la_code(lf: pl.LazyFrame, la_code: str) -> pl.LazyFrame:
    others = lf.select(pl.col("la_code").cast(pl.String).str.strip_chars()).unique().drop_nulls().collect()
    wrong = [v for v in others.to_series().to_list() if v != la_code.strip()]
    if wrong:
        raise ConfigError(
            f"the LA code given is {la_code!r} (--la-code, or la_code in the config) but the input's la_code "
            f"column holds {wrong[0]!r}",
            column="la_code", hint="check the LA code and that this is the right file (with pseudonymise, drop "
            "--la-code: the column is used)",
        )
    return lf


def pseudonymise(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    key: MasterKey,
    project: str,
    policy: Policy,
    la_code: str | None = None,
    match_keys=POLICY_MATCH_KEYS,
    hash_distinct: bool = False,
) -> pl.DataFrame:
    """Pseudonymise a canonical frame by `policy` under `key` and `project`.

    - keep: the column as is; drop: gone; generalise: e.g. dob -> dob_year_month, postcode ->
      postcode_district; hash: `<col>_pseudonym`, the contract-v1 pseudonym of the normalised value
      (person_id and family_id as `<la_code>:<id>`; invalid NI numbers, UPNs, NHS numbers -> null).
    - match_keys: "policy" (the policy's choice), "default" (every documented key the input's
      columns can build), None (none), or a list of names; appended as `mk_<name>` columns.
    - Any input column the policy does not name raises ConfigError naming it.
    - hash_distinct: hash each distinct value once and join back (fewer HMACs when values repeat).

    Row order is the input's; the result is deterministic for the same input, key and project.
    """
    _, query = plan_and_query(frame, key=key, project=project, policy=policy, la_code=la_code,
                              match_keys=match_keys, hash_distinct=hash_distinct)
    return query.collect(engine="streaming")
