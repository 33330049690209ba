"""The one place where the extract pipeline calls the other areas of tfkit.

Each function here is a thin adapter: it calls another area's public API and returns plain data
the pipeline understands, so a change in one of those APIs is fixed here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tfkit.errors import ConfigError


# --------------------------------------------------------------------------- reading and validation


def load_source_schema(schema: str):
    """The validation area's Schema for a source's `schema` setting (a built-in name or a file)."""
    from tfkit.schemas import load_schema

    return load_schema(schema)


def read_source(path: Path, encoding: str | None):
    """A RawTable (tfkit.io): every column text plus `_source_line`; `.n_rows`, `.frame` (a file
    read without a schema, such as the consent-withdrawal list)."""
    from tfkit.io import read_table

    return read_table(path, encoding=encoding)


def read_validated(path: Path, encoding: str | None, schema, *, sheet: str | int | None = None,
                   allow_empty: bool = False):
    """The validation area's CheckedSource: read (the memory-saving read), validated against
    `schema` (from load_source_schema): .valid, .quarantine, .report, .rows_in, .canonical_names.
    `sheet`: an .xlsx file's worksheet; `allow_empty`: a header-only file is a source of no rows."""
    from tfkit.validation.source import read_validated as _read_validated

    return _read_validated(path, schema, encoding=encoding, sheet=sheet, allow_empty=allow_empty)


# --------------------------------------------------------------------------- pseudonymisation


def load_policy(schema: str, override: Path | str | None):
    from tfkit.pseudonymise import load_policy as _load_policy
    from tfkit.pseudonymise.policy import builtin_policy_names

    builtin = schema if schema in builtin_policy_names() else None
    if builtin is None and override is None:
        raise ConfigError(f"schema {schema!r} has no built-in pseudonymisation policy",
                          hint="set policy = \"FILE.toml\" for this source or under [pseudonymise]")
    return _load_policy(builtin, override)


def published_columns(schema_ref: str, policy_ref: str | None, *, key, project: str, la_code: str) -> list[str]:
    """The columns pseudonymisation will write for a source of this schema and policy (every field of
    the schema present), known before any data is read: pseudonymise's own plan of an empty frame."""
    from tfkit.pseudonymise import plan_and_query

    schema = load_source_schema(schema_ref)
    empty = pl.DataFrame(schema={f.name: f.dtype for f in schema.fields})
    plan, _ = plan_and_query(empty, key=key, project=project, policy=load_policy(schema_ref, policy_ref),
                             la_code=la_code)
    return [c.name for c in plan.columns]


def pseudonymise(frame: pl.DataFrame, *, key, project: str, policy, la_code: str) -> pl.DataFrame:
    from tfkit.pseudonymise import pseudonymise as _pseudonymise

    columns = [c for c in frame.columns if not c.startswith("_")]  # bookkeeping like _source_line
    return _pseudonymise(frame.select(columns), key=key, project=project, policy=policy, la_code=la_code)


def footer_metadata(key, project: str, policy) -> dict[str, str]:
    """Parquet footer key-values for a pseudonymised table (contract, key fingerprint, project, policy)."""
    from tfkit.pseudonymise import metadata

    return metadata(key, project, policy)


def policy_summary(policy) -> dict[str, Any]:
    return policy.as_dict() if hasattr(policy, "as_dict") else {"name": getattr(policy, "name", str(policy))}


# --------------------------------------------------------------------------- linkage


LINKED_PERSON = "linked_person_id"


