"""Stage 3, compare: each comparison is a declared ladder of levels, best first, plus a null level.

A pair gets, per comparison, the index of the first level whose condition holds (0 = best), or -1
(null: a value is missing, so the comparison carries no evidence). Conditions are numpy operations
over whole arrays of pairs; Jaro-Winkler runs in a vectorised kernel (polars-ds, see
`jaro_winkler_kernel` for the measurements behind the choice) on pairs whose values differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import OSA, JaroWinkler

from tfkit.errors import ConfigError

from .standardise import NULL, Prepared


class PairContext:
    """Arrays for one batch of candidate pairs: gathered codes per column, Jaro-Winkler on demand."""

    def __init__(self, prepared: Prepared, rid_l: np.ndarray, rid_r: np.ndarray) -> None:
        self.prepared = prepared
        self.rid_l = rid_l
        self.rid_r = rid_r
        self._pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._jw: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rid_l)

    def codes(self, column: str) -> np.ndarray:
        return self.prepared.codes(column)

    def pair(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        if column not in self._pairs:
            # np.take, not c[rid]: the same values, ~20% less time on a million pairs (the gathers are
            # most of comparing's time outside the kernels: ~0.14 s of the EM sessions' at 100k).
            c = self.codes(column)
            self._pairs[column] = (np.take(c, self.rid_l), np.take(c, self.rid_r))
        return self._pairs[column]

    def null(self, column: str) -> np.ndarray:
        left, right = self.pair(column)
        return (left == NULL) | (right == NULL)

    def equal(self, column: str) -> np.ndarray:
        left, right = self.pair(column)
        return (left == right) & (left != NULL)

    def cross_equal(self, column_l: str, column_r: str) -> np.ndarray:
        """Left's `column_l` equals right's `column_r` (columns sharing one vocabulary). From the
        gathered pairs: the ladders compare these columns pair-wise too, so nothing is gathered twice."""
        left = self.pair(column_l)[0]
        right = self.pair(column_r)[1]
        return (left == right) & (left != NULL)

    def cross_jaro_winkler(self, column_l: str, column_r: str, floor: float,
                           where: np.ndarray | None = None) -> np.ndarray:
        """Jaro-Winkler of left's `column_l` against right's `column_r` (columns sharing one
        vocabulary: a forename against a surname), 0 where it provably cannot reach `floor`
        (and, given `where`, outside it: the pairs whose level it can still decide)."""
        left, right = self.pair(column_l)[0], self.pair(column_r)[1]
        sim = np.zeros(len(left), dtype=np.float32)
        sim[(left == right) & (left != NULL)] = 1.0
        todo = (left != NULL) & (right != NULL) & (left != right)
        idx = np.flatnonzero(todo if where is None else todo & where)
        idx = idx[self._may_reach(column_l, left[idx], right[idx], floor)]
        if len(idx):
            sim[idx] = self._kernel_per_distinct_pair(column_l, left[idx], right[idx])
        return sim

    def jaro_winkler(self, column: str, floor: float = 0.0) -> np.ndarray:
        """Jaro-Winkler similarity per pair, 1 where equal, 0 where either is null.

        Pairs that provably cannot reach `floor` (the ladder's lowest threshold) get 0 without running
        the kernel: Jaro-Winkler <= 0.6 + 0.4 * Jaro, and Jaro <= (c/a + c/b + 1) / 3 where c is the
        number of characters the two strings share (as multisets) and a, b their lengths. Most
        dissimilar pairs of names fail that bound, so they skip the kernel. (The u sample does not
        come here: `GridPairs` takes its similarities from a matrix over distinct values.)
        """
        key = (column, floor)
        if key not in self._jw:
            self._jw[key] = self._jaro_winkler(column, floor)
        return self._jw[key]

    def jaro_winkler_where(self, column: str, floor: float, where: np.ndarray) -> np.ndarray:
        """As `jaro_winkler`, computed only on the pairs in `where` (0 elsewhere; not cached)."""
        return self._jaro_winkler(column, floor, where)

    def _jaro_winkler(self, column: str, floor: float, where: np.ndarray | None = None) -> np.ndarray:
        left, right = self.pair(column)
        sim = np.zeros(len(left), dtype=np.float32)
        todo = (left != NULL) & (right != NULL) & (left != right)
        if where is not None:
            todo &= where
        sim[(left == right) & (left != NULL)] = 1.0
        if floor > 0 and todo.any():
            idx = np.flatnonzero(todo)
            todo[idx[~self._may_reach(column, left[idx], right[idx], floor)]] = False
        if todo.any():
            sim[todo] = self._kernel_per_distinct_pair(column, left[todo], right[todo])
        return sim

    def _kernel_per_distinct_pair(self, column: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Jaro-Winkler of the values coded `left` and `right` (non-null, in `column`'s vocabulary),
        run once per distinct pair of values: names repeat (at 100k x 100k, the 117,000 candidate
        pairs of forenames that may reach the floor hold 19,600 distinct pairs of names)."""
        vocab = self.prepared.vocab[column]
        size = np.int64(vocab.len())
        distinct, inverse = np.unique(left.astype(np.int64) * size + right, return_inverse=True)
        if len(distinct) < SMALL_KERNEL_CALL:  # jaro_winkler_kernel's small call, from the cached strings
            words = self.prepared.strings(column)
            sim = _rapidfuzz_pairwise(words[distinct // size].tolist(), words[distinct % size].tolist())
        else:
            sim = jaro_winkler_kernel(vocab.gather(distinct // size), vocab.gather(distinct % size))
        return sim[inverse.ravel()]

    def edit_distance(self, column: str, where: np.ndarray | None = None) -> np.ndarray:
        """Optimal string alignment distance per pair (a transposition is one edit), capped at
        EDIT_CAP; 0 where equal, EDIT_CAP where either is null or outside `where` (the pairs whose
        level it can decide). Computed once per distinct pair of values."""
        left, right = self.pair(column)
        dist = np.full(len(left), EDIT_CAP, dtype=np.int8)
        dist[(left == right) & (left != NULL)] = 0
        todo = (left != NULL) & (right != NULL) & (left != right)
        if where is not None:
            todo &= where
        if todo.any():  # pairs that provably differ by two edits or more stay at EDIT_CAP
            idx = np.flatnonzero(todo)
            todo[idx[~self._may_be_one_edit(column, left[idx], right[idx])]] = False
        if todo.any():
            l_todo, r_todo = left[todo], right[todo]
            if len(l_todo) < SMALL_KERNEL_CALL:  # edit_distance_kernel's small call, from the cached strings
                words = self.prepared.strings(column)
                dist[todo] = _rapidfuzz_osa(words[l_todo].tolist(), words[r_todo].tolist())
            else:
                vocab = self.prepared.vocab[column]
                dist[todo] = edit_distance_kernel(vocab.gather(l_todo), vocab.gather(r_todo))
        return dist

    def _shared_bound(self, column: str, left: np.ndarray, right: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An upper bound on the characters two values share (as multisets), and their lengths."""
        # np.take: codes are int32, and indexing with int32 arrays costs numpy twice the time.
        (planes, thrice), lengths = self.prepared.char_planes(column)
        la, lb = np.take(lengths, left), np.take(lengths, right)
        shortest = np.minimum(la, lb)
        shared = np.bitwise_count(np.take(planes, left) & np.take(planes, right))
        shared = np.minimum(shared.astype(np.int32), shortest)
        # A bin seen three or more times on both sides: the two planes undercount, so assume the most.
        some = np.flatnonzero(np.take(thrice, left))  # few values hold a bin three times
        many = some[(thrice[left[some]] & np.take(thrice, right[some])) != 0]
        shared[many] = shortest[many]
        return shared, la, lb

    def _may_be_one_edit(self, column: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """False where two values are provably two edits or more apart: one substitution, insertion,
        deletion or transposition keeps the lengths within one and shares all but one character."""
        shared, la, lb = self._shared_bound(column, left, right)
        return (np.abs(la - lb) <= 1) & (shared >= np.maximum(la, lb) - 1)

    def _may_reach(self, column: str, left: np.ndarray, right: np.ndarray, floor: float) -> np.ndarray:
        shared, la, lb = self._shared_bound(column, left, right)
        lengths = self.prepared.char_planes(column)[1]
        size = int(lengths.max(initial=0)) + 1
        la *= size  # la, lb: this call's own gathers
        la += lb
        return shared >= np.take(_least_shared(floor, size), la)


def _reaches(shared: np.ndarray, la: np.ndarray, lb: np.ndarray, floor: float) -> np.ndarray:
    """Whether strings of lengths la, lb sharing `shared` characters may reach Jaro-Winkler `floor`:
    0.6 + 0.4 * (s/a + s/b + 1) / 3 >= floor  <=>  s * (a + b) >= k * a * b (int32 arrays in)."""
    k = 3.0 * (floor - 0.6) / 0.4 - 1.0
    return shared * (la + lb).astype(np.float32) >= np.float32(k - 1e-6) * la * lb.astype(np.float32)


_LEAST_SHARED: dict[tuple[float, int], np.ndarray] = {}


def _least_shared(floor: float, size: int) -> np.ndarray:
    """Per pair of lengths (a * size + b, both below `size`): the fewest shared characters at which
    `_reaches` holds (`size`: never). It holds from some count on (its left side grows with s), so
    `shared >= least[a * size + b]` is `_reaches` exactly, found once by a binary search over the
    counts with `_reaches` itself; per pair, an index and a gather instead of float arithmetic."""
    key = (floor, size)
    if key not in _LEAST_SHARED:
        a = np.repeat(np.arange(size, dtype=np.int32), size)
        b = np.tile(np.arange(size, dtype=np.int32), size)
        lo, hi = np.zeros(len(a), dtype=np.int32), np.full(len(a), size, dtype=np.int32)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            holds = _reaches(mid, a, b, floor)
            searching = lo < hi
            hi = np.where(searching & holds, mid, hi)
            lo = np.where(searching & ~holds, mid + 1, lo)
        _LEAST_SHARED[key] = lo
    return _LEAST_SHARED[key]


class SimilarityTable:
    """Jaro-Winkler between every value held by records `left` and every value held by records
    `right`, computed once per pair of *distinct* values (rapidfuzz `process.cdist`, a float32
    matrix with a zero row and column for null), for the u sample: its pairs are all pairs between
    two record samples, so a few thousand distinct values stand for a million pairs."""

    def __init__(self, prepared: Prepared, left: np.ndarray, right: np.ndarray) -> None:
        self.prepared = prepared
        self.records = (left, right)
        self.right_sorted = bool(np.all(right[1:] >= right[:-1]))
        self._tables: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._right: dict[str, np.ndarray] = {}

    def right_codes(self, column: str) -> np.ndarray:
        """The column's codes of records `right` (cached: every slice of rows pairs with all of them)."""
        if column not in self._right:
            self._right[column] = self.prepared.codes(column)[self.records[1]]
        return self._right[column]

    def table(self, column: str, metric: str = "jw", column_r: str | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(matrix, row of each left record, column of each right record), in `records` order.
        `metric`: "jw" (Jaro-Winkler, 0 on null) or "osa" (edit distance capped, EDIT_CAP on null).
        `column_r`: the right records' column when it is another one (a forename against a surname)."""
        key = (column, metric) if column_r in (None, column) else (column, metric, column_r)
        mirror = (column_r, metric, column)
        if key not in self._tables and mirror in self._tables and np.array_equal(*self.records):
            # One record sample against itself: a surname against a forename is the transpose of
            # the forename against the surname (both metrics are symmetric); a view, not a copy.
            matrix, at_left, at_right = self._tables[mirror]
            self._tables[key] = (matrix.T, at_right, at_left)
        if key not in self._tables:
            positions, distinct = [], []
            for records, side_column in zip(self.records, (column, column_r or column)):
                codes, words = self.prepared.codes(side_column), self.prepared.strings(side_column)
                values, inverse = np.unique(codes[records], return_inverse=True)
                if len(values) and values[0] == NULL:  # NULL is the smallest code: move it last
                    values, inverse = values[1:], np.where(inverse == 0, len(values) - 1, inverse - 1)
                positions.append(inverse.astype(np.int32))
                distinct.append(words[values].tolist() + [""])  # "": the null row/column
            if metric == "osa":
                matrix = process.cdist(*distinct, scorer=OSA.distance, score_cutoff=EDIT_CAP, dtype=np.int8,
                                       workers=KERNEL_WORKERS)
                matrix = np.minimum(matrix, EDIT_CAP).astype(np.int8)
                null = EDIT_CAP
            else:
                matrix, null = jaro_winkler_matrix(*distinct), 0.0
            matrix[-1, :] = null
            matrix[:, -1] = null
            self._tables[key] = (matrix, *positions)
        return self._tables[key]


class GridPairs(PairContext):
    """Every pair between records `left` and `right`, the u sample, as a 2-D block of the grid:
    rows `rows` of `table.records[0]` against the columns of `right`. Each column's codes are a
    (rows, 1) and a (1, columns) array, and the ladders' numpy operations broadcast them to the
    block: no pair's codes are gathered (a row and a column index per pair, then two gathers per
    column, before: ~2.5x the time). Jaro-Winkler and edit distances come from `table` as (rows,
    columns) blocks. Within one source (`same_source`) only pairs left < right count: the block
    starts at the first column past the first row (`start`, the records being sorted) and `keep`
    masks the cells left of the diagonal; `flat` gives a block's values of those pairs only,
    row-major (the order of `pairs`)."""

    def __init__(self, prepared: Prepared, table: SimilarityTable, rows: slice, *, same_source: bool) -> None:
        left, right = table.records
        self.table, self.rows = table, rows
        self.left = left[rows]
        self.start = 0
        if same_source and len(self.left) and table.right_sorted:
            self.start = int(np.searchsorted(right, self.left[0], side="right"))
        self.right = right[self.start:]
        self.keep = None
        if same_source:
            keep = self.left[:, None] < self.right[None, :]
            self.keep = None if keep.all() else keep
        super().__init__(prepared, self.left[:, None], self.right[None, :])

    def __len__(self) -> int:
        return len(self.left) * len(self.right) if self.keep is None else int(self.keep.sum())

    def flat(self, values: np.ndarray) -> np.ndarray:
        """A block's values (rows, columns) of the pairs in scope, row-major."""
        values = np.broadcast_to(values, (len(self.left), len(self.right)))
        return values.ravel() if self.keep is None else values[self.keep]

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The pairs in scope as record positions (left, right), in `flat`'s order."""
        return self.flat(self.rid_l), self.flat(self.rid_r)

    def pair(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        if column not in self._pairs:
            c = self.codes(column)
            self._pairs[column] = (c[self.left][:, None], self.table.right_codes(column)[self.start:][None, :])
        return self._pairs[column]

    def _jaro_winkler(self, column: str, floor: float, where: np.ndarray | None = None) -> np.ndarray:
        return self._from_table(column, "jw")

    def edit_distance(self, column: str, where: np.ndarray | None = None) -> np.ndarray:
        return self._from_table(column, "osa")

    def cross_jaro_winkler(self, column_l: str, column_r: str, floor: float,
                           where: np.ndarray | None = None) -> np.ndarray:
        return self._from_table(column_l, "jw", column_r)

    def _from_table(self, column: str, metric: str, column_r: str | None = None) -> np.ndarray:
        matrix, at_left, at_right = self.table.table(column, metric, column_r)
        return matrix[at_left[self.rows]][:, at_right[self.start:]]


def jaro_winkler_matrix(left: list[str], right: list[str]) -> np.ndarray:
    """Jaro-Winkler of every string in `left` against every string in `right` (float32 matrix).

    rapidfuzz's cdist on short lists: 720,000 name pairs in 0.014 s here (polars-ds on the same
    pairs as aligned columns: 0.15 s); the values are identical to `jaro_winkler_kernel`'s.
    """
    return process.cdist(left, right, scorer=JaroWinkler.normalized_similarity, dtype=np.float32,
                         workers=KERNEL_WORKERS)


EDIT_CAP = 2  # edit distances are only ever compared with 0 and 1: anything larger is "2"


def edit_distance_kernel(left: pl.Series, right: pl.Series) -> np.ndarray:
    """Optimal string alignment distance of aligned strings, capped at EDIT_CAP, int8.

    polars-ds's kernel on the Arrow strings (600,000 postcode pairs: 0.03 s here, rapidfuzz's
    cpdist 0.33 s with the conversion to Python lists); rapidfuzz for small calls, as for
    Jaro-Winkler. Both give the same distances (tested)."""
    if len(left) >= SMALL_KERNEL_CALL:
        try:
            import polars_ds as pds
        except ImportError:  # pragma: no cover - declared dependency
            pds = None
        if pds is not None:
            d = pl.DataFrame({"l": left, "r": right}).select(pds.str_osa("l", "r")).to_series()
            return np.minimum(d.fill_null(EDIT_CAP).to_numpy(), EDIT_CAP).astype(np.int8)
    return _rapidfuzz_osa(left.to_list(), right.to_list())


def _rapidfuzz_osa(left: list[str], right: list[str]) -> np.ndarray:
    d = process.cpdist(left, right, scorer=OSA.distance, score_cutoff=EDIT_CAP, dtype=np.int32,
                       workers=KERNEL_WORKERS)
    return np.minimum(d, EDIT_CAP).astype(np.int8)


# rapidfuzz's threads per call: one. Its calls here are small (a batch's distinct pairs, a few
# thousand) and `link` compares on two threads already (linker.TrainingBeside); with all cores (-1) each
# call started a pool of threads, which cost more than the strings took (3,500 names: 0.12 us a pair
# against 0.08 with one thread, and twice the wall time with the other core busy).
KERNEL_WORKERS = 1

SMALL_KERNEL_CALL = 50_000  # pairs: below this rapidfuzz is about as fast, and polars-ds (~10 MiB) need not load


def jaro_winkler_kernel(left: pl.Series, right: pl.Series) -> np.ndarray:
    """Jaro-Winkler similarity of aligned string Series, as float32.

    polars-ds's Rust kernel works on the Arrow strings directly (measured 0.39 s per 2 M pairs here,
    DuckDB's jaro_winkler_similarity 0.37 s, rapidfuzz cpdist 0.94 s once its inputs are turned into
    Python lists). On small calls the list conversion costs little (per pair, 5,000 pairs: rapidfuzz
    0.36 us, polars-ds 0.38 us; 20,000: 0.38 v 0.24; 100,000: 0.49 v 0.21), so calls under
    `SMALL_KERNEL_CALL` pairs use rapidfuzz and small jobs never load polars-ds (~12 ms and ~8 MiB
    resident). Both give identical values (tested); rapidfuzz is also the fallback without polars-ds.
    """
    if len(left) < SMALL_KERNEL_CALL:
        return _rapidfuzz_pairwise(left, right)
    try:
        import polars_ds as pds
    except ImportError:  # pragma: no cover - declared dependency
        return _rapidfuzz_pairwise(left, right)
    frame = pl.DataFrame({"l": left, "r": right})
    return frame.select(pds.str_jw("l", "r")).to_series().fill_null(0.0).to_numpy().astype(np.float32)


def _rapidfuzz_pairwise(left: pl.Series | list[str], right: pl.Series | list[str]) -> np.ndarray:
    if isinstance(left, pl.Series):
        left, right = left.to_list(), right.to_list()
    return process.cpdist(left, right, scorer=JaroWinkler.normalized_similarity, dtype=np.float32,
                          workers=KERNEL_WORKERS)


def ladder(null: np.ndarray, conditions: list[np.ndarray]) -> np.ndarray:
    """Index of the first true condition, len(conditions) for 'else', -1 where null. Any shape: a
    condition on one side only (a grid block's row or column) broadcasts to the block."""
    shape = np.broadcast_shapes(null.shape, *(c.shape for c in conditions))
    levels = np.full(shape, len(conditions), dtype=np.int8)

    def full(mask: np.ndarray) -> np.ndarray:  # np.broadcast_to costs ~20 us a call: only where needed
        return mask if mask.shape == shape else np.broadcast_to(mask, shape)

    for i in range(len(conditions) - 1, -1, -1):  # loop over levels (a handful), never over pairs
        levels[full(conditions[i])] = i
    levels[full(null)] = -1
    return levels


@dataclass(frozen=True)
class Comparison:
    """A named ladder. `labels` are the levels best first, the last being 'else'."""

    name: str
    column: str
    kind: str
    labels: tuple[str, ...]
    term_frequency: bool = False
    tf_level: int = 0  # the level whose u is replaced by the value's frequency
    required: bool = True  # False: a source may lack the column (compared as unknown there)
    options: dict = field(default_factory=dict, compare=False, hash=False)
    # Levels outside the ladder's order: another kind of agreement, not a looser one (names swapped,
    # an initial only, day and month swapped, a postcode one edit off). Their weight may rightly sit
    # above a closer level's, so the order check leaves them out.
    side_levels: tuple[int, ...] = ()

    def field_kinds(self) -> dict[str, str]:
        return {self.column: self.kind}

    def levels(self, ctx: PairContext) -> np.ndarray:
        return LEVEL_FUNCTIONS[self.kind](self, ctx)

    @property
    def exact_column(self) -> str | None:
        """The column whose missing value makes every ladder's null level (-1) and whose equal
        codes make its level 0 (None: no such column; the ladder runs on every pair)."""
        pattern = EXACT_COLUMNS.get(self.kind)
        return pattern.format(self.column) if pattern else None

    def levels_of_pairs(self, ctx: PairContext) -> np.ndarray:
        """As `levels`, with the pairs the exact column decides (null: -1; equal: 0) settled on the
        whole batch first and the ladder run on the rest only: at 100k x 100k, 62% of candidate pairs
        agree exactly on forename and 73% on surname, and skip the similarity kernels altogether."""
        column = self.exact_column
        if column is None:
            return self.levels(ctx)
        left, right = ctx.pair(column)
        null = (left == NULL) | (right == NULL)
        levels = np.where(null, np.int8(-1), np.int8(0)).astype(np.int8)
        rest = np.flatnonzero(~null & (left != right))
        if len(rest):
            levels[rest] = self.levels(PairContext(ctx.prepared, np.take(ctx.rid_l, rest), np.take(ctx.rid_r, rest)))
        return levels

    @property
    def swap_levels(self) -> tuple[int, ...]:
        """Indices of the levels a name ladder with `swap_with` shares with its partner's: "swapped
        with <partner>" and "one name swapped with <partner>" (one event, seen by both ladders)."""
        partner = self.options.get("swap_with")
        if not partner:
            return ()
        return tuple(self.labels.index(f"{kind}swapped with {partner}") for kind in ("", "one name ")
                     if f"{kind}swapped with {partner}" in self.labels)

    @property
    def n_levels(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- ladders


def name_comparison(name: str, column: str, *, kind: str = "name", swap_with: str | None = None,
                    jaro_winkler: tuple[float, ...] = (0.92, 0.88), term_frequency: bool = True) -> Comparison:
    labels = ["exact"]
    if swap_with:
        labels.append(f"swapped with {swap_with}")
    labels += [f"Jaro-Winkler >= {t}" for t in jaro_winkler]
    labels += ["phonetic or name variant" + (" or surname part" if kind == "surname" else ""),
               "initial only, the same"]
    if swap_with:
        labels.append(f"one name swapped with {swap_with}")
    labels.append("else")
    side = tuple(i for i, label in enumerate(labels)
                 if label.startswith(("swapped", "initial only", "one name swapped")))
    return Comparison(name, column, kind, tuple(labels), term_frequency,
                      options={"swap_with": swap_with, "jaro_winkler": tuple(jaro_winkler)}, side_levels=side)


def _name_levels(c: Comparison, ctx: PairContext) -> np.ndarray:
    col = c.column
    conditions = [ctx.equal(col)]
    partner = c.options.get("swap_with")
    if partner:
        # Forename and surname entered the wrong way round, each as its own ladder allows a typo:
        # both crossed names at the ladder's loosest Jaro-Winkler ('WYNNE EMIILD' v 'EMIILY WYNNE').
        floor = min(c.options["jaro_winkler"], default=1.0)
        # The second name only where the first reaches the floor (on FEBRL-like data a pair in a few).
        first = ctx.cross_jaro_winkler(col, partner, floor) >= floor
        conditions.append(first & (ctx.cross_jaro_winkler(partner, col, floor, where=first) >= floor))
    jw = ctx.jaro_winkler(col, min(c.options["jaro_winkler"], default=0.0))
    conditions += [jw >= t for t in c.options["jaro_winkler"]]
    similar = ctx.equal(f"{col}_dm") | ctx.equal(f"{col}_canon")
    if c.kind == "surname":
        # Double-barrelled: one record holds one part of the other's name ('JONES' v 'SMITH JONES').
        for part in ("first", "last"):
            similar |= ctx.cross_equal(col, f"{col}_{part}") | ctx.cross_equal(f"{col}_{part}", col)
    conditions.append(similar)
    # "J" against "JAMES": one record holds only an initial, and it is the other's.
    left, right = ctx.pair(col)
    lengths = ctx.prepared.char_planes(col)[1]
    valid = (left != NULL) & (right != NULL)
    short = lengths == 1  # per value; gathered by each side's code (a grid block's row or column)
    one_letter = (valid & (short[np.maximum(left, 0)] | short[np.maximum(right, 0)]) if len(short)
                  else np.zeros_like(valid))
    conditions.append(one_letter & ctx.equal(f"{col}_initial"))
    if partner:
        # One name in the other's other field, the other name different: a given name recorded as
        # the family name (naming orders vary between communities), the other name lost or replaced.
        # The partner must not agree: 'MOHAMED MOHAMED' v 'SAGAL MOHAMED' is another forename, not a swap.
        conditions.append((ctx.cross_equal(col, partner) | ctx.cross_equal(partner, col)) & ~ctx.equal(partner))
    return ladder(ctx.null(col), conditions)


def dob_comparison(name: str, column: str) -> Comparison:
    # "else" is another generation (more than 12 years apart: a junior and his father), kept apart
    # from "within 12 years" (a wrong date) so EM can weigh the two differently.
    # "one day off" (a date keyed a day out, or a birth around midnight) and "one digit off" (a
    # keying slip: 2010 for 2019, 03 for 05) are apart so EM can weigh each by how often it happens:
    # a digit slip is common in some sources, and among strangers one digit off is ten times as
    # common as one day off, so a namesake born one digit away must not count as a day's slip.
    labels = ("exact", "day and month swapped", "one day off", "one digit off", "within a month",
              "within a year", "within 12 years", "else")
    return Comparison(name, column, "date", labels, side_levels=(1, 3))


def _dob_levels(c: Comparison, ctx: PairContext) -> np.ndarray:
    col = c.column
    days_l, days_r = ctx.pair(col)
    yl, yr = ctx.pair(f"{col}_year")
    ml, mr = ctx.pair(f"{col}_month")
    dl, dr = ctx.pair(f"{col}_day")
    real = (days_l != NULL) & (days_r != NULL)  # both real dates: the gap in days means something
    gap = np.where(real, np.abs(days_l.astype(np.int64) - days_r.astype(np.int64)), 1 << 40)
    swapped = (yl == yr) & (ml == dr) & (dl == mr) & (ml != dl)
    # Digits of YYYYMMDD that differ: one 4-bit nibble per digit, packed per record at standardisation.
    pl_, pr_ = ctx.pair(f"{col}_digits")
    x = (pl_ ^ pr_).view(np.uint32)
    nonzero = (x | (x >> 1) | (x >> 2) | (x >> 3)) & np.uint32(0x11111111)
    differing = np.bitwise_count(nonzero)
    year_gap = np.where((yl != NULL) & (yr != NULL), np.abs(yl.astype(np.int64) - yr.astype(np.int64)), 0)
    conditions = [differing == 0, swapped, gap <= 1, differing <= 1, gap <= 31, gap <= 366, year_gap <= 12]
    # Null (no evidence) unless both records have a year, month and day: a missing part says nothing.
    return ladder(ctx.null(f"{col}_digits"), conditions)


def postcode_comparison(name: str, column: str, *, term_frequency: bool = True) -> Comparison:
    labels = ("full", "sector", "one edit", "district", "area or Jaro-Winkler >= 0.88", "else")
    return Comparison(name, column, "postcode", labels, term_frequency, side_levels=(2,))


def _postcode_levels(c: Comparison, ctx: PairContext) -> np.ndarray:
    """UK postcodes by their parts; any postcode (a foreign or malformed one, held as text) by one
    edit and, where either is not a UK postcode, Jaro-Winkler."""
    col = c.column
    text = ctx.null(f"{col}_sector")  # either side is not a UK postcode
    full, sector = ctx.equal(col), ctx.equal(f"{col}_sector")
    one_edit = ctx.edit_distance(col, where=~(full | sector)) <= 1
    district, area = ctx.equal(f"{col}_district"), ctx.equal(f"{col}_area")
    undecided = text & ~(full | sector | one_edit | district | area)
    if undecided.any():  # Jaro-Winkler only decides pairs holding a postcode that is not a UK one
        area = area | (undecided & (ctx.jaro_winkler_where(col, 0.88, undecided) >= 0.88))
    conditions = [full, sector, one_edit, district, area]
    return ladder(ctx.null(col), conditions)


def exact_comparison(name: str, column: str, *, term_frequency: bool = False) -> Comparison:
    return Comparison(name, column, "category", ("exact", "else"), term_frequency)


def _exact_levels(c: Comparison, ctx: PairContext) -> np.ndarray:
    return ladder(ctx.null(c.column), [ctx.equal(c.column)])


def string_comparison(name: str, column: str, *, jaro_winkler: tuple[float, ...] = (0.92, 0.8),
                      term_frequency: bool = False) -> Comparison:
    labels = ("exact", *[f"Jaro-Winkler >= {t}" for t in jaro_winkler], "else")
    return Comparison(name, column, "string", labels, term_frequency, options={"jaro_winkler": tuple(jaro_winkler)})


def _string_levels(c: Comparison, ctx: PairContext) -> np.ndarray:
    jw = ctx.jaro_winkler(c.column, min(c.options["jaro_winkler"], default=0.0))
    conditions = [ctx.equal(c.column)] + [jw >= t for t in c.options["jaro_winkler"]]
    return ladder(ctx.null(c.column), conditions)


# Per kind, the column (from the compared one) whose null is the ladder's null and whose equality
# is its first level. Dates: the eight digits (null unless year, month and day are all known).
EXACT_COLUMNS = {"name": "{}", "surname": "{}", "date": "{}_digits", "postcode": "{}", "category": "{}",
                 "string": "{}"}

LEVEL_FUNCTIONS: dict[str, Callable[[Comparison, PairContext], np.ndarray]] = {
    "name": _name_levels,
    "surname": _name_levels,
    "date": _dob_levels,
    "postcode": _postcode_levels,
    "category": _exact_levels,
    "string": _string_levels,
}

# Declared-model `type` -> constructor. The TOML names follow Splink's comparison library.
COMPARISON_TYPES: dict[str, Callable[..., Comparison]] = {
    "forename": lambda name, column, **kw: name_comparison(name, column, kind="name", **kw),
    "surname": lambda name, column, **kw: name_comparison(name, column, kind="surname", **kw),
    "date_of_birth": dob_comparison,
    "postcode": postcode_comparison,
    "exact": exact_comparison,
    "string": string_comparison,
}


def build_comparison(spec: dict, *, where: str = "comparison") -> Comparison:
    spec = dict(spec)
    try:
        kind = spec.pop("type")
        name = spec.pop("name", None) or spec["column"]
        column = spec.pop("column")
    except KeyError as err:
        raise ConfigError(f"{where} needs a {err.args[0]!r} key",
                          hint=f"types: {', '.join(COMPARISON_TYPES)}") from None
    for key, value in (("type", kind), ("name", name), ("column", column)):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: `{key}` must be a string, not {value!r}", hint=f'e.g. {key} = "forename"')
    if kind not in COMPARISON_TYPES:
        raise ConfigError(f"{where}: unknown comparison type {kind!r}", hint=f"use one of: {', '.join(COMPARISON_TYPES)}")
    if "jaro_winkler" in spec:
        try:
            spec["jaro_winkler"] = tuple(float(t) for t in spec["jaro_winkler"])
        except (TypeError, ValueError):
            raise ConfigError(f"{where} ({name}): `jaro_winkler` must be a list of numbers",
                              hint="e.g. jaro_winkler = [0.92, 0.88]") from None
    required = spec.pop("required", True)
    if not isinstance(required, bool):
        raise ConfigError(f"{where} ({name}): `required` must be true or false")
    try:
        comparison = COMPARISON_TYPES[kind](name, column, **spec)
    except TypeError as err:
        raise ConfigError(f"{where} ({name}): {err}", hint="remove the unknown key") from None
    return replace(comparison, required=required)


def compute_levels(comparisons: list[Comparison], ctx: PairContext) -> dict[str, np.ndarray]:
    return {c.name: c.levels(ctx) for c in comparisons}


def comparison_levels(prepared: Prepared, comparisons: list[Comparison], rid_l: np.ndarray, rid_r: np.ndarray,
                      *, batch_pairs: int = 4_000_000, on_batch: Callable[[int], None] | None = None
                      ) -> dict[str, np.ndarray]:
    """Level per comparison for every pair, computed in batches to bound memory (int8 arrays out)."""
    out = {c.name: np.empty(len(rid_l), dtype=np.int8) for c in comparisons}
    for start in range(0, len(rid_l), batch_pairs):
        stop = min(start + batch_pairs, len(rid_l))
        ctx = PairContext(prepared, rid_l[start:stop], rid_r[start:stop])
        for c in comparisons:
            out[c.name][start:stop] = c.levels_of_pairs(ctx)
        if on_batch:
            on_batch(stop - start)
    return out
