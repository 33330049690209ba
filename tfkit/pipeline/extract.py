"""`tfkit extract`: sources in, a signed, verified-ready BagIt package out.

Stages, in order (each a function below):
  1. keys        load the master key and the signing key first: fail before any work
  2. read        each source file, hashed and counted (rows_in)
  3. validate    typed canonical rows; failures quarantined (or the run stopped: fail_on_invalid)
  4. link        sources into persons, when a linkage model is configured
  5. withdraw    consent withdrawals removed, by any identifier, before pseudonymisation; counted only
  6. pseudonymise by policy, under the master key and project
  7. reconcile   rows_in = rows_out + quarantined + withdrawn (+ excluded), asserted per source
  8. package     bag written in a staging directory, signed, fsynced, renamed into place under a lock
  9. audit       an entry appended to the hash-chained audit log; report.html written beside the bag
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tfkit import __version__, console
from tfkit.config import Config
from tfkit.errors import DataCheckFailed, KeyFileError
from tfkit.package import audit, bag
from tfkit.package import manifest as manifest_mod
from tfkit.package.build import build_bag
from tfkit.package.manifest import InputFile, Reconciliation
from tfkit.package.publish import check_target, clean_stale_staging, new_staging_dir, output_lock, publish
from tfkit.package.signing import load_signing_key, public_key_fingerprint, public_key_path_for
from tfkit.pipeline import adapters
from tfkit.pipeline.consent import SourceRows, check_unmatched, load_withdrawals
from tfkit.pseudonymise.contract import CONTRACT_VERSION, KEY_ENV_VAR, load_key_file
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
    timings: dict[str, float] = {}
    timer = _timer(timings, progress)
    started = time.perf_counter()
    target = config.package_dir
    # 1. keys, and the cheap refusals, before any work
    if config.key_file is None and not os.environ.get(KEY_ENV_VAR):
        raise KeyFileError("no master key configured", file=config.path, column="pseudonymise.key_file",
                           hint="set [pseudonymise] key_file (or TFKIT_KEY_FILE); make one with: tfkit keys generate --out FILE")
    master = load_key_file(config.key_file, allow_test_key=allow_test_key)
    if config.signing_key is None:
        raise KeyFileError("no signing key configured", file=config.path, column="signing.key_file",
                           hint="make a pair with: tfkit keys generate --signing --out FILE, and set [signing] key_file")
    signing_key = load_signing_key(config.signing_key)
    run_sha256 = run_fingerprint(config, master.fingerprint, public_key_fingerprint(signing_key.public_key()))
    if not force and (current := _current_package(config, target, run_sha256)) is not None:
        return current
    check_target(target, force)

    with output_lock(config.output_root, config.package_name):
        for stale in clean_stale_staging(config.output_root, config.package_name):
            console.log("staging_removed", f"removed {stale.name}, left by an interrupted run", stale=stale.name)
        if not force and (current := _current_package(config, target, run_sha256)) is not None:
            return current  # another run made it while this one waited for the lock
        check_target(target, force)
        withdrawals = load_withdrawals(config.withdrawals)

        # 2-3. read and validate
        runs: list[SourceRun] = []
        valid: dict[str, pl.DataFrame] = {}
        quarantined: dict[str, pl.DataFrame] = {}
        headers: dict[str, dict[str, str]] = {}
        for source in config.sources:
            schema = adapters.load_source_schema(source.schema)
            with timer("read"):
                raw = adapters.read_source(source.path, source.encoding, schema)
            digest = bag.sha256_file(source.path)
            inp = InputFile(source.name, source.path.name, source.schema, digest, source.path.stat().st_size, raw.n_rows)
            console.log("source_read", f"read {source.name}: {raw.n_rows:,} rows from {source.path.name}",
                        source=source.name, rows=raw.n_rows, sha256=digest)
            with timer("validate"):
                checked = adapters.validate_source(raw, schema)
                del raw  # the text copy of the file is no longer needed: let it go before the valid rows are taken
                valid[source.name], quarantined[source.name] = checked.valid, checked.quarantine
            headers[source.name] = checked.canonical_names
            runs.append(SourceRun(source.name, source.table, inp, Reconciliation(source.name, source.table, inp.rows),
                                  validation=checked.summary))
            del checked
        bad = {name: q.height for name, q in quarantined.items() if q.height}
        # A source with no valid row at all is the wrong file or schema: never sign an empty return.
        rejected = [name for name, q in quarantined.items() if q.height and not valid[name].height]
        if (config.fail_on_invalid and bad) or rejected:
            gone = withdrawals.resolve(_source_rows(config, valid, quarantined, headers))
            for run in runs:
                run.quarantine_file = _write_quarantine(config, run.source,
                                                        quarantined[run.source].filter(~gone.quarantine[run.source]))
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

        # 4. link every source to the person table (the first source)
        linkage, linked = None, {}
        person_source = config.sources[0].name
        if config.linkage:
            with timer("link"):
                linkage = adapters.link_sources(valid, person_source, config.linkage_model)
                linked = linkage.linked
        # 5. withdraw: a withdrawn person's rows in every source, through every identifier and link of theirs
        gone = withdrawals.resolve(_source_rows(config, valid, quarantined, headers, linkage),
                                   near=linkage.near_pairs() if linkage else None)
        check_unmatched(gone, config.consent_unmatched, config.withdrawals)
        linkage_summary = linkage.summary(gone.valid) if linkage else None
        if linkage_summary:
            console.log("linked", "linked to persons: " + ", ".join(
                f"{n}: {c:,}" for n, c in linkage_summary["linked_to_person"].items()), **linkage_summary["linked_to_person"])

        # 5-6. withdraw, then pseudonymise
        tables: dict[str, pl.DataFrame] = {}
        policies: dict[str, Any] = {}
        footers: dict[str, dict[str, str]] = {}
        staged_quarantine: dict[str, pl.DataFrame] = {}
        for run, source in zip(runs, config.sources, strict=True):
            frame = valid.pop(source.name)
            if source.name in linked:
                frame = frame.with_columns(linked[source.name].alias(adapters.LINKED_PERSON))
            kept = frame.filter(~gone.valid[source.name])
            del frame
            q_kept = quarantined.pop(source.name).filter(~gone.quarantine[source.name])
            rec = run.reconciliation
            rec.withdrawn, rec.quarantined = gone.withdrawn(source.name), q_kept.height
            staged_quarantine[source.name] = q_kept  # written once the package is published
            policy = adapters.load_policy(source.schema, source.policy or config.policy)
            policies[source.name] = adapters.policy_summary(policy)
            footers[source.table] = adapters.footer_metadata(master, config.project, policy)
            link_ids = kept.get_column(adapters.LINKED_PERSON) if adapters.LINKED_PERSON in kept.columns else None
            with timer("pseudonymise"):
                out = adapters.pseudonymise(kept.drop(adapters.LINKED_PERSON, strict=False), key=master,
                                            project=config.project, policy=policy, la_code=config.la_code)
            if link_ids is not None and source.name != person_source:
                out = out.with_columns(adapters.linked_person_pseudonym(master, config.project, config.la_code, link_ids))
            del kept
            rec.rows_out = out.height
            # 7. reconcile: a mismatch is a bug in tfkit, never silently written
            rec.check()
            tables[source.table] = out
            console.log("source_done",
                        f"{source.name}: {rec.rows_in:,} in = {rec.rows_out:,} out + {rec.quarantined:,} quarantined "
                        f"+ {rec.withdrawn:,} withdrawn", source=source.name, **{k: v for k, v in rec.to_dict().items()
                                                                               if k not in ("source", "table")})

        disclosure: dict[str, Any] = {}
        if "person" in tables:
            before = tables["person"].height
            with timer("disclosure"):
                tables["person"], disclosure = adapters.disclosure_check(tables["person"], config.disclosure_policy,
                                                                                 config.disclosure_settings)
            if tables["person"].height != before:  # suppression nulls values; it must never drop rows
                raise manifest_mod.ReconciliationError(f"disclosure control changed the row count {before} -> {tables['person'].height}")

        if unmatched := len(gone.unmatched):
            console.log("consent_unmatched",
                        f"{unmatched:,} consent-withdrawal entr{'y' if unmatched == 1 else 'ies'} matched no record in any "
                        "source: check the list for typos (listed, masked, in the run report)", level="warning",
                        unmatched_entries=unmatched)

        # 8. package
        head = audit.chain_head(config.audit_log)
        manifest = _manifest(config, runs, policies, withdrawals, len(gone.unmatched), disclosure, linkage_summary,
                             master.fingerprint, head, now)
        manifest["run_sha256"] = run_sha256
        staging = new_staging_dir(config.output_root, config.package_name)
        try:
            with timer("package"):
                built = build_bag(staging, tables=tables, manifest=manifest, bag_info=_bag_info(config, master.fingerprint),
                                  signing_key=signing_key, bagging_date=now.date(), table_metadata=footers)
                publish(staging, target, force)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        for run in runs:  # the package is published: its quarantine files go with it (retention purges both)
            run.quarantine_file = _write_quarantine(config, run.source, staged_quarantine.pop(run.source))

        # 9. audit and report
        audit.append(
            config.audit_log, "extract", package=target.name, tagmanifest_sha256=built.tagmanifest_sha256,
            key_fingerprint=master.fingerprint, signer_fingerprint=built.manifest["signer"]["fingerprint"],
            config_sha256=config.sha256, demo=config.demo,
            inputs=[{"source": r.input.source, "sha256": r.input.sha256, "rows": r.input.rows} for r in runs],
            outputs=[{"path": o["path"], "sha256": o["sha256"], "rows": o["rows"]} for o in built.outputs],
        )
    report_path = target.parent / f"{target.name}.report.html"
    adapters.render_report(report_path, {
        "package": target.name, "manifest": built.manifest,
        "validation": {r.source: r.validation for r in runs}, "disclosure": disclosure, "linkage": linkage_summary,
        "consent_unmatched": gone.unmatched,
    })
    timings["total"] = time.perf_counter() - started
    timings = {k: round(v, 3) for k, v in timings.items()}
    console.log("package_written", f"package written: {target}", package=str(target), report=str(report_path),
                demo=config.demo, seconds=timings)
    pub = public_key_path_for(config.signing_key)
    return ExtractResult(target, report_path, built.manifest, runs, config.demo,
                         signer_public_key=pub if pub.is_file() else None, timings=timings)


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
    return timer


def _source_rows(config: Config, valid: dict[str, pl.DataFrame], quarantined: dict[str, pl.DataFrame],
                 headers: dict[str, dict[str, str]], linkage=None) -> dict[str, SourceRows]:
    person_source = config.sources[0].name
    linked = linkage.linked if linkage else {}
    record_ids = linkage.record_ids if linkage else {}
    return {name: SourceRows(valid[name], quarantined[name], headers[name], linked.get(name),
                             person_table=name == person_source, record_ids=record_ids.get(name)) for name in valid}


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
    content of every file read (extracts, consent list, schema, policy and linkage-model files).
    Equal fingerprints mean a rerun would write the same data files (they are deterministic)."""
    files: dict[str, str] = {}
    referenced = [s.path for s in config.sources] + [config.withdrawals, config.linkage_model]
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
    console.log("package_up_to_date",
                f"{target.name} is up to date: it was made from these same inputs, config and keys; nothing to do "
                "(--force rebuilds it)", package=str(target))
    return ExtractResult(
        package=target, report=target.parent / f"{target.name}.report.html", manifest=existing, sources=[],
        demo=bool(existing.get("demo")), up_to_date=True,
        signer_public_key=pub if (pub := public_key_path_for(config.signing_key)).is_file() else None,
    )