@dataclass
class LinkedSources:
    """Every source linked to the person table. `linked[source]`: per row (in the frame's order) the
    person-table person_id it belongs to, null where no link."""

    linked: dict[str, pl.Series]
    person_source: str
    result: Any = field(repr=False)  # the linkage area's LinkResult
    record_ids: dict[str, pl.Series] = field(default_factory=dict, repr=False)  # per source, in row order

    def _gone(self, withdrawn: dict[str, pl.Series] | None) -> pl.DataFrame:
        """(source, record_id) of the withdrawn rows (`withdrawn[source]`: a boolean per row)."""
        gone = pl.DataFrame(schema={"source": pl.String, "record_id": pl.String})
        if withdrawn:
            gone = pl.concat([pl.DataFrame({"source": name, "record_id": ids.filter(withdrawn[name])})
                              for name, ids in self.record_ids.items() if name in withdrawn] or [gone])
        return gone

    @staticmethod
    def _kept_pairs(pairs: pl.DataFrame, gone: pl.DataFrame) -> pl.DataFrame:
        for side in ("l", "r"):
            pairs = pairs.join(gone, left_on=[f"source_{side}", f"record_id_{side}"],
                               right_on=["source", "record_id"], how="anti")
        return pairs

    def write_review(self, folder: Path, withdrawn: dict[str, pl.Series] | None = None) -> list[Path]:
        """The clerical review files (LA-internal, 0600 in a 0700 folder), without withdrawn people."""
        from tfkit import console
        from tfkit.linkage.review import review_table, write_review_files

        table = self._kept_pairs(review_table(self.result), self._gone(withdrawn))
        paths = write_review_files(table, folder, warn=self.result.model.warn)
        for path in paths:
            console.log("review_file", f"pairs for clerical review: {path}", file=str(path))
        return paths

    def summary(self, withdrawn: dict[str, pl.Series] | None = None) -> dict[str, Any]:
        """The linkage counts for the manifest, leaving out withdrawn rows (`withdrawn[source]`: a
        boolean per row): a withdrawn person is not counted in a record, a pair, a link or a cluster."""
        from tfkit.linkage.review import reason_counts

        gone = self._gone(withdrawn)
        r = self.result

        def kept_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
            return self._kept_pairs(pairs, gone)

        pairs = kept_pairs(r.pairs)
        clusters = r.clusters.select("source", pl.col("record_id").cast(pl.String), "cluster_id").join(
            gone, on=["source", "record_id"], how="anti")
        sizes = dict(clusters.group_by("source").len().iter_rows())
        kept_linked = {name: s.filter(~withdrawn[name]) if withdrawn and name in withdrawn else s
                       for name, s in self.linked.items()}
        return {
            "mode": "link",
            "sources": {name: sizes.get(name, 0) for name in self.record_ids},
            "candidate_pairs": pairs.height,
            "links": int((pairs["match_probability"] >= r.threshold).sum()),
            "review_pairs": kept_pairs(r.review).height,  # the review band's and those too close to call
            "review_pairs_by_reason": reason_counts(kept_pairs(r.review)),
            "clusters": int(clusters["cluster_id"].n_unique()),
            "threshold": r.threshold,
            **{k: v for k, v in r.link_stats.to_dict().items() if k != "links_above_threshold"},
            "linked_to_person": {name: int(s.is_not_null().sum()) for name, s in kept_linked.items()
                                 if name != self.person_source},
            # linked_to_person + not_linked_to_person = the source's records above
            "not_linked_to_person": {name: int(s.is_null().sum()) for name, s in kept_linked.items()
                                     if name != self.person_source},
            "too_close_to_call": self._too_close_to_call(gone),
        }

    def _too_close_to_call(self, gone: pl.DataFrame) -> dict[str, int]:
        """Per partner source, its records whose candidates in the person table were too close to
        call: linked to none of them (counted in not_linked_to_person, unless linked through another
        source's record) and listed in the review file."""
        r = self.result
        held = r.link_stats.held_for_review
        rid = held.select(pl.when(pl.col("held_side") == "l").then("rid_l").otherwise("rid_r").alias("_rid"))
        records = (r.linker.prepared.frame.select("_rid", "_source", pl.col("_record_id").cast(pl.String))
                   .join(rid.unique(), on="_rid", how="semi")
                   .select(r.linker.prepared.source_name().alias("source"), pl.col("_record_id").alias("record_id"))
                   .join(gone, on=["source", "record_id"], how="anti"))
        counts = dict(records.group_by("source").len().iter_rows())
        return {name: int(counts.get(name, 0)) for name in self.record_ids if name != self.person_source}

    def near_pairs(self) -> pl.DataFrame:
        """Pairs the linkage scored as one person (at or above the link threshold), as columns a, b:
        "<source>\x1f<record id>". One-to-one links keep one record per source for a person; these
        pairs also reach the others (a partner holding two records of one person). The review band
        is not used: on the demo (1,000 people, 100 withdrawn) it removed 16 other people's records
        to find 1 more; the threshold removed 1, as links and exact identifiers alone do."""
        pairs = self.result.pairs.filter(pl.col("match_probability") >= self.result.threshold)
        return pairs.select((pl.col("source_l") + "\x1f" + pl.col("record_id_l").cast(pl.String)).alias("a"),
                            (pl.col("source_r") + "\x1f" + pl.col("record_id_r").cast(pl.String)).alias("b"))


