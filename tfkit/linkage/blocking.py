"""Stage 2, block: candidate pairs are the union of declared equi-join rules, each pair generated once.

A rule is a list of standardised columns that must be equal and non-null on both records
(`["surname_dm", "dob"]`). A pair belongs to the first rule that produces it (the union is
de-duplicated in one sort), so the report can say how many pairs each rule *adds*.

Pairs are oriented `rid_l < rid_r` (row positions in the stacked input). In `link` mode only pairs
from different sources are kept, in `dedupe` mode only pairs within a source, in `both` all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tfkit.errors import ConfigError

from .standardise import NULL, Prepared

MODES = ("link", "dedupe", "both")
# A block making more pairs than this is left out of its rule (with a warning): one common value
# (SMITH, 01/01/1980, a hostel's postcode) must not swamp the union. Other rules still reach it.
DEFAULT_MAX_BLOCK_PAIRS = 250_000
# A rule's comparison budget: at most max(MAX_RULE_PAIRS, MAX_RULE_PAIRS_PER_RECORD x records). A rule
# keyed on a date of birth and an initial grows with the square of the records in a national file
# (dates of birth have a fixed number of values), so without it the pairs of a 10M-person run would
# be 35 times a 1M one's. ONS's Census 2021 deduplication rewrote any rule over 10M comparisons; the
# budget does the mechanical part: it leaves out the rule's largest blocks until the rest fit.
MAX_RULE_PAIRS = 10_000_000
MAX_RULE_PAIRS_PER_RECORD = 1.0
# Below this many values numpy's sort is as quick as handing the array to polars.
SORT_BY_POLARS_FROM = 4096


def sort_codes(values: np.ndarray) -> np.ndarray:
    """Sort an int64 array in place (as `values.sort()`) by polars' sort on the calling thread;
    returns it.

    Blocking sorts every rule's records by an int64 code, and every rule's pairs: numpy's sort took
    ~0.3 s of the main thread's CPU at 100k x 100k (8.2 ms for a rule's 200k codes), polars' ~3x
    less (2.6 ms). Same array: a sort of integers has one result. One thread: `link` trains on the
    other core meanwhile. The result is copied back into `values` so polars' buffer is freed at once:
    its allocator keeps the pages of the buffers it frees, and sorting the union of every rule's
    pairs in polars' memory (13 MiB) raised the job's peak by ~20 MiB."""
    if len(values) >= SORT_BY_POLARS_FROM:
        values[:] = pl.Series(values, dtype=pl.Int64).sort(multithreaded=False).to_numpy()
    else:
        values.sort()
    return values


@dataclass(frozen=True)
class BlockingRule:
    """Records agree on every `on` column; with `cross` = (a, b), also one record's `a` equals the
    other's `b` (forename and surname swapped): still an equi-join, on different columns each side."""

    name: str
    on: tuple[str, ...]
    cross: tuple[str, str] | None = None
    max_block_pairs: int | None = None  # this rule's own limit (else settings.max_block_pairs)

    @classmethod
    def from_spec(cls, spec: dict, where: str = "blocking") -> "BlockingRule":
        on = spec.get("on", [])
        cross = spec.get("cross")
        if not isinstance(on, list) or not all(isinstance(c, str) for c in on) or not (on or cross):
            raise ConfigError(f"{where}: `on` must be a non-empty list of column names",
                              hint='e.g. on = ["surname_dm", "dob"]')
        if cross is not None and not (isinstance(cross, list) and len(cross) == 2
                                      and all(isinstance(c, str) for c in cross)):
            raise ConfigError(f"{where}: `cross` must be a list of two column names",
                              hint='e.g. cross = ["forename_dm", "surname_dm"]')
        limit = spec.get("max_block_pairs")
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"{where}: `max_block_pairs` must be a whole number of at least 1")
        unknown = set(spec) - {"name", "on", "cross", "max_block_pairs"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                              hint="a rule has name, on, cross and max_block_pairs")
        name = spec.get("name") or " & ".join(on + ([f"{cross[0]}~{cross[1]}"] if cross else []))
        return cls(name=str(name), on=tuple(on), cross=tuple(cross) if cross else None, max_block_pairs=limit)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.on + (self.cross or ())


