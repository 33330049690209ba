"""`tfkit extract`: sources in, a signed, verified-ready BagIt package out.

Stages, in order (each a function below):
  1. keys        load the master key and the signing key first: fail before any work
  2. read        each source file, hashed and counted (rows_in)
  3. validate    typed canonical rows; failures quarantined (or the run stopped: fail_on_invalid)
  4. link        sources into persons, when a linkage model is configured
  5. withdraw    consent withdrawals removed, by any identifier, before pseudonymisation; counted only
  6. pseudonymise by policy, under the master key and project
  7. reconcile   rows_in = rows_out + quarantined + withdrawn (+ excluded), asserted per source;
                 then the disclosure policy on the person table and every
                 other table carrying quasi-identifiers
  8. LA-internal the quarantine and clerical-review files (raw values, 0600 in 0700 folders),
                 removed again if the package step fails
  9. package     one step (tfkit.package.publish.write_package): the bag staged under a lock, its
                 signed audit entry written (the manifest records its hash), signed, report.html
                 written beside it, renamed into place; any failure takes all of it back
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tfkit import __version__, console
from tfkit.config import Config
from tfkit.errors import DataCheckFailed, KeyFileError, UsageError
from tfkit.package import audit, bag
from tfkit.package import manifest as manifest_mod
from tfkit.package.manifest import InputFile, Manifest, Reconciliation
from tfkit.package.publish import (PackageLocked, PackageRequest, Published, check_target, clean_stale_staging,
                                   output_lock, report_path_for, write_package)
from tfkit.package.signing import load_signing_key, public_key_fingerprint, public_key_path_for
from tfkit.pipeline import adapters
from tfkit.pipeline.consent import SourceRows, check_unmatched, load_withdrawals
from tfkit.pseudonymise.contract import CONTRACT_VERSION, KEY_ENV_VAR, load_key_file
from tfkit.report.render import RunReport
from tfkit.validation import ledger
from tfkit.validation.quarantine import private_folder, write_quarantine_csv


@dataclass
class SourceRun:
    source: str
    table: str
    input: InputFile
    reconciliation: Reconciliation
    validation: dict[str, Any] = field(default_factory=dict)
    quarantine_file: Path | None = None


@dataclass
class ExtractResult:
    package: Path
    report: Path
    manifest: dict[str, Any]
    sources: list[SourceRun]
    demo: bool
    signer_public_key: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (not in the manifest)
    # True when the package already existed, made from exactly these inputs: nothing was rewritten.
    up_to_date: bool = False
    review_files: list[Path] = field(default_factory=list)  # clerical review (LA-internal, like quarantine)

    @property
    def verify_command(self) -> str:
        key = f" --public-key {self.signer_public_key}" if self.signer_public_key else " --public-key SIGNER.pub"
        return f"tfkit verify {self.package}{key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "up_to_date": self.up_to_date,
            "package": str(self.package),
            "report": str(self.report),
            "demo": self.demo,
            "key_fingerprint": self.manifest.get("key_fingerprint"),
            "signer_fingerprint": (self.manifest.get("signer") or {}).get("fingerprint"),
            "reconciliation": self.manifest.get("reconciliation"),
            "outputs": [{k: o[k] for k in ("path", "rows", "bytes", "sha256")} for o in self.manifest.get("outputs", [])],
            "quarantine_files": [str(s.quarantine_file) for s in self.sources if s.quarantine_file],
            "review_files": [str(p) for p in self.review_files],
            "verify_command": self.verify_command,
            "seconds": self.timings,
        }


def run_extract(config: Config, *, force: bool = False, now: dt.datetime | None = None,
                allow_test_key: bool = False) -> ExtractResult:
    """Run the whole pipeline. At a terminal a progress bar follows its stages (nothing in cron)."""
    with console.progress() as bar:
        # read, validate and pseudonymise each source, then link, disclosure and package
        task = bar.add_task("extract", total=3 * len(config.sources) + 3)
        result = _run_extract(config, force=force, now=now, progress=(bar, task), allow_test_key=allow_test_key)
        bar.update(task, completed=3 * len(config.sources) + 3)
    return result


def _run_extract(config: Config, *, force: bool, now: dt.datetime | None, progress,
                 allow_test_key: bool = False) -> ExtractResult:
    now = now or dt.datetime.now(dt.timezone.utc)
    run = _Run(config, now, timer=_timer({}, progress))
    started = time.perf_counter()
    master, signing_key = _load_keys(config, allow_test_key)  # 1. keys, and the cheap refusals, before any work
    _check_disclosure_columns(config, master)
    _check_input_files(config)
    run_sha256 = run_fingerprint(config, master.fingerprint, public_key_fingerprint(signing_key.public_key()))
    if not force and (current := _current_package(config, config.package_dir, run_sha256)) is not None:
        with contextlib.suppress(PackageLocked):  # another run is writing: its staging is not stale
            with output_lock(config.output_root, config.package_name):
                _clean_stale_staging(config)
        return current
    check_target(config.package_dir, force)
    with output_lock(config.output_root, config.package_name):
        _clean_stale_staging(config)
        if not force and (current := _current_package(config, config.package_dir, run_sha256)) is not None:
            return current  # another run made it while this one waited for the lock
        check_target(config.package_dir, force)
        from tfkit.linkage.review import check_no_unapplied_decisions, extract_store

        check_no_unapplied_decisions(config.quarantine_dir / config.package_name, extract_store(config.quarantine_dir),
                                     f"tfkit review apply FILE --config {config.path}")
        run.withdrawals = load_withdrawals(config.withdrawals)
        _read_and_validate(run)                    # 2-3
        _refuse_invalid(run)
        _link(run)                                 # 4
        _withdraw(run)                             # 5
        _pseudonymise(run, master)                 # 6-7
        _disclosure(run)
        _warn_unmatched(run)
        try:
            _write_la_internal(run)                # 8
            published = _package(run, master, signing_key, run_sha256, force)  # 9
        except BaseException:  # Ctrl-C and a full disk included, while writing 8 as while packaging
            _remove_la_internal(run)  # no package owns these raw rows: none left outside retention
            raise
        _drop_previous_la_internal(run)  # the replaced package's raw rows went with it
    run.timings["total"] = time.perf_counter() - started
    timings = {k: round(v, 3) for k, v in run.timings.items()}
    console.log("package_written", f"package written: {published.package}", package=str(published.package),
                report=str(published.report), demo=config.demo, seconds=timings)
    pub = public_key_path_for(config.signing_key)
    return ExtractResult(published.package, published.report, published.built.manifest, run.sources, config.demo,
                         signer_public_key=pub if pub.is_file() else None, timings=timings,
                         review_files=run.review_files)


def _check_input_files(config: Config) -> None:
    """Every file the run reads exists and is a file, before the package already there is judged:
    a mistyped source path is that, not "the package exists, pass --force"."""
    from tfkit.io import check_regular_file

    for path in [s.path for s in config.sources] + [config.withdrawals, config.linkage_model]:
        if path is not None:
            check_regular_file(Path(path))


def _clean_stale_staging(config: Config) -> None:
    """What an interrupted run left in the output root (call holding the package's output lock)."""
    for stale in clean_stale_staging(config.output_root, config.package_name):
        console.log("staging_removed", f"removed {stale.name}, left by an interrupted run", stale=stale.name)


@dataclass
class _Run:
    """One extract's working state, passed from stage to stage."""

    config: Config
    now: dt.datetime
    timer: Any
    withdrawals: Any = None
    sources: list[SourceRun] = field(default_factory=list)
    valid: dict[str, pl.DataFrame] = field(default_factory=dict)
    quarantined: dict[str, pl.DataFrame] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    linkage: Any = None  # tfkit.linkage's result, when [linkage] is on
    gone: Any = None  # the withdrawals resolved against every source's rows
    review_files: list[Path] = field(default_factory=list)  # clerical review (LA-internal, like quarantine)
    linkage_summary: dict[str, Any] | None = None
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    policies: dict[str, Any] = field(default_factory=dict)
    footers: dict[str, dict[str, str]] = field(default_factory=dict)
    disclosure: dict[str, Any] = field(default_factory=dict)
    staged_quarantine: dict[str, pl.DataFrame] = field(default_factory=dict)  # until stage 8 writes them
    previous_la_internal: Path | None = None  # a replaced package's LA-internal files, until this run publishes

    @property
    def timings(self) -> dict[str, float]:
        return self.timer.timings

    @property
    def person_source(self) -> str:
        return self.config.sources[0].name


def _load_keys(config: Config, allow_test_key: bool = False):
    if config.key_file is None and not os.environ.get(KEY_ENV_VAR):
        raise KeyFileError("no master key configured", file=config.path, key="pseudonymise.key_file",
                           hint="set [pseudonymise] key_file (or TFKIT_KEY_FILE); make one with: tfkit keys generate --out FILE")
    master = load_key_file(config.key_file, allow_test_key=allow_test_key)
    if config.signing_key is None:
        raise KeyFileError("no signing key configured", file=config.path, key="signing.key_file",
                           hint="make a pair with: tfkit keys generate --signing --out FILE, and set [signing] key_file")
    return master, load_signing_key(config.signing_key)


def _check_disclosure_columns(config: Config, master) -> None:
    """[disclosure]'s quasi-identifiers and sensitive columns against the person table as it will be
    written (its schema and policy): a typo stops the run before any data is read."""
    person = config.sources[0]
    columns = adapters.published_columns(person.schema, person.policy or config.policy, key=master,
                                         project=config.project, la_code=config.la_code)
    config.disclosure.check_columns(columns, file=config.path, table=f"person table (source {person.name!r})")


def _read_and_validate(run: _Run) -> None:
    """2-3. Each source read, hashed and counted, then validated into valid and quarantined rows."""
    for source in run.config.sources:
        schema = adapters.load_source_schema(source.schema)
        with run.timer("read and validate"):  # a partner's export may hold nobody this period: an empty table
            checked = adapters.read_validated(source.path, source.encoding, schema, sheet=source.sheet,
                                              allow_empty=source.name != run.person_source)
            checked.refuse_if_columns_missing(source.name)  # before any raw row is written anywhere
        digest = bag.sha256_file(source.path)
        inp = InputFile(source.name, source.path.name, source.schema, digest, source.path.stat().st_size, checked.rows_in)
        console.log("source_read", f"read {source.name}: {checked.rows_in:,} rows from {source.path.name}",
                    source=source.name, rows=checked.rows_in, sha256=digest)
        run.valid[source.name], run.quarantined[source.name] = checked.valid, checked.quarantine
        run.headers[source.name] = checked.canonical_names
        run.sources.append(SourceRun(source.name, source.table, inp, Reconciliation(source.name, source.table, inp.rows),
                                     validation=checked.report.to_dict()))
        del checked


def _refuse_invalid(run: _Run) -> None:
    """fail_on_invalid with failing rows, or a source with no valid row at all (the wrong file or
    schema: never sign an empty return): quarantine files written (less withdrawn people), no package."""
    config = run.config
    bad = {name: q.height for name, q in run.quarantined.items() if q.height}
    rejected = [name for name, q in run.quarantined.items() if q.height and not run.valid[name].height]
    if not ((config.fail_on_invalid and bad) or rejected):
        return
    gone = run.withdrawals.resolve(_source_rows(run))
    for src in run.sources:
        src.quarantine_file = _write_quarantine(config, src.source,
                                                run.quarantined[src.source].filter(~gone.quarantine[src.source]))
    # no package will own these raw rows: the ledger makes retention destroy them
    ledger.record(config.output_root, config.quarantine_dir / config.package_name, config.package_name)
    if rejected and not (config.fail_on_invalid and bad):
        raise DataCheckFailed(
            f"every row of {', '.join(rejected)} failed validation: no package written",
            file=config.path, hint=f"check the source's path and schema in the config; the reasons are in "
            f"the quarantine files in {config.quarantine_dir}")
    raise DataCheckFailed(
        "rows failed validation and fail_on_invalid = true: no package written ("
        + ", ".join(f"{n}: {c:,}" for n, c in bad.items()) + ")",
        file=config.path, hint=f"see the quarantine files in {config.quarantine_dir}, fix the extracts and rerun")


def _link(run: _Run) -> None:
    """4. Every source linked to the person table (the first source), when [linkage] is on."""
    config = run.config
    if not config.linkage:
        return
    with run.timer("link"):
        from tfkit.linkage.review import extract_store

        run.linkage = adapters.link_sources(
            run.valid, run.person_source, config.linkage_model, clean=config.linkage_clean,
            decisions_store=extract_store(config.quarantine_dir))
    if run.linkage is None:
        console.log("nothing_to_link", "linkage: no partner source has any row this period; nothing to link",
                    level="warning")


def _withdraw(run: _Run) -> None:
    """5. A withdrawn person's rows in every source, through every identifier and link of theirs."""
    linkage = run.linkage
    run.gone = run.withdrawals.resolve(_source_rows(run), near=linkage.near_pairs() if linkage else None)
    check_unmatched(run.gone, run.config.consent_unmatched, run.config.withdrawals)
    run.linkage_summary = linkage.summary(run.gone.valid) if linkage else None
    if run.linkage_summary:
        counts = run.linkage_summary["linked_to_person"]
        console.log("linked", "linked to persons: " + ", ".join(f"{n}: {c:,}" for n, c in counts.items()), **counts)


def _pseudonymise(run: _Run, master) -> None:
    """6-7. Withdrawn rows left out, the rest pseudonymised by policy; each source reconciled."""
    config, gone = run.config, run.gone
    linked = run.linkage.linked if run.linkage else {}
    for src, source in zip(run.sources, config.sources, strict=True):
        frame = run.valid.pop(source.name)
        if source.name in linked:
            frame = frame.with_columns(linked[source.name].alias(adapters.LINKED_PERSON))
        elif config.linkage and source.name != run.person_source:  # an empty partner table: the same columns
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(adapters.LINKED_PERSON))
        kept = frame.filter(~gone.valid[source.name])
        del frame
        q_kept = run.quarantined.pop(source.name).filter(~gone.quarantine[source.name])
        rec = src.reconciliation
        rec.withdrawn, rec.quarantined = gone.withdrawn(source.name), q_kept.height
        run.staged_quarantine[source.name] = q_kept  # written in stage 8, once everything else has worked
        policy = adapters.load_policy(source.schema, source.policy or config.policy)
        run.policies[source.name] = adapters.policy_summary(policy)
        run.footers[source.table] = adapters.footer_metadata(master, config.project, policy)
        link_ids = kept.get_column(adapters.LINKED_PERSON) if adapters.LINKED_PERSON in kept.columns else None
        with run.timer("pseudonymise"):
            out = adapters.pseudonymise(kept.drop(adapters.LINKED_PERSON, strict=False), key=master,
                                        project=config.project, policy=policy, la_code=config.la_code)
        if link_ids is not None and source.name != run.person_source:
            out = out.with_columns(adapters.linked_person_pseudonym(master, config.project, config.la_code, link_ids))
        del kept
        rec.rows_out = out.height
        rec.check()  # 7. reconcile: a mismatch is a bug in tfkit, never silently written
        run.tables[source.table] = out
        console.log("source_done",
                    f"{source.name}: {rec.rows_in:,} in = {rec.rows_out:,} out + {rec.quarantined:,} quarantined "
                    f"+ {rec.withdrawn:,} withdrawn", source=source.name,
                    **{k: v for k, v in rec.to_dict().items() if k not in ("source", "table")})


