"""CLI: `tfkit extract`, `tfkit init`, `tfkit verify`, `tfkit audit verify`, `tfkit retention`.

Thin: parse arguments, call tfkit.pipeline / tfkit.package, render the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tfkit import console
from tfkit.errors import EXIT_DATA, ConfigError, UsageError
from tfkit.commands.keys import AllowTestKeyOption

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="The run's tfkit.toml.")]
JsonOpt = Annotated[Optional[str], typer.Option("--json", metavar="FILE", help="Write a JSON result summary to FILE, or '-' for stdout.")]


def _write_json(target: str | None, data: dict[str, Any]) -> None:
    if target is None:
        return
    text = json.dumps(data, indent=2, default=str) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8")


def _human(json_target: str | None) -> bool:
    """Human output on stdout unless JSON goes there or --quiet is given."""
    return json_target != "-" and not console.MODE.quiet


# --------------------------------------------------------------------------- extract, init


def extract(
    config: ConfigOpt = None,
    period: Annotated[Optional[str], typer.Option("--period", metavar="PERIOD", help="Override the config's period, e.g. 2019-H2.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Run everything on generated demo data with demo keys.")] = False,
    out: Annotated[Path, typer.Option("--out", help="With --demo: the folder for demo inputs, keys and package.")] = Path("demo-output"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package (atomically).")] = False,
    allow_test_key: AllowTestKeyOption = False,
    json_out: JsonOpt = None,
) -> None:
    """Validate, pseudonymise and package a return as a signed BagIt bag (safe to run from cron)."""
    from tfkit.config import load_config
    from tfkit.pipeline import run_demo, run_extract

    if demo:
        if config is not None:
            raise UsageError("--demo runs on generated data: do not pass --config with it")
        result = run_demo(out)
    else:
        if config is None:
            raise UsageError("no config given", hint="pass --config tfkit.toml (make one with: tfkit init), or try --demo")
        result = run_extract(load_config(config).with_period(period), force=force, allow_test_key=allow_test_key)
    _write_json(json_out, result.to_dict())
    if _human(json_out):
        con = console.stdout_console()
        if result.demo:
            con.print("[yellow]DEMO package: synthetic data and demo keys, not for submission.[/yellow]")
        con.print(f"Package: {result.package}" + (" (already up to date: nothing rewritten)" if result.up_to_date else ""))
        con.print(f"Report:  {result.report}")
        for rec in result.manifest["reconciliation"]:
            con.print(f"  {rec['source']}: {rec['rows_in']:,} rows in = {rec['rows_out']:,} out + "
                      f"{rec['quarantined']:,} quarantined + {rec['withdrawn']:,} withdrawn", markup=False)
        _print_disclosure(con, (result.manifest.get("disclosure") or {}).get("published"))
        for s in result.sources:
            if s.quarantine_file:
                con.print(f"  quarantined rows (LA-internal, do not send): {s.quarantine_file}", markup=False)
        con.print(f"Verify it with:\n  {result.verify_command}", markup=False)


def _print_disclosure(con, published: dict | None) -> None:
    """One line on the person table's disclosure check; a failure (policy warn) in bold red."""
    if not published:
        return
    facts = (f"k={published['k']} over {', '.join(published['quasi_identifiers'])}: smallest class "
             f"{published['smallest_class']}, {published['share_below_k']:.1%} of records in classes below k")
    if published.get("k_anonymous"):
        con.print(f"  disclosure: k-anonymous ({facts})", markup=False)
    else:
        con.print(f"[bold red]  DISCLOSURE CHECK FAILED (policy {published['policy']}): {facts}. "
                  "Do not send this package; set [disclosure] policy = \"generalise\" and rerun.[/bold red]")


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config (a folder means FOLDER/tfkit.toml).")] = Path("tfkit.toml"),
) -> None:
    """Write a commented starting config for tfkit extract."""
    from tfkit.config import STARTER_CONFIG

    if path.is_dir():
        path = path / "tfkit.toml"  # `tfkit init DIR` means DIR/tfkit.toml
    if path.exists():
        raise ConfigError("file already exists; refusing to overwrite it", file=path, hint="choose another path")
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    console.log("init", f"wrote {path}: edit it, then run: tfkit extract --config {path}", path=str(path))


# --------------------------------------------------------------------------- verify


def verify(
    package: Annotated[Path, typer.Argument(help="The package folder (a BagIt bag).")],
    public_key: Annotated[Optional[Path], typer.Option("--public-key", help="The signer's public key, held independently of the package.")] = None,
    expect_key_fingerprint: Annotated[Optional[str], typer.Option("--expect-key-fingerprint", metavar="FINGERPRINT", help="The master-key fingerprint the package must have been made with.")] = None,
    json_out: JsonOpt = None,
) -> None:
    """Check a package: checksums, completeness, signature, manifest, reconciliation, no raw identifiers.

    Exit 0 when it verifies, 1 when a check fails, 2 for a path or key that cannot be used.
    """
    from tfkit.package.verify import verify_package

    from tfkit.keys import parse_fingerprint

    report = verify_package(package, public_key=public_key,
                            expect_key_fingerprint=parse_fingerprint(expect_key_fingerprint))
    _write_json(json_out, report.to_dict())
    for check in report.checks:
        level = {"fail": "error", "warn": "warning"}.get(check.status, "info")
        if console.MODE.log_format == "json":
            console.log("verify_check", level=level, code=check.code, status=check.status, check_message=check.message)
    if _human(json_out):
        _render_verify(report)
    if not report.ok:
        raise typer.Exit(EXIT_DATA)


def _render_verify(report) -> None:
    from rich.table import Table

    con = console.stdout_console()
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