@dataclass
class RuleCount:
    rule: str
    pairs_added: int
    pairs_planned: int = 0        # from block sizes, before earlier rules' pairs are taken out
    blocks_skipped: int = 0       # blocks over the rule's max_block_pairs, or past its budget, left out
    pairs_skipped: int = 0
    largest_block_pairs: int = 0  # the largest block kept
    budget_limit: int | None = None  # the block limit the rule's budget lowered it to (None: not lowered)

    def to_dict(self) -> dict:
        return {"rule": self.rule, "pairs_added": self.pairs_added, "pairs_planned": self.pairs_planned,
                "blocks_skipped": self.blocks_skipped, "pairs_skipped": self.pairs_skipped,
                "largest_block_pairs": self.largest_block_pairs, "budget_limit": self.budget_limit}


@dataclass
class BlockingReport:
    rules: list[RuleCount]
    total_pairs: int
    comparisons_possible: int
    true_pairs: int | None = None
    true_pairs_found: int | None = None

    @property
    def recall(self) -> float | None:
        if not self.true_pairs:
            return None
        return self.true_pairs_found / self.true_pairs

    @property
    def reduction_ratio(self) -> float:
        return 1.0 - self.total_pairs / self.comparisons_possible if self.comparisons_possible else 0.0

    def to_dict(self) -> dict:
        return {
            "rules": [r.to_dict() for r in self.rules],
            "cumulative_pairs_planned": [int(x) for x in np.cumsum([r.pairs_planned for r in self.rules])],
            "total_pairs": self.total_pairs,
            "comparisons_possible": self.comparisons_possible,
            "reduction_ratio": self.reduction_ratio,
            "true_pairs": self.true_pairs,
            "true_pairs_found": self.true_pairs_found,
            "recall": self.recall,
        }


def warn_skipped(model, counts: list) -> None:
    """The model's warnings for blocks a rule left out (both engines, word for word): oversized
    blocks (a rule's own limit skips by design: no warning), and a rule over its comparison budget."""
    own_limit = {r.name for r in model.blocking if r.max_block_pairs}
    for r in counts:
        if r.budget_limit is not None:
            model.warn("rule_budget", f"blocking rule {r.rule!r} is over its comparison budget: its blocks making "
                       f"more than {r.budget_limit:,} pairs were left out ({r.blocks_skipped:,} blocks, "
                       f"{r.pairs_skipped:,} pairs; {r.pairs_planned:,} kept); other rules still reach them",
                       rule=r.rule, limit=r.budget_limit, blocks=r.blocks_skipped, pairs=r.pairs_skipped)
        elif r.blocks_skipped and r.rule not in own_limit:
            model.warn("blocks_skipped", f"blocking rule {r.rule!r}: {r.blocks_skipped:,} oversized "
                       f"block(s) skipped ({r.pairs_skipped:,} pairs); other rules still reach them",
                       rule=r.rule, blocks=r.blocks_skipped, pairs=r.pairs_skipped)