def _disclosure(run: _Run) -> None:
    """The disclosure policy on the person table, then on every other table with quasi-identifiers
    (widened to the person table's levels, linked rows carrying their person's published values,
    each table k-anonymous on its own)."""
    if "person" not in run.tables:
        return
    before = {name: t.height for name, t in run.tables.items()}
    with run.timer("disclosure"):
        run.tables, run.disclosure = adapters.disclosure_check(run.tables, "person", run.config.disclosure)
    after = {name: t.height for name, t in run.tables.items()}
    if after != before:  # suppression nulls values; it must never drop rows
        raise manifest_mod.ReconciliationError(f"disclosure control changed the row counts {before} -> {after}")


def _warn_unmatched(run: _Run) -> None:
    if unmatched := len(run.gone.unmatched):
        console.log("consent_unmatched",
                    f"{unmatched:,} consent-withdrawal entr{'y' if unmatched == 1 else 'ies'} matched no record in any "
                    "source: check the list for typos (listed, masked, in the run report)", level="warning",
                    unmatched_entries=unmatched)


def _package(run: _Run, master, signing_key, run_sha256: str, force: bool) -> Published:
    """9. The package written, audited, reported and published as one step (tfkit.package.publish)."""
    config = run.config
    request = PackageRequest(
        root=config.output_root, tables=run.tables, manifest=_manifest(run, master.fingerprint, run_sha256),
        bag_info=_bag_info(config, master.fingerprint), signing_key=signing_key, audit_log=config.audit_log,
        audit_fields={"key_fingerprint": master.fingerprint,
                      "signer_fingerprint": public_key_fingerprint(signing_key.public_key()),
                      "config_sha256": config.sha256, "run_sha256": run_sha256, "demo": config.demo,
                      "inputs": [{"source": r.input.source, "sha256": r.input.sha256, "rows": r.input.rows}
                                 for r in run.sources]},
        table_metadata=run.footers, bagging_date=run.now.date(), force=force,
        render_report=lambda path, manifest: adapters.render_report(path, RunReport(
            package=config.package_name, manifest=manifest,
            validation={r.source: r.validation for r in run.sources}, disclosure=run.disclosure,
            linkage=run.linkage_summary, consent_unmatched=run.gone.unmatched)),
    )
    with run.timer("package"):
        return write_package(request)


