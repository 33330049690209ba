"""`tfkit review apply`: record a reviewer's accept/reject decisions for the next link and extract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tfkit.commands.options import ConfigOpt, JsonOpt, check_json_target, emit

review_app = typer.Typer(help="Clerical review of uncertain pairs: record decisions for the next run.",
                         no_args_is_help=True)


@review_app.command("apply")
def apply(
    decisions: Annotated[Path, typer.Argument(metavar="DECISIONS", help="The review.csv or review.xlsx tfkit wrote, with its decision column filled in (accept or reject; blank: not decided).", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="The tfkit link output folder the review file came from.")] = None,
    config: ConfigOpt = None,
    audit_log: Annotated[Optional[Path], typer.Option("--audit-log", metavar="FILE", help="Audit log to record the decisions in (default: the config's, or DIR/audit.jsonl).")] = None,
    signing_key: Annotated[Optional[Path], typer.Option("--signing-key", metavar="FILE", help="Signing key for the audit entry (default: the config's [signing] key_file).")] = None,
    json_out: JsonOpt = None,
) -> None:
    """Record accept/reject decisions: the next `tfkit link` (same --out) and `tfkit extract` apply
    them as forced links and forced non-links.

    \b
    Examples:
      tfkit review apply linked/review/review.xlsx --out linked/ --signing-key keys/signing.key
      tfkit review apply quarantine/E09000031_nis_2019-H2/review.csv --config tfkit.toml
    """
    from tfkit.linkage.review import apply_review

    check_json_target(json_out, inputs=[decisions])
    summary = apply_review(decisions, out=out, config=config, audit_log=audit_log, signing_key=signing_key)
    # The decisions are new inputs: the period's package, made already, is remade only when asked.
    nxt = (f"tfkit extract --config {config} --force" if config is not None else
           f"tfkit link ... --out {out} (the same sources and options)")

    def render(con) -> None:
        con.print(f"recorded {summary['accepted']:,} accepted and {summary['rejected']:,} rejected pair(s); "
                  f"{summary['store_pairs']:,} decisions in {summary['store']}", markup=False)
        con.print(f"apply them: {nxt}", markup=False)

    emit(summary, json_out, event="review_applied", render=render,
         log_fields={k: summary[k] for k in ("accepted", "rejected", "store_pairs")})


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