def comparisons_possible(sizes: list[int], mode: str) -> int:
    total = sum(sizes)
    within = sum(n * (n - 1) // 2 for n in sizes)
    every = total * (total - 1) // 2
    return {"link": every - within, "dedupe": within, "both": every}[mode]


def check_rules(prepared: Prepared, rules: list[BlockingRule]) -> None:
    for rule in rules:
        missing = [c for c in rule.columns if c not in prepared.frame.columns]
        if missing:
            raise ConfigError(
                f"blocking rule {rule.name!r} uses {', '.join(missing)}, which the comparisons do not produce",
                hint="block on a compared column or its derived forms (_dm, _canon, _year, _sector, ...)",
            )


def _mode_filter(mode: str) -> pl.Expr:
    same = pl.col("_source") == pl.col("_source_r")
    return {"link": ~same, "dedupe": same, "both": pl.lit(True)}[mode]


def plan_rule(prepared: Prepared, rule: BlockingRule, mode: str, max_block_pairs: int | None,
              budget: int | None = None) -> tuple[RuleCount, np.ndarray, np.ndarray]:
    """Count the pairs each block of the rule would make, from block sizes alone, as Splink's
    cumulative-comparisons chart does; leave out blocks over the limit (the rule's own, else
    `max_block_pairs`; None: no limit) and, past the rule's comparison `budget`, its largest blocks
    (`skipped_blocks`); make the pairs of the others.

    Returns the count and the pairs (rid_l < rid_r, in the mode's scope)."""
    limit = (rule.max_block_pairs or max_block_pairs) if max_block_pairs is not None else None
    if rule.cross:
        return _cross_rule(prepared, rule, mode, limit, budget)
    return _equi_rule(prepared, rule, mode, limit, budget)


@dataclass
class RuleRuns:
    """A rule's blocks by sorting (`equi_blocks` / `cross_blocks`, then `sorted_runs` /
    `cross_block_pairs`): per row of the sorted order its record (`rid`), its side (`side`: a cross
    rule's a- or b-holders; None for an equi rule), its first partner's position (`lo`) and its
    number of partners (`runs`: 0 in a block left out, and for a cross rule's b-holders); per block
    its records (`size`), its pairs in the mode's scope, whether it was kept or left out (`over`:
    over the limit or past the budget) and the limit the budget lowered it to. The polars engine
    makes the pairs from it (`run_pairs`); the Spark engine ships it to the executors."""
    rid: np.ndarray
    side: np.ndarray | None
    lo: np.ndarray
    runs: np.ndarray
    size: np.ndarray
    pairs: np.ndarray
    kept: np.ndarray
    over: np.ndarray
    lowered: int | None

    def count(self, name: str) -> RuleCount:
        """The rule's `RuleCount` before de-duplication (pairs_added 0)."""
        return RuleCount(name, 0, int(self.pairs[self.kept].sum()), int(self.over.sum()),
                         int(self.pairs[self.over].sum()), int(self.pairs[self.kept].max(initial=0)), self.lowered)


def rule_runs(prepared: Prepared, rule: BlockingRule, mode: str, limit: int | None,
              budget: int | None = None) -> RuleRuns:
    """A rule's `RuleRuns`: equi rules by (block, source, row), each row's partners one run after it
    (link: the later sources of its block; dedupe: the rest of its source's part of the block; both:
    the rest of its block); a cross rule one-sided, each a-holder's partners its block's b-holders.
    Blocks over `limit`, or past `budget`, are left out (`skipped_blocks`)."""
    if rule.cross:
        rid, side, block = cross_blocks(prepared, rule)
        start, size, n_a, pairs = cross_block_pairs(side, block)
    else:
        rid, block, group = equi_blocks(prepared, rule)
        size, pairs, lo, hi = sorted_runs(block, group, mode)
        side = None
    over, lowered = skipped_blocks(pairs, limit, budget)
    over &= pairs > 0
    kept = ~over & (pairs > 0)
    if rule.cross:
        runs = np.where((side == 0) & np.repeat(kept, size), np.repeat(size - n_a, size), 0)
        lo = np.repeat(start + n_a, size)
    else:
        runs = np.where(np.repeat(kept, size), hi - lo, 0)
    return RuleRuns(rid, side, lo, runs, size, pairs, kept, over, lowered)


def rule_budget(n_records: int, max_rule_pairs: int = MAX_RULE_PAIRS,
                per_record: float = MAX_RULE_PAIRS_PER_RECORD) -> int:
    """A rule's comparison budget: max(max_rule_pairs, per_record x records), linear in the records,
    so the union of the rules grows linearly too (at an LA's size nothing reaches it)."""
    return max(int(max_rule_pairs), int(per_record * n_records))


def skipped_blocks(pairs: np.ndarray, limit: int | None, budget: int | None) -> tuple[np.ndarray, int | None]:
    """Which blocks of a rule are left out (a bool per block, from the pairs each makes): those
    over `limit`; then, when the others make more than `budget` pairs, the largest of them, down to
    the largest block size L at which the blocks making <= L pairs fit the budget (blocks making as
    many pairs go or stay together, so the result depends on block sizes alone, not their order:
    the same on both engines). Returns the flags and L (None when the budget did not bind)."""
    over = pairs > limit if limit is not None else np.zeros(len(pairs), dtype=bool)
    if budget is None:
        return over, None
    kept = np.sort(pairs[~over & (pairs > 0)])
    cumulative = np.cumsum(kept)
    if not len(kept) or cumulative[-1] <= budget:
        return over, None
    run_ends = np.flatnonzero(np.append(kept[1:] != kept[:-1], True))  # last block of each size
    fits = run_ends[cumulative[run_ends] <= budget]
    lowered = int(kept[fits[-1]]) if len(fits) else 0
    return over | (pairs > lowered), lowered


def _block_key(prepared: Prepared, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The records holding every column (row positions, ascending) and one int64 per such record,
    equal exactly when all the columns' codes are equal."""
    codes = [prepared.codes(c) for c in columns]
    valid = np.logical_and.reduce([c != NULL for c in codes])
    every = bool(valid.all())  # most rules' columns are seldom missing: no selection needed
    rid = np.arange(len(valid), dtype=np.int64) if every else np.flatnonzero(valid)
    key = np.zeros(len(rid), dtype=np.int64)
    for k, column in enumerate(codes):
        values = column.astype(np.int64) if every else column[valid].astype(np.int64)
        if not len(values):
            break
        values -= values.min()
        span = int(values.max()) + 1
        if k == 0:  # key * span + values, key being all zeros
            key = values
            continue
        if (int(key.max()) + 1) * span >= 1 << 62:  # would overflow: number the distinct keys first
            key = np.unique(key, return_inverse=True)[1].astype(np.int64).ravel()
        key *= span
        key += values
    return rid, key


def equi_blocks(prepared: Prepared, rule: BlockingRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The records sharing a block of an equi rule with another record, sorted by (block, source,
    row): their row positions, block ids and (block, source) group ids (both non-decreasing).
    A record alone in its block makes no pair (and no planned or skipped one): most records, for
    most rules. The Spark engine plans its blocks with this too."""
    n_sources = len(prepared.sources)
    rid, key = _block_key(prepared, rule.on)
    rid_bits = max(1, prepared.n.bit_length())
    # (block, source, row) packed in bit fields: shifts and ors, no int64 multiply or divide (a
    # rule's few passes over every record add up over twenty-odd rules). Same order as before.
    source_bits = (n_sources - 1).bit_length()
    if int(key.max(initial=0)) >= 1 << (62 - rid_bits - source_bits):
        key = np.unique(key, return_inverse=True)[1].astype(np.int64).ravel()
    code = np.left_shift(key, source_bits + rid_bits, out=key)  # `key` is this rule's own array
    if n_sources > 1:
        code |= prepared.codes("_source")[rid].astype(np.int64) << rid_bits
    code |= rid
    sort_codes(code)
    code, block = _in_shared_blocks(code, code >> (source_bits + rid_bits))
    return code & ((1 << rid_bits) - 1), block, code >> rid_bits


def _in_shared_blocks(code: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted entries (`code`, with their non-decreasing `block` ids) whose block holds another
    entry: one alone in its block makes no pair (and no planned or skipped one)."""
    shared = np.zeros(len(code), dtype=bool)
    np.equal(block[1:], block[:-1], out=shared[1:])
    shared[:-1] |= shared[1:]
    return code[shared], block[shared]


def _equi_rule(prepared: Prepared, rule: BlockingRule, mode: str, limit: int | None, budget: int | None = None
               ) -> tuple[RuleCount, np.ndarray, np.ndarray]:
    """Blocks by sorting (`rule_runs`): each record's partners one contiguous run after it, so the
    pairs are made with numpy ranges."""
    r = rule_runs(prepared, rule, mode, limit, budget)
    return (r.count(rule.name), *run_pairs(r.rid, r.lo, r.runs, order=_by_record(r.rid, r.runs, prepared.n)))


def _by_record(rid: np.ndarray, runs: np.ndarray, n: int) -> np.ndarray:
    """The positions of the rows making pairs (runs > 0), in ascending record order. A record is in
    one block of a rule and its partners in its run are ascending, so pairs made row by row in this
    order come out sorted by (rid_l, rid_r): the union of every rule's pairs then merges sorted runs
    (`_first_of_each_code`) instead of sorting each rule's pairs. A scatter, not a sort (row
    positions are distinct)."""
    rows = np.flatnonzero(runs)
    slot = np.full(n, -1, dtype=np.int64)
    slot[rid[rows]] = rows
    return slot[slot >= 0]


def sorted_runs(block: np.ndarray, group: np.ndarray, mode: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sort-based blocking kernel. Rows sorted by (block, source, row), `block` and `group`
    (block and source together) non-decreasing ids per row: each row's partners are one contiguous
    run [lo, hi) after it (link: the later sources of its block; dedupe: the rest of its source's
    part of the block; both: the rest of its block). Returns each block's size and pairs in the
    mode's scope, and every row's lo and hi (positions in the sorted order)."""
    m = len(group)
    new_group, new_block = np.ones(m, dtype=bool), np.ones(m, dtype=bool)
    np.not_equal(group[1:], group[:-1], out=new_group[1:])
    np.not_equal(block[1:], block[:-1], out=new_block[1:])
    group_start = np.flatnonzero(new_group)
    block_start = np.flatnonzero(new_block)
    group_size = np.diff(group_start, append=m)
    block_size = np.diff(block_start, append=m)
    # A group lies in one block (a block's first row starts a group too): count the block starts
    # among the group starts (a binary search per group cost five times as much).
    block_of_group = np.cumsum(new_block[group_start]) - 1
    if mode == "link":
        squares = np.bincount(block_of_group, weights=group_size.astype(np.float64) ** 2, minlength=len(block_start))
        pairs = (block_size.astype(np.int64) ** 2 - np.rint(squares).astype(np.int64)) // 2
    elif mode == "dedupe":
        within = group_size.astype(np.int64) * (group_size - 1) // 2
        pairs = np.rint(np.bincount(block_of_group, weights=within, minlength=len(block_start))).astype(np.int64)
    else:
        pairs = block_size.astype(np.int64) * (block_size - 1) // 2
    # Only the bounds the mode uses (each a pass over every row).
    group_end = np.repeat(group_start + group_size, group_size) if mode != "both" else None
    block_end = np.repeat(block_start + block_size, block_size) if mode != "dedupe" else None
    after = np.arange(1, m + 1) if mode != "link" else None  # each row's position + 1
    lo, hi = {"link": (group_end, block_end), "dedupe": (after, group_end), "both": (after, block_end)}[mode]
    return block_size, pairs, lo, hi


def run_pairs(rid: np.ndarray, lo: np.ndarray, runs: np.ndarray, order: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of `sorted_runs`: each row's rid with the rids at positions lo, lo + 1, ...,
    lo + runs - 1 (runs: hi - lo, or 0 for a row whose block is left out). `order`: the rows to
    take, in this order (default: every row, as sorted)."""
    left = rid
    if order is not None:
        left, lo, runs = rid[order], lo[order], runs[order]
    # Few temporaries: an EM session's rule makes tens of millions of pairs at 1M x 1M.
    right = np.repeat(lo - (np.cumsum(runs) - runs), runs)
    right += np.arange(len(right), dtype=np.int64)
    return np.repeat(left, runs), rid[right]


def rule_pairs(prepared: Prepared, rule: BlockingRule, mode: str) -> pl.DataFrame:
    """Every pair (rid_l < rid_r) in the mode's scope that agrees on all of the rule's columns,
    whatever the size of its block (EM training sessions)."""
    _, rid_l, rid_r = plan_rule(prepared, rule, mode, None)
    return pl.DataFrame({"rid_l": rid_l, "rid_r": rid_r}, schema={"rid_l": pl.Int64, "rid_r": pl.Int64})


def sample_rule_pairs(prepared: Prepared, rule: BlockingRule, mode: str, max_pairs: int, seed: int) -> pl.DataFrame:
    """`rule_pairs` when the rule makes at most `max_pairs` pairs; else `max_pairs` of them drawn
    uniformly without replacement (sorted), never making the others (EM sessions). A session's rule
    on a date of birth makes ~N^2 pairs in a national file (6 billion at 10M x 10M): made and then
    sampled, they took the driver's memory. From the sort-based plan: pair k is row r's
    (k - start of r's run)-th partner, so a drawn index is a pair without a join."""
    if rule.cross:  # a session on swapped names: made whole (not in the default sessions)
        pairs = rule_pairs(prepared, rule, mode)
        return pairs.sample(max_pairs, seed=seed, shuffle=False) if pairs.height > max_pairs else pairs
    rid, block, group = equi_blocks(prepared, rule)
    _, _, lo, hi = sorted_runs(block, group, mode)
    runs = hi - lo
    ends = np.cumsum(runs)
    total = int(ends[-1]) if len(ends) else 0
    if total <= max_pairs:  # every pair: `rule_pairs`' own, from the plan already made
        rid_l, rid_r = run_pairs(rid, lo, runs, order=_by_record(rid, runs, prepared.n))
        return pl.DataFrame({"rid_l": rid_l, "rid_r": rid_r}, schema={"rid_l": pl.Int64, "rid_r": pl.Int64})
    picks = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
    row = np.searchsorted(ends, picks, side="right")
    partner = lo[row] + (picks - (ends[row] - runs[row]))
    a, b = rid[row], rid[partner]
    return pl.DataFrame({"rid_l": np.minimum(a, b), "rid_r": np.maximum(a, b)},
                        schema={"rid_l": pl.Int64, "rid_r": pl.Int64}).sort("rid_l", "rid_r")


def cross_blocks(prepared: Prepared, rule: BlockingRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A `cross` rule's entries sharing a block with another entry: every record enters once as an
    a-holder (side 0) and once as a b-holder (side 1) of its block (on codes, value; the two columns
    share one vocabulary), entries sorted by (block, side, row). Returns their row positions, sides
    and block ids (non-decreasing). The Spark engine plans its blocks with this too."""
    a, b = rule.cross
    rid_on, key_on = _block_key(prepared, rule.on) if rule.on else (np.arange(prepared.n), np.zeros(prepared.n, np.int64))
    values = [prepared.codes(c)[rid_on] for c in (a, b)]
    held = [v != NULL for v in values]
    rid = np.concatenate([rid_on[h] for h in held])
    side = np.concatenate([np.full(int(h.sum()), k, dtype=np.int64) for k, h in enumerate(held)])
    value = np.concatenate([v[h] for v, h in zip(values, held)]).astype(np.int64)
    key_on = np.concatenate([key_on[h] for h in held])
    span = int(value.max(initial=0)) + 1
    rid_bits = max(1, prepared.n.bit_length())
    limit_bits = 62 - rid_bits
    if (int(key_on.max(initial=0)) + 1) * span * 2 >= 1 << limit_bits:  # number the `on` blocks first
        key_on = np.unique(key_on, return_inverse=True)[1].astype(np.int64).ravel()
    key = key_on * span + value
    if int(key.max(initial=0)) * 2 >= 1 << limit_bits:
        key = np.unique(key, return_inverse=True)[1].astype(np.int64).ravel()
    code = sort_codes(((key * 2 + side) << rid_bits) | rid)
    code, block = _in_shared_blocks(code, code >> (rid_bits + 1))
    return code & ((1 << rid_bits) - 1), (code >> rid_bits) & 1, block


def cross_block_pairs(side: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per block of `cross_blocks`: its first entry's position, its entries, its a-holders and its
    pairs (a-holders x b-holders: the one-sided plan). The Spark engine's plan counts with this too."""
    m = len(side)
    start = np.flatnonzero(np.diff(block, prepend=-1))
    size = np.diff(start, append=m)
    n_a = np.add.reduceat(1 - side, start) if m else np.zeros(0, dtype=np.int64)
    return start, size, n_a, n_a.astype(np.int64) * (size - n_a)


def _cross_rule(prepared: Prepared, rule: BlockingRule, mode: str, limit: int | None, budget: int | None = None
                ) -> tuple[RuleCount, np.ndarray, np.ndarray]:
    """A `cross` rule: pairs where one record's cross[0] equals the other's cross[1] (either way
    round) and the `on` columns agree. The plan is one-sided: per block of (on, value), records
    holding the value in a times records holding it in b.

    By sorting, as `_equi_rule` (`rule_runs`): each a-holder's partners are its block's b-holders,
    one run."""
    r = rule_runs(prepared, rule, mode, limit, budget)
    one, other = run_pairs(r.rid, r.lo, r.runs)
    keep = cross_scope(prepared, one, other, mode)
    one, other = one[keep], other[keep]
    # Each pair once, oriented rid_l < rid_r, sorted: a fixed order (EM sessions sample from a rule's pairs).
    pair = sort_codes(np.minimum(one, other) * prepared.n + np.maximum(one, other))
    distinct = np.ones(len(pair), dtype=bool)
    np.not_equal(pair[1:], pair[:-1], out=distinct[1:])
    pair = pair[distinct]
    return r.count(rule.name), pair // prepared.n, pair % prepared.n


def cross_scope(prepared: Prepared, one: np.ndarray, other: np.ndarray, mode: str) -> np.ndarray:
    """Which of a cross rule's found pairs (`one` found `other`) are pairs at all: not a record with
    itself, and within the mode's scope (link: across sources; dedupe: within one)."""
    keep = one != other
    if mode != "both" and len(prepared.sources) > 1:
        source = prepared.codes("_source")
        same = source[one] == source[other]
        keep &= ~same if mode == "link" else same
    elif mode == "link":
        keep[:] = False  # one source: no pair across sources
    return keep


def candidate_pairs(prepared: Prepared, rules: list[BlockingRule], mode: str, *,
                    max_block_pairs: int = DEFAULT_MAX_BLOCK_PAIRS, budget: int | None = None
                    ) -> tuple[pl.DataFrame, BlockingReport]:
    """All candidate pairs (rid_l, rid_r, rule index), sorted, and the plan: pairs each rule would
    make from block sizes, blocks skipped as oversized, pairs each rule added to the union.

    Each pair is kept once, with the first rule that made it: every rule's pairs are coded as one
    integer (pair, then rule), sorted once, and the first of each pair's run kept. (Checking each
    rule's pairs against every earlier rule's columns cost a gather per column and earlier rule.)
    """
    if mode not in MODES:
        raise ConfigError(f"unknown link mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    check_rules(prepared, rules)
    n = prepared.n
    rule_bits = max(1, len(rules).bit_length())
    rid_bits = max(1, n).bit_length()
    fits = 2 * rid_bits + rule_bits <= 62  # (pair, rule) as one int64

    def run(k: int) -> tuple[RuleCount, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        count, rid_l, rid_r = plan_rule(prepared, rules[k], mode, max_block_pairs, budget)
        if not fits:
            return count, (rid_l, rid_r)
        # Coded at once, so only 8 bytes a pair are held until the union is made: bit fields
        # (rid_l, rid_r, rule), in place on the rule's own arrays.
        rid_l <<= rid_bits + rule_bits
        rid_r <<= rule_bits
        rid_l |= rid_r
        rid_l |= k
        return count, rid_l  # sorted (a rule's pairs come by record, see `_by_record`)

    parts, counts = [], []
    for count, part in map(run, range(len(rules))):
        parts.append(part)
        counts.append(count)
    if fits:
        rid_l, rid_r, rule = _first_of_each_code(parts, rid_bits, rule_bits)
    else:
        rid_l, rid_r, rule = _first_of_each_pair(parts)
    for k, added in enumerate(np.bincount(rule, minlength=len(rules))[:len(rules)]):
        counts[k].pairs_added = int(added)
    pairs = pl.DataFrame({"rid_l": rid_l, "rid_r": rid_r, "rule": rule.astype(np.int8)},
                         schema={"rid_l": pl.Int64, "rid_r": pl.Int64, "rule": pl.Int8})
    report = BlockingReport(counts, pairs.height, comparisons_possible(prepared.source_sizes(), mode))
    return pairs, report


def _first_of_each_code(codes: list[np.ndarray], rid_bits: int, rule_bits: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of every rule's pairs, coded rid_l << (rid_bits + rule_bits) | rid_r << rule_bits |
    rule: each pair once with the lowest rule that made it, sorted by (rid_l, rid_r). One in-place
    sort orders by pair, then rule."""
    code = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    codes.clear()
    # Each rule's codes come sorted (`_by_record`; a swapped-names rule's are sorted): numpy's
    # stable sort (a merge sort finding the runs) merges them in place, 20 ms for the demo's 1.7M
    # codes at 100k x 100k where its quicksort took 96 (and polars' 27, in polars' own memory).
    code.sort(kind="stable")
    first = np.ones(len(code), dtype=bool)
    np.not_equal(code[1:] >> rule_bits, code[:-1] >> rule_bits, out=first[1:])
    code = code[first]
    rule = code & ((1 << rule_bits) - 1)
    code >>= rule_bits
    return code >> rid_bits, code & ((1 << rid_bits) - 1), rule


def _first_of_each_pair(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As `_first_of_each_code`, for inputs too large to code a pair in one int64."""
    frame = pl.concat([pl.DataFrame({"rid_l": l, "rid_r": r, "rule": np.full(len(l), k, dtype=np.int64)},
                                    schema={"rid_l": pl.Int64, "rid_r": pl.Int64, "rule": pl.Int64})
                       for k, (l, r) in enumerate(parts)])
    frame = frame.sort("rid_l", "rid_r", "rule").unique(["rid_l", "rid_r"], keep="first", maintain_order=True)
    return frame["rid_l"].to_numpy(), frame["rid_r"].to_numpy(), frame["rule"].to_numpy()


def produced_by(prepared: Prepared, rule: BlockingRule, rid_l: np.ndarray, rid_r: np.ndarray,
                kept: np.ndarray | None = None) -> np.ndarray:
    """Whether `rule` produced each pair: all its columns equal and non-null, in a block its plan
    kept (`kept`, per record: a skipped block produced nothing). The Spark engine keeps each pair
    for the first rule producing it with this, per partition."""
    hit = np.ones(len(rid_l), dtype=bool)
    for column in rule.on:
        codes = prepared.codes(column)
        left = codes[rid_l]
        hit &= (left == codes[rid_r]) & (left != NULL)
    if rule.cross:
        a, b = (prepared.codes(c) for c in rule.cross)
        one_way = (a[rid_l] == b[rid_r]) & (a[rid_l] != NULL)
        other_way = (b[rid_l] == a[rid_r]) & (b[rid_l] != NULL)
        if kept is not None:
            one_way &= kept[rid_l]
            other_way &= kept[rid_r]
        return hit & (one_way | other_way)
    if kept is not None:
        hit &= kept[rid_l]  # both records are in the same block
    return hit


def true_pairs(prepared: Prepared, truth_column: str, mode: str) -> pl.DataFrame:
    """Every pair of records sharing a truth id, within the mode's scope (rid_l < rid_r)."""
    keys = prepared.frame.select("_rid", "_source", truth_column).drop_nulls(truth_column)
    return (
        keys.lazy()
        .join(keys.lazy(), on=truth_column, how="inner", suffix="_r")
        .filter((pl.col("_rid") < pl.col("_rid_r")) & _mode_filter(mode))
        .select(pl.col("_rid").alias("rid_l"), pl.col("_rid_r").alias("rid_r"))
        .collect()
    )


def blocking_recall(prepared: Prepared, pairs: pl.DataFrame, truth_column: str, mode: str,
                    report: BlockingReport) -> BlockingReport:
    """Fill in how many truly matching pairs the blocking rules let through."""
    truth = true_pairs(prepared, truth_column, mode)
    found = truth.join(pairs.select("rid_l", "rid_r"), on=["rid_l", "rid_r"], how="semi").height
    report.true_pairs = truth.height
    report.true_pairs_found = found
    return report


def scope_blocks(n_sources: int, mode: str) -> list[tuple[int, int]]:
    """The (left source, right source) pairs a mode compares: i < j across sources, i == j within."""
    return [(i, j) for i in range(n_sources) for j in range(i, n_sources)
            if (i == j and mode in ("dedupe", "both")) or (i != j and mode in ("link", "both"))]


def sample_records(prepared: Prepared, n_pairs: int, mode: str, seed: int | list[int]) -> list[np.ndarray]:
    """Splink's u-sampling design: the same proportion p of every source's records (seeded, without
    replacement), with p chosen so that the pairs among the sampled records in the mode's scope
    number about `n_pairs`; p = 1 (every pair) when the inputs have no more pairs than that.

    Returns each source's sampled row positions (`_rid`), sorted.
    """
    rng = np.random.default_rng(seed)
    sizes = prepared.source_sizes()
    possible = comparisons_possible(sizes, mode)
    p = min(1.0, (n_pairs / possible) ** 0.5) if possible else 0.0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    out = []
    for size, start in zip(sizes, starts):
        k = min(size, max(1, round(p * size))) if size and p > 0 else 0
        out.append(np.sort(rng.choice(size, k, replace=False)).astype(np.int64) + start)
    return out