def _write_la_internal(run: _Run) -> None:
    """8. The quarantine files and the clerical-review files (raw values, LA-internal, 0600 in a
    0700 folder), written before the package so a full disk fails the run, not the record of its
    rows; retention destroys them with the package. If packaging then fails they are removed.

    A --force rerun replacing a package first sets that package's files aside (recorded in the
    ledger, so even a killed run leaves them within retention's reach): a failed rerun puts them
    back, a published one deletes them."""
    config = run.config
    folder = config.quarantine_dir / config.package_name
    if folder.is_dir():
        aside = folder.with_name(f".{folder.name}.replaced")
        shutil.rmtree(aside, ignore_errors=True)  # left by a killed rerun (it may have published since): not restored
        ledger.record(config.output_root, aside, "", kind="quarantine")
        folder.rename(aside)
        run.previous_la_internal = aside
    for src in run.sources:
        src.quarantine_file = _write_quarantine(config, src.source, run.staged_quarantine.pop(src.source))
    if run.linkage:  # without withdrawn people, as the quarantine files are
        run.review_files = run.linkage.write_review(folder, run.gone.valid)


def _remove_la_internal(run: _Run) -> None:
    for path in [s.quarantine_file for s in run.sources] + list(run.review_files):
        if path is not None:
            Path(path).unlink(missing_ok=True)
    if run.previous_la_internal is not None:  # the replaced package stays, with its files
        folder = run.config.quarantine_dir / run.config.package_name
        shutil.rmtree(folder, ignore_errors=True)
        run.previous_la_internal.rename(folder)
        ledger.forget(run.config.output_root, run.previous_la_internal)


