"""The disclosure settings of a run (`[disclosure]` in tfkit.toml), typed and checked once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tfkit.disclosure.hierarchies import DEFAULT_QUASI_IDENTIFIERS, DERIVATIONS
from tfkit.errors import ConfigError

POLICIES = ("warn", "fail", "generalise")
DEFAULT_POLICY = "generalise"  # safe by default: a package never fails its own disclosure check


@dataclass(frozen=True)
class DisclosureSettings:
    """What the person table must satisfy before it leaves the LA, and what to do when it does not:
    `generalise` (widen the quasi-identifiers, then suppress, until k-anonymous), `fail` (stop the
    run, exit 1) or `warn` (publish, saying so plainly)."""

    policy: str = DEFAULT_POLICY
    k: int = 10
    quasi_identifiers: tuple[str, ...] = DEFAULT_QUASI_IDENTIFIERS
    sensitive: str | tuple[str, ...] | None = None  # with l: l-diversity of these columns in every class
    l: int = 2
    # generalise: the levels are the least widened at which every table needs at most
    # `target_suppression` of its records blanked; only when even the widest levels need more is
    # suppression allowed up to `max_suppression` (a limit: beyond it the run stops)
    target_suppression: float = 0.05
    max_suppression: float = 0.10

    def keywords(self) -> dict:
        """tfkit.disclosure.partners.control_tables's keyword arguments."""
        return {"quasi_identifiers": self.quasi_identifiers, "k": self.k, "sensitive": self.sensitive, "l": self.l,
                "max_suppression": self.max_suppression,
                "target_suppression": min(self.target_suppression, self.max_suppression)}

    def check_columns(self, columns: Sequence[str], *, file: str | Path | None = None, table: str = "person table") -> None:
        """Every quasi-identifier a column of `table` (as pseudonymisation will write it) or derivable
        from one, and every sensitive column one of its columns: checked before any work, so a typo in
        [disclosure] is one message naming the key, the value and the valid columns (exit 2)."""
        import difflib

        present = set(columns)
        derivable = {d.target for d in DERIVATIONS if d.source in present}
        # pseudonyms and match keys are unique per person by design: never a quasi-identifier
        plain = present - {c for c in present if c.endswith("_pseudonym") or c.startswith("mk_")}
        sensitive = () if self.sensitive is None else (
            (self.sensitive,) if isinstance(self.sensitive, str) else tuple(self.sensitive))
        for key, values, allowed, what in (
            ("disclosure.quasi_identifiers", self.quasi_identifiers, present | derivable, "quasi-identifier"),
            ("disclosure.sensitive", sensitive, present, "sensitive column"),
        ):
            candidates = sorted(plain | (derivable if what == "quasi-identifier" else set()))
            for value in values:
                if value in allowed:
                    continue
                close = difflib.get_close_matches(value, candidates, n=1, cutoff=0.6)
                raise ConfigError(
                    f"{what} {value!r} is not a column of the {table}"
                    + (" nor derivable from one" if what == "quasi-identifier" else ""),
                    file=file, key=key,
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + f"valid columns: {', '.join(candidates)}")
