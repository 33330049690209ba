"""The disclosure settings of a run (`[disclosure]` in tfkit.toml), typed and checked once."""

from __future__ import annotations

from dataclasses import dataclass

from tfkit.disclosure.hierarchies import DEFAULT_QUASI_IDENTIFIERS

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
    max_suppression: float = 0.05  # generalise: the largest share of records whose values may be suppressed

    def keywords(self) -> dict:
        """tfkit.disclosure.apply_policy's keyword arguments."""
        return {"quasi_identifiers": self.quasi_identifiers, "k": self.k, "sensitive": self.sensitive, "l": self.l,
                "max_suppression": self.max_suppression}