def _drop_previous_la_internal(run: _Run) -> None:
    if run.previous_la_internal is not None:
        shutil.rmtree(run.previous_la_internal, ignore_errors=True)
        ledger.forget(run.config.output_root, run.previous_la_internal)


def _timer(timings: dict[str, float], progress=None):
    """Times each stage (summed per stage name) and advances the progress bar, if any, past it."""
    @contextlib.contextmanager
    def timer(stage: str):
        if progress is not None:
            progress[0].update(progress[1], description=stage)
        t = time.perf_counter()
        try:
            yield
        finally:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t
            if progress is not None:
                progress[0].advance(progress[1])
    timer.timings = timings  # type: ignore[attr-defined]
    return timer


def _source_rows(run: _Run) -> dict[str, SourceRows]:
    linked = run.linkage.linked if run.linkage else {}
    record_ids = run.linkage.record_ids if run.linkage else {}
    return {name: SourceRows(run.valid[name], run.quarantined[name], run.headers[name], linked.get(name),
                             person_table=name == run.person_source, record_ids=record_ids.get(name))
            for name in run.valid}


def _write_quarantine(config: Config, source: str, rows: pl.DataFrame) -> Path | None:
    """Failing rows with reasons, to the LA-internal quarantine folder (never inside the package)."""
    folder = config.quarantine_dir / config.package_name
    path = folder / f"{source}.quarantine.csv"
    if rows.height == 0:
        path.unlink(missing_ok=True)
        return None
    private_folder(config.quarantine_dir)
    return write_quarantine_csv(rows, path)  # 0600 in a 0700 folder


