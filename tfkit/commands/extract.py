"""CLI: `tfkit extract`, `tfkit init`, `tfkit verify`, `tfkit audit verify`, `tfkit retention`.

Thin: parse arguments, call tfkit.pipeline / tfkit.package, render the result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tfkit import console
from tfkit.commands.options import (AllowTestKeyOpt, ConfigOpt, FingerprintOpt, JsonOpt, check_json_target, emit,
                                   wants_text)
from tfkit.errors import EXIT_DATA, ConfigError, UsageError

if TYPE_CHECKING:
    from rich.console import Console


# --------------------------------------------------------------------------- extract, init


def extract(
    config: ConfigOpt = None,
    period: Annotated[Optional[str], typer.Option("--period", metavar="PERIOD", help="Override the config's period, e.g. 2019-H2.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Run everything on generated demo data with demo keys.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="With --demo: the folder for demo inputs, keys and package.")] = Path("demo-output"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package (atomically).")] = False,
    allow_test_key: AllowTestKeyOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """The six-monthly return: validate, link, withdraw consent, pseudonymise, check disclosure, and
    package it as a signed BagIt bag (safe to run from cron).

    Each source is validated against its schema (invalid rows go to a private quarantine folder with
    their reasons); sources are linked to the cohort when the config's linkage table is on; people on the withdrawal
    list are removed from every source; identifiers become keyed pseudonyms and match keys; the
    disclosure policy (generalise by default) generalises, warns or fails on records in classes smaller than k; the package
    is written atomically, signed, logged in the audit chain, and a report is written beside it.
    A rerun with the same inputs finds the package up to date; changed inputs need --force.

    \b
    Examples:
      tfkit extract --demo --out demo-output
      tfkit extract --config tfkit.toml --period 2019-H2
      tfkit --log-format json extract -c tfkit.toml --json run.json    # from cron
    """
    from tfkit.config import load_config
    from tfkit.pipeline import run_demo, run_extract

    check_json_target(json_out, inputs=[config] if config else ())
    if demo:
        if config is not None:
            raise UsageError("--demo runs on generated data: do not pass --config with it")
        check_json_target(json_out, inside=Path(out) / "packages")  # the package must not change after signing
        result = run_demo(out)
    else:
        if config is None:
            raise UsageError("no config given", hint="pass --config tfkit.toml (make one with: tfkit init), or try --demo")
        cfg = load_config(config).with_period(period)
        check_json_target(json_out, inside=cfg.package_dir)
        result = run_extract(cfg, force=force, allow_test_key=allow_test_key)
    emit(result, json_out, event="extract_done", render=lambda con: _render_extract(con, result),
         log_fields={"package": str(result.package), "up_to_date": result.up_to_date})


def _render_extract(con: "Console", result) -> None:
    if result.demo:
        con.print("[yellow]DEMO package: synthetic data and demo keys, not for submission.[/yellow]")
    con.print(f"Package: {result.package}" + (" (already up to date: nothing rewritten)" if result.up_to_date else ""))
    con.print(f"Report:  {result.report}")
    for rec in result.manifest["reconciliation"]:
        con.print(f"  {rec['source']}: {rec['rows_in']:,} rows in = {rec['rows_out']:,} out + "
                  f"{rec['quarantined']:,} quarantined + {rec['withdrawn']:,} withdrawn", markup=False)
    _print_disclosure(con, result.manifest.get("disclosure") or {})
    for s in result.sources:
        if s.quarantine_file:
            con.print(f"  quarantined rows (LA-internal, do not send): {s.quarantine_file}", markup=False)
    for path in result.review_files:
        con.print(f"  pairs for clerical review (LA-internal, do not send): {path}", markup=False)
    con.print(f"Verify it with:\n  {result.verify_command}", markup=False)


def _print_disclosure(con, disclosure: dict) -> None:
    """One line per table on its disclosure check (the manifest's `tables`; a package made before
    them has the person table's `published` only); a failure (policy warn) in bold red."""
    tables = disclosure.get("tables") or ({"person": disclosure["published"]} if disclosure.get("published") else {})
    for name, published in tables.items():
        if not published.get("records"):
            con.print(f"  disclosure, {name}: no records", markup=False)
            continue
        facts = (f"k={published['k']} over {', '.join(published['quasi_identifiers'])}: smallest class "
                 f"{published['smallest_class']}{' people' if published.get('person_key') else ''}, "
                 f"{published['share_below_k']:.1%} of records in classes below k"
                 + (f", {published['share_suppressed']:.1%} blanked" if published.get("share_suppressed") else ""))
        if published.get("k_anonymous"):
            con.print(f"  disclosure, {name}: k-anonymous ({facts})", markup=False)
        else:
            con.print(f"  DISCLOSURE CHECK FAILED for {name} (policy {published['policy']}): {facts}. "
                      "Do not send this package; set [disclosure] policy = \"generalise\" and rerun.",
                      style="bold red", markup=False)


def init(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Where to write the config (a folder means FOLDER/tfkit.toml).")] = Path("tfkit.toml"),
) -> None:
    """Write a commented starting config for tfkit extract.

    \b
    Examples:
      tfkit init
      tfkit init returns/2019-H2/tfkit.toml
    """
    from tfkit.config import STARTER_CONFIG

    if path.is_dir():
        path = path / "tfkit.toml"  # `tfkit init DIR` means DIR/tfkit.toml
    if path.exists():
        raise ConfigError("file already exists; refusing to overwrite it", file=path, hint="choose another path")
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    console.log("init", f"wrote {path}: edit it, then run: tfkit extract --config {path}", path=str(path))


# --------------------------------------------------------------------------- verify


def verify(
    package: Annotated[Path, typer.Argument(metavar="PACKAGE", help="The package folder (a BagIt bag).")],
    public_key: Annotated[Optional[Path], typer.Option("--public-key", metavar="FILE", help="The signer's public key, held independently of the package.")] = None,
    expect_key_fingerprint: FingerprintOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Check a package: checksums, completeness, signature, manifest, reconciliation, no raw identifiers.

    Exit 0 when it verifies, 1 when a check fails, 2 for a path or key that cannot be used.

    \b
    Examples:
      tfkit verify packages/E09000031_nis_2019-H2 --public-key keys/signing.pub
      tfkit verify PACKAGE --public-key signing.pub --expect-key-fingerprint FINGERPRINT --json verify.json
    """
    from tfkit.package.verify import verify_package

    check_json_target(json_out, inside=package)
    report = verify_package(package, public_key=public_key, expect_key_fingerprint=expect_key_fingerprint)
    if console.MODE.log_format == "json":
        for check in report.checks:
            level = {"fail": "error", "warn": "warning"}.get(check.status, "info")
            console.log("verify_check", level=level, code=check.code, status=check.status, check_message=check.message)
    elif not wants_text(json_out):  # no table on stdout (--quiet, --json -): a failure still says why
        for check in report.failures:
            console.log("verify_check", f"FAIL {check.code}: {check.message}", level="error", code=check.code)
    emit(report, json_out, event="verified", render=lambda con: _render_verify(con, report),
         log_fields={"package": str(package), "ok": report.ok}, ok=report.ok)
    if not report.ok:
        raise typer.Exit(EXIT_DATA)


def _render_verify(con: "Console", report) -> None:
    from rich.table import Table

    table = Table(title=f"tfkit verify {report.package}", show_lines=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    style = {"pass": "green", "warn": "yellow", "fail": "bold red"}
    for c in report.checks:
        table.add_row(c.code, f"[{style[c.status]}]{c.status.upper()}[/]", c.message)
        for extra in c.details[1:6]:
            table.add_row("", "", extra)
    con.print(table)
    if report.ok:
        verdict = "VERIFIED" + (" (DEMO package)" if report.demo else "")
        if not report.authenticated:
            verdict += ": integrity only; pass --public-key to prove who signed it"
        con.print(f"[green]{verdict}[/green]")
    else:
        con.print(f"[bold red]FAILED: {len(report.failures)} check(s) failed[/bold red]")


# --------------------------------------------------------------------------- audit


audit_app = typer.Typer(help="The signed, hash-chained audit log of runs: verify it, or show its entries.",
                        no_args_is_help=True)
LogArg = Annotated[Optional[Path], typer.Argument(metavar="LOG", help="The audit log (default: from --config).")]
PublicKeyOpt = Annotated[Optional[Path], typer.Option(
    "--public-key", metavar="FILE",
    help="The signer's public key, held independently (default: the .pub beside --config's signing key).")]


def _audit_log_path(log: Path | None, config: Path | None) -> Path:
    if log is not None:
        return log
    if config is not None:
        from tfkit.config import load_config
        return load_config(config).audit_log
    raise UsageError("no audit log given", hint="pass the log's path, or --config tfkit.toml")


def _signer_public_key(public_key: Path | None, config: Path | None) -> Path | None:
    if public_key is not None or config is None:
        return public_key
    from tfkit.config import load_config
    from tfkit.package.signing import public_key_path_for

    signing = load_config(config).signing_key
    pub = public_key_path_for(signing) if signing is not None else None
    return pub if pub is not None and pub.is_file() else None


@audit_app.command("verify")
def audit_verify(
    log: LogArg = None,
    config: ConfigOpt = None,
    root: Annotated[Optional[Path], typer.Option("--root", metavar="DIR", help="Also check every package under this folder has its entry.")] = None,
    public_key: PublicKeyOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Detect edited, forged, removed, reordered or truncated audit entries.

    With the signer's public key every entry's signature and the signed checkpoint are checked too.

    \b
    Examples:
      tfkit audit verify --config tfkit.toml
      tfkit audit verify packages/audit.jsonl --root packages --public-key keys/signing.pub --json -
    """
    from tfkit.package.audit import verify_log

    path = _audit_log_path(log, config)
    if root is None and config is not None:
        from tfkit.config import load_config
        root = load_config(config).output_root
    report = verify_log(path, packages_root=root, public_key=_signer_public_key(public_key, config))
    for p in report.problems:
        console.log("audit_problem", f"{p.message}", level="error", code=p.code, line=p.line)
    if not report.authenticated:
        console.log("audit_unauthenticated", "warning: signatures not checked (no --public-key): forged entries "
                    "cannot be ruled out", level="warning")

    def render(con: "Console") -> None:
        if report.ok:
            con.print(f"[green]audit log intact[/green]: {report.entries} entries, chain head {report.head[:16]}..."
                      + ("" if report.authenticated else " (signatures not checked)"))
        else:
            con.print(f"[bold red]audit log FAILED[/bold red]: {len(report.problems)} problem(s) in {report.entries} entries")

    emit(report, json_out, event="audit_verified", render=render, log_fields={"ok": report.ok}, ok=report.ok)
    if not report.ok:
        raise typer.Exit(EXIT_DATA)


@audit_app.command("show")
def audit_show(log: LogArg = None, config: ConfigOpt = None, json_out: JsonOpt = None) -> None:
    """List the audit log's entries (tfkit audit verify checks them).

    \b
    Examples:
      tfkit audit show --config tfkit.toml
      tfkit audit show packages/audit.jsonl --json -
    """
    from tfkit.errors import InputFileError
    from tfkit.package.audit import read_log

    path = _audit_log_path(log, config)
    if not path.is_file():
        raise InputFileError("audit log not found", file=path, hint="pass the log's path, or --config")
    entries = read_log(path)

    def render(con: "Console") -> None:
        from rich.table import Table

        table = Table(title=f"tfkit audit show {path}")
        for column in ("seq", "time", "event", "package", "user", "hash"):
            table.add_column(column, overflow="fold")  # an auditor reads whole names and times, not "E09000031_ni…"
        for e in entries:
            table.add_row(str(e.get("seq")), str(e.get("time")), str(e.get("event")), str(e.get("package", "")),
                          str(e.get("user", "")), str(e.get("hash", ""))[:16])
        con.print(table)

    emit({"path": str(path), "entries": entries}, json_out, event="audit_shown", render=render,
         log_fields={"entries": len(entries)})


# --------------------------------------------------------------------------- retention


retention_app = typer.Typer(invoke_without_command=True)
RootOpt = Annotated[Optional[Path], typer.Option("--root", metavar="DIR", help="The output root holding packages.")]


def _retention_paths(root: Path | None, config: Path | None) -> tuple[Path, Path]:
    if config is not None:
        from tfkit.config import load_config
        cfg = load_config(config)
        return (root or cfg.output_root), cfg.audit_log
    if root is None:
        raise UsageError("no output folder given", hint="pass --root DIR or --config tfkit.toml")
    return root, root / "audit.jsonl"


def _render_unverifiable(unverifiable) -> None:
    for p in unverifiable:
        console.log("retention_unverifiable_listed", f"unverifiable (never purged): {p.path.name}: {p.problem}\n  hint: {p.hint}",
                    level="warning", package=p.path.name)


@retention_app.callback()
def retention_list(
    ctx: typer.Context,
    root: RootOpt = None,
    config: ConfigOpt = None,
    public_key: PublicKeyOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """List packages past their signed destroy_after date, and those that do not verify
    (`tfkit retention purge --yes` deletes the verified ones).

    \b
    Examples:
      tfkit retention --config tfkit.toml
      tfkit retention --root packages --public-key keys/signing.pub
      tfkit retention purge --config tfkit.toml --yes    # from cron
    """
    if ctx.invoked_subcommand is not None:
        return
    from tfkit.package.retention import due_packages

    from tfkit.validation import ledger

    root_path, _ = _retention_paths(root, config)
    due, unverifiable = due_packages(root_path, public_key=_signer_public_key(public_key, config))
    quarantines = ledger.due(root_path)  # raw rows that failed runs left behind

    def render(con: "Console") -> None:
        if not due:
            con.print(f"no verified package under {root_path} is past its destroy_after date", markup=False)
        for p in due:
            con.print(f"{p.path.name}  destroy_after {p.destroy_after}" + ("  (demo)" if p.demo else ""), markup=False)
        for p in unverifiable:
            con.print(f"{p.path.name}  unverifiable: {p.problem}\n  hint: {p.hint}", markup=False)
        for q in quarantines:
            con.print(f"{q.description} {q.folder}  destroy_after {q.destroy_after}", markup=False)

    emit({"root": str(root_path), "due": [p.to_dict() for p in due],
          "unverifiable": [p.to_dict() for p in unverifiable], "quarantine_due": [q.to_dict() for q in quarantines]},
         json_out, event="retention_listed", render=render,
         log_fields={"due": len(due), "unverifiable": len(unverifiable), "quarantine_due": len(quarantines)},
         ok=not unverifiable)
    if unverifiable:  # cron must hear of a package that fails verification: exit 1, as verify does
        raise typer.Exit(EXIT_DATA)


@retention_app.command("purge")
def retention_purge(
    root: RootOpt = None,
    config: ConfigOpt = None,
    public_key: PublicKeyOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking (required when not at a terminal).")] = False,
) -> None:
    """Delete verified packages past their signed destroy_after date, recording each in the audit log.

    Needs --config: its signing key signs the audit entries. Packages that do not verify are never deleted.

    \b
    Examples:
      tfkit retention purge --config tfkit.toml
      tfkit retention purge --config tfkit.toml --yes    # from cron
    """
    from tfkit.config import load_config
    from tfkit.package.retention import due_packages, purge

    if config is None:
        raise UsageError("retention purge needs --config: the signing key it names signs each deletion's audit entry",
                         hint="rerun with --config tfkit.toml")
    cfg = load_config(config)
    if cfg.signing_key is None:
        raise UsageError("no signing key configured: each deletion's audit entry must be signed", file=config,
                         key="signing.key_file", hint="set [signing] key_file")
    root_path, audit_log = _retention_paths(root, config)
    due, unverifiable = due_packages(root_path, public_key=_signer_public_key(public_key, config))  # each warned
    _purge_failed_run_quarantines(root_path, audit_log, cfg.signing_key, yes)
    if not due:
        console.log("retention", f"no package due for destruction under {root_path}", root=str(root_path))
    elif not _confirmed(yes, f"{len(due)} package(s) due for destruction", f"Delete {len(due)} package(s): "
                        + ", ".join(p.path.name for p in due) + "?"):
        console.log("retention", "nothing deleted")
    else:
        purged = purge(due, audit_log, cfg.signing_key, cfg.quarantine_dir)
        console.log("retention_purged", f"deleted {len(purged)} package(s): {', '.join(purged)}", packages=purged)
    if unverifiable:  # never purged; cron must hear of them: exit 1, as verify does
        raise typer.Exit(EXIT_DATA)


def _confirmed(yes: bool, what: str, question: str) -> bool:
    """--yes, or a person's yes at a terminal; never a prompt in cron (exit 2 instead)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{what}; refusing to delete without --yes when not at a terminal", hint="rerun with --yes")
    return typer.confirm(question)


def _purge_failed_run_quarantines(root_path: Path, audit_log: Path, signing_key: Path, yes: bool) -> None:
    """The quarantine ledger's due folders (raw rows of failed runs), deleted with --yes or on confirmation."""
    from tfkit.validation import ledger

    quarantines = ledger.due(root_path)
    if not quarantines or not _confirmed(yes, f"{len(quarantines)} folder(s) of raw rows (failed runs' quarantine, "
                                              "link review files) due for destruction",
                                         f"Delete {len(quarantines)} folder(s) of raw rows left outside packages?"):
        return
    for q in ledger.purge_due(root_path, audit_log, signing_key):
        console.log("retention_purged_quarantine", f"deleted {q.folder} ({q.description})", folder=str(q.folder),
                    kind=q.kind)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("init")(init)
    app.command("verify")(verify)
    app.add_typer(audit_app, name="audit")
    app.add_typer(retention_app, name="retention")