audit_app = typer.Typer(help="The hash-chained audit log of runs.", no_args_is_help=True)


def _audit_log_path(log: Path | None, config: Path | None) -> Path:
    if log is not None:
        return log
    if config is not None:
        from tfkit.config import load_config
        return load_config(config).audit_log
    raise UsageError("no audit log given", hint="pass the log's path, or --config tfkit.toml")


@audit_app.command("verify")
def audit_verify(
    log: Annotated[Optional[Path], typer.Argument(help="The audit log (default: from --config).")] = None,
    config: ConfigOpt = None,
    root: Annotated[Optional[Path], typer.Option("--root", help="Also check every package under this folder has its entry.")] = None,
    json_out: JsonOpt = None,
) -> None:
    """Detect edited, removed or reordered audit entries."""
    from tfkit.package.audit import verify_log

    path = _audit_log_path(log, config)
    if root is None and config is not None:
        from tfkit.config import load_config
        root = load_config(config).output_root
    report = verify_log(path, packages_root=root)
    _write_json(json_out, report.to_dict())
    for p in report.problems:
        console.log("audit_problem", f"{p.message}", level="error", code=p.code, line=p.line)
    if _human(json_out):
        con = console.stdout_console()
        if report.ok:
            con.print(f"[green]audit log intact[/green]: {report.entries} entries, chain head {report.head[:16]}...")
        else:
            con.print(f"[bold red]audit log FAILED[/bold red]: {len(report.problems)} problem(s) in {report.entries} entries")
    if not report.ok:
        raise typer.Exit(EXIT_DATA)


# --------------------------------------------------------------------------- retention


retention_app = typer.Typer(help="List packages past their destroy_after date (`tfkit retention purge --yes` deletes them).",
                            invoke_without_command=True)


def _retention_paths(root: Path | None, config: Path | None) -> tuple[Path, Path]:
    if config is not None:
        from tfkit.config import load_config
        cfg = load_config(config)
        return (root or cfg.output_root), cfg.audit_log
    if root is None:
        raise UsageError("no output folder given", hint="pass --root DIR or --config tfkit.toml")
    return root, root / "audit.jsonl"


RootOpt = Annotated[Optional[Path], typer.Option("--root", help="The output root holding packages.")]


@retention_app.callback()
def retention_list(
    ctx: typer.Context,
    root: RootOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """List packages past their destroy_after date (`tfkit retention purge --yes` deletes them)."""
    if ctx.invoked_subcommand is not None:
        return
    from tfkit.package.retention import due_packages

    from tfkit.validation import ledger

    root_path, _ = _retention_paths(root, config)
    due = due_packages(root_path)
    quarantines = ledger.due(root_path)  # raw rows failed runs left behind
    _write_json(json_out, {"root": str(root_path), "due": [p.to_dict() for p in due],
                           "quarantine_due": [q.to_dict() for q in quarantines]})
    if _human(json_out):
        con = console.stdout_console()
        if not due:
            con.print(f"no package under {root_path} is past its destroy_after date")
        for p in due:
            con.print(f"{p.path.name}  destroy_after {p.destroy_after}" + ("  (demo)" if p.demo else ""), markup=False)
        for q in quarantines:
            con.print(f"quarantine of a failed run {q.folder}  destroy_after {q.destroy_after}", markup=False)


@retention_app.command("purge")
def retention_purge(
    root: RootOpt = None,
    config: ConfigOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking (required when not at a terminal).")] = False,
) -> None:
    """Delete packages past their destroy_after date and record each deletion in the audit log."""
    from tfkit.package.publish import output_lock
    from tfkit.package.retention import due_packages, purge

    from tfkit.validation import ledger

    root_path, audit_log = _retention_paths(root, config)
    due = due_packages(root_path)
    quarantines = ledger.due(root_path)
    if quarantines and not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{len(quarantines)} quarantine folder(s) of failed runs due for destruction; refusing "
                             "to delete without --yes when not at a terminal", hint="rerun with --yes")
        quarantines = quarantines if typer.confirm(f"Delete {len(quarantines)} quarantine folder(s) of failed runs?") else []
    if quarantines:
        for q in ledger.purge_due(root_path, audit_log):
            console.log("retention_purged_quarantine", f"deleted {q.folder} (quarantine of a failed run)",
                        folder=str(q.folder))
    if not due:
        console.log("retention", f"nothing to purge under {root_path}", root=str(root_path))
        return
    names = ", ".join(p.path.name for p in due)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{len(due)} package(s) due for destruction; refusing to delete without --yes "
                             "when not at a terminal", hint="rerun with --yes")
        if not typer.confirm(f"Delete {len(due)} package(s): {names}?"):
            console.log("retention", "nothing deleted")
            return
    # The quarantine folder (raw rows) is only known from the config: without it, say what stays behind.
    quarantine_root = None
    if config is not None:
        from tfkit.config import load_config
        quarantine_root = load_config(config).quarantine_dir
    else:
        console.log("retention_quarantine_kept",
                    "warning: without --config the packages' quarantine folders (raw rows) are not found and "
                    "not deleted; rerun with --config tfkit.toml, or delete them by hand", level="warning")
    purged = []
    for entry in due:
        with output_lock(root_path, entry.path.name):  # never delete a package a run is replacing
            purged += purge([entry], audit_log, quarantine_root)
    console.log("retention_purged", f"deleted {len(purged)} package(s): {', '.join(purged)}", packages=purged)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("init")(init)
    app.command("verify")(verify)
    app.add_typer(audit_app, name="audit")
    app.add_typer(retention_app, name="retention")