def _bag_info(config: Config, key_fp: str) -> list[tuple[str, str]]:
    return [
        ("Source-Organization", config.la_code),
        ("External-Identifier", config.package_name),
        ("External-Description", f"Pseudonymised {config.return_type.upper()} return for {config.period}"
                                 + (" (DEMO: synthetic data, demo keys)" if config.demo else "")),
        ("Tfkit-Version", __version__),
        ("Tfkit-Return", config.return_type),
        ("Tfkit-Period", config.period),
        ("Tfkit-Contract", CONTRACT_VERSION),
        ("Tfkit-Project", config.project),
        ("Tfkit-Key-Fingerprint", key_fp),
        ("Tfkit-Demo", "true" if config.demo else "false"),
    ]


def run_fingerprint(config: Config, key_fingerprint: str, signer_fingerprint: str) -> str:
    """SHA-256 over everything a package is made from: tfkit and its dependencies' versions, the
    pseudonym contract, the config, the period, the master and signing keys (fingerprints), and the
    content of every file read (extracts, consent list, schema, policy and linkage-model files, and
    the clerical review decisions when linking).
    Equal fingerprints mean a rerun would write the same data files (they are deterministic)."""
    files: dict[str, str] = {}
    referenced = [s.path for s in config.sources] + [config.withdrawals, config.linkage_model]
    if config.linkage:
        from tfkit.linkage.review import extract_store

        referenced.append(extract_store(config.quarantine_dir))
    referenced += [Path(ref) for s in config.sources for ref in (s.schema, s.policy) if ref]
    referenced += [Path(config.policy)] if config.policy else []
    for path in referenced:
        if path is not None and Path(path).is_file():
            files[str(path)] = bag.sha256_file(Path(path))
    parts = {
        "tool": __version__, "dependencies": manifest_mod.dependency_versions(), "contract": CONTRACT_VERSION,
        "config_sha256": config.sha256, "period": config.period, "key": key_fingerprint, "signer": signer_fingerprint,
        "files": files,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _current_package(config: Config, target: Path, run_sha256: str) -> ExtractResult | None:
    """The existing package when it was made from exactly these inputs (a cron rerun: nothing to
    do), else None. A package made from other inputs is left for check_target to refuse."""
    try:
        existing = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(existing, dict) or existing.get("run_sha256") != run_sha256:
        return None
    from tfkit.package.verify import verify_package

    pub = public_key_path_for(config.signing_key)
    checked = verify_package(target, public_key=pub if pub.is_file() else None, scan_identifiers=False)
    if not checked.ok:  # made from these inputs, but altered or damaged since: never call it current
        console.log("package_damaged", f"{target.name} was made from these inputs but fails verification "
                    f"(tfkit verify {target} shows why)", level="warning", package=str(target))
        return None
    _require_complete(config, target, existing)
    console.log("package_up_to_date",
                f"{target.name} is up to date: it was made from these same inputs, config and keys; nothing to do "
                "(--force rebuilds it)", package=str(target))
    return ExtractResult(
        package=target, report=report_path_for(target), manifest=existing, sources=[],
        demo=bool(existing.get("demo")), up_to_date=True,
        signer_public_key=pub if (pub := public_key_path_for(config.signing_key)).is_file() else None,
    )


def _require_complete(config: Config, target: Path, manifest: dict[str, Any]) -> None:
    """A current package is only "up to date" when its audit entry and report are there too."""
    missing = []
    anchor = (manifest.get("audit") or {}).get("chain_head")
    logged = {e.get("hash") for e in audit.read_entries(config.audit_log)} if config.audit_log.is_file() else set()
    if not anchor or anchor not in logged:
        missing.append(f"its audit entry ({(anchor or 'none recorded')[:16]}...) is not in {config.audit_log}")
    if not report_path_for(target).is_file():
        missing.append(f"its report {report_path_for(target)} is missing")
    if missing:
        raise UsageError(f"package {target.name} was made from these inputs, but " + "; and ".join(missing),
                         file=target, hint="rerun with --force to rebuild it, which writes a new audit entry and "
                         "report (and check tfkit audit verify: the log may have been altered)")


def _manifest(run: _Run, key_fp: str, run_sha256: str) -> Manifest:
    config, withdrawals = run.config, run.withdrawals
    return Manifest(
        project=config.project, la_code=config.la_code, return_type=config.return_type, period=config.period,
        demo=config.demo, created=run.now, retention_days=config.retention_days, key_fingerprint=key_fp,
        config_sha256=config.sha256, contract_version=CONTRACT_VERSION, inputs=[r.input for r in run.sources],
        consent_withdrawals={"list_sha256": withdrawals.sha256, "list_entries": withdrawals.entries,
                             "unmatched_entries": len(run.gone.unmatched),
                             "withdrawn_rows": {r.source: r.reconciliation.withdrawn for r in run.sources}},
        reconciliation=[r.reconciliation for r in run.sources],
        pseudonymisation={"policies": run.policies},
        linkage=run.linkage_summary, disclosure=run.disclosure, run_sha256=run_sha256,
        audit_log=config.audit_log.name,
    )