def _manifest(config: Config, runs: list[SourceRun], policies: dict[str, Any], withdrawals, unmatched: int, disclosure,
              linkage_summary, key_fp: str, chain_head: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "format": manifest_mod.MANIFEST_FORMAT,
        "tool": {"name": "tfkit", "version": __version__},
        "dependencies": manifest_mod.dependency_versions(),
        "contract_version": CONTRACT_VERSION,
        "project": config.project,
        "la_code": config.la_code,
        "return": config.return_type,
        "period": config.period,
        "demo": config.demo,
        "created": now.isoformat(timespec="seconds"),
        "retention": {"days": config.retention_days,
                      "destroy_after": manifest_mod.destroy_after(now, config.retention_days)},
        "key_fingerprint": key_fp,
        "config_sha256": config.sha256,
        "inputs": [r.input.__dict__ for r in runs],
        "consent_withdrawals": {"list_sha256": withdrawals.sha256, "list_entries": withdrawals.entries,
                                "unmatched_entries": unmatched,
                                "withdrawn_rows": {r.source: r.reconciliation.withdrawn for r in runs}},
        "reconciliation": [r.reconciliation.to_dict() for r in runs],
        "pseudonymisation": {"policies": policies},
        "linkage": linkage_summary,
        "disclosure": disclosure,
        "audit": {"log": config.audit_log.name, "chain_head": chain_head},
    }