def link_sources(frames: dict[str, pl.DataFrame], person_source: str,
                 model_path: Path | None, *, clean: tuple[str, ...] | None = None,
                 decisions_store: Path | None = None) -> LinkedSources | None:
    """Link every source to the person table (tfkit.linkage, link mode, one-to-one best links).

    `clean`: sources with one record per person (default: the person table). A reviewer's decisions
    in `decisions_store` are applied; `LinkedSources.write_review` writes the pairs left to review.
    A source with no rows (a partner's empty export) takes no part and has no links; None when no
    partner source has a row (nothing to link).
    """
    from tfkit.linkage import LinkageModel, link
    from tfkit.linkage.review import load_decisions

    model = LinkageModel.load(model_path)
    inputs = {name: f.drop([c for c in f.columns if c.startswith("_")]) for name, f in frames.items()
              if f.height or name == person_source}
    if len(inputs) < 2:
        return None
    result = link(inputs, model, mode="link", one_to_one=True,
                  clean=(person_source,) if clean is None else clean,
                  decisions=load_decisions(decisions_store) if decisions_store else None)
    clusters = result.clusters.select("source", pl.col("record_id").cast(pl.String), "cluster_id")
    person_of_cluster = (clusters.filter(pl.col("source") == person_source)
                         .group_by("cluster_id").agg(pl.col("record_id").min().alias(LINKED_PERSON)))
    linked: dict[str, pl.Series] = {}
    record_ids: dict[str, pl.Series] = {}
    for name, frame in frames.items():
        id_column = "person_id" if name == person_source else ("record_id" if "record_id" in frame.columns else "person_id")
        record_ids[name] = frame.get_column(id_column).cast(pl.String).alias("record_id")
        mine = (clusters.filter(pl.col("source") == name).drop("source")
                .unique("record_id", keep="first").join(person_of_cluster, on="cluster_id", how="left"))
        linked[name] = (record_ids[name].to_frame()
                        .join(mine, on="record_id", how="left", maintain_order="left")
                        .get_column(LINKED_PERSON))
    return LinkedSources(linked, person_source, result, record_ids)


def linked_person_pseudonym(key, project: str, la_code: str, linked: pl.Series) -> pl.Series:
    """The person table's person_id pseudonym (contract v1: `<la_code>:<id>`) for linked rows."""
    from tfkit.pseudonymise.apply import normalised_for_hash

    frame = pl.DataFrame({"person_id": linked.cast(pl.String)})
    value = normalised_for_hash("person_id", pl.lit(la_code))
    return frame.select(key.pseudonym_expr(value, project, "person_id").alias("person_id_pseudonym")).to_series()


# --------------------------------------------------------------------------- disclosure and the run report


def disclosure_check(tables: dict[str, pl.DataFrame], person: str, settings) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """The config's `DisclosureSettings` applied to the person table and then to every other table
    carrying quasi-identifiers (tfkit.disclosure.partners). Returns (tables, summary for the manifest:
    the person table's outcome, `published` for it, `tables` for each); policy fail, or more than
    max_suppression blanked, raises DisclosureRiskTooHigh (exit 1)."""
    from tfkit.disclosure.partners import control_tables

    keywords = settings.keywords()
    published, outcome, records = control_tables(tables, person, settings.policy, **keywords)
    return published, {**outcome.to_dict(), "max_suppression": keywords["max_suppression"],
                       "target_suppression": keywords["target_suppression"],
                       "published": records[person], "tables": records}


def render_report(path: Path, report) -> Path:
    """report.html beside the package (a tfkit.report.RunReport: one self-contained page, every
    value escaped)."""
    from tfkit.report import write_run_report

    return write_run_report(path, report)


# --------------------------------------------------------------------------- demo data


def write_demo_inputs(out_dir: Path, *, seed: int, people: int) -> dict[str, Path]:
    """Demo extracts (cohort.csv, consent_withdrawals.csv, ...) written by tfkit.demo."""
    from tfkit.demo import write_demo

    return {name: Path(p) for name, p in write_demo(out_dir, n_people=people, seed=seed, force=True).items()}
