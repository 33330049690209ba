"""`tfkit review apply`: record a reviewer's accept/reject decisions for the next link and extract."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tfkit import console

review_app = typer.Typer(help="Clerical review of uncertain pairs: record decisions for the next run.",
                         no_args_is_help=True)


@review_app.command("apply")
def apply(
    decisions: Annotated[Path, typer.Argument(metavar="DECISIONS", help="The review.csv or review.xlsx tfkit wrote, with its decision column filled in (accept or reject; blank: not decided).", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="The tfkit link output folder the review file came from.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="FILE", help="The extract config (tfkit.toml): decisions for tfkit extract.")] = None,
    audit_log: Annotated[Optional[Path], typer.Option("--audit-log", metavar="FILE", help="Audit log to record the decisions in (default: the config's, or DIR/audit.jsonl).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Record accept/reject decisions: the next `tfkit link` (same --out) and `tfkit extract` apply
    them as forced links and forced non-links.

    Examples:

      tfkit review apply linked/review/review.xlsx --out linked/

      tfkit review apply quarantine/E09000031_nis_2019-H2/review.csv --config tfkit.toml
    """
    from tfkit.linkage.review import apply_review

    summary = apply_review(decisions, out=out, config=config, audit_log=audit_log)
    console.log("review_applied", f"recorded {summary['accepted']:,} accepted and {summary['rejected']:,} rejected "
                f"pair(s); {summary['store_pairs']:,} decisions in {summary['store']}",
                **{k: summary[k] for k in ("accepted", "rejected", "store_pairs")})
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
