"""Stage 4a, train: u from random pairs, the prior from deterministic rules, m by EM or from labels.

- u: the level frequencies among a seeded uniform sample of record pairs (almost all non-matches).
- prior lambda: pairs that agree exactly on a deterministic rule, divided by the assumed recall of
  those rules, over all pairs the mode could compare.
- m (no labels): expectation-maximisation on the candidate pairs' comparison vectors, collapsed to
  distinct patterns with counts (a few thousand rows, whatever the data size). EM fits a two-class
  mixture among the candidates (its own u and match share); only m is kept: u stays the random-pair
  estimate, which is the right one for scoring pairs from the whole population.
- m (labels): level frequencies among candidate pairs whose truth ids agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tfkit.errors import UsageError

from .blocking import comparisons_possible, sample_records, sample_rule_pairs, scope_blocks
from .evaluate import training_problems, weights_out_of_order  # noqa: F401 - one home (evaluate), used from here too
from .comparisons import NULL, Comparison, GridPairs, SimilarityTable, comparison_levels
from .model import LinkageModel
from .standardise import Prepared


def level_frequency_counts(levels: np.ndarray, n_levels: int, weights: np.ndarray | None = None) -> np.ndarray:
    """How many non-null pairs hold each level (optionally weighted), as float64."""
    valid = levels >= 0
    return np.bincount(levels[valid].astype(np.int64), weights=None if weights is None else weights[valid],
                       minlength=n_levels)[:n_levels].astype(np.float64)


def level_frequencies(levels: np.ndarray, n_levels: int, weights: np.ndarray | None = None,
                      pseudocount: float = 0.0) -> np.ndarray:
    """Share of each level among non-null pairs (optionally weighted), with optional smoothing."""
    counts = level_frequency_counts(levels, n_levels, weights) + pseudocount
    total = counts.sum()
    return counts / total if total > 0 else np.full(n_levels, 1.0 / n_levels)


# Cells of the u sample's grid compared at a time (a block of rows against every sampled record of
# the other side, see `GridPairs`). FEBRL2's 1M pairs: 10,000 cells 0.22 s CPU, 30,000 0.15,
# 100,000 0.14 (more per call, fewer calls); the demo's at 100k: 0.17, 0.13, 0.14.
U_CHUNK_PAIRS = 30_000


def estimate_u(prepared: Prepared, model: LinkageModel, *, mode: str, seed: int) -> dict[str, np.ndarray]:
    """Level frequencies among all pairs of a seeded record sample (Splink's design, see
    `sample_records`: about `u_sample_pairs` pairs; every pair when the inputs have fewer).

    String similarities are computed once per pair of distinct values in the sample
    (`SimilarityTable`); the pairs themselves are compared a block of rows of the grid at a time.
    """
    s = model.settings
    # The sampled pairs' comparison patterns (for the u re-derivation without matches): as one
    # mixed-radix code per pair, built a comparison at a time and counted per block, so the pairs'
    # levels are never held all at once; each comparison's level counts are the patterns' margins.
    # (A model too wide for a code keeps every level and counts them, as `patterns` does.)
    radix = _radix(model.comparisons)
    coded = radix is not None
    seen: dict[str, list[np.ndarray]] = {c.name: [] for c in model.comparisons}
    pattern_counts = np.zeros(0, dtype=np.int64)
    sample = sample_records(prepared, s.u_sample_pairs, mode, seed)
    drawn = 0
    for i, j in scope_blocks(len(sample), mode):
        left, right = sample[i], sample[j]
        if not len(left) or not len(right):
            continue
        rows = max(1, min(s.batch_pairs, U_CHUNK_PAIRS) // len(right))
        codes: list[np.ndarray] = []  # this block's pairs, a chunk of rows at a time
        last = len(model.comparisons) - 1
        for k, c in enumerate(model.comparisons):  # one comparison at a time: only its similarity matrices are held
            table = SimilarityTable(prepared, left, right)
            for n, start in enumerate(range(0, len(left), rows)):
                ctx = GridPairs(prepared, table, slice(start, start + rows), same_source=i == j)
                lv = c.levels(ctx)
                if k == 0:
                    drawn += len(ctx)
                if not coded:
                    seen[c.name].append(ctx.flat(lv))
                    continue
                if k == 0:
                    codes.append(lv.astype(np.int32) + 1)
                else:
                    codes[n] *= radix[k]
                    codes[n] += lv
                    codes[n] += 1
                if k == last:
                    codes[n] = ctx.flat(codes[n])  # the pairs in scope only
        for chunk in codes:
            found = np.bincount(chunk, minlength=1)
            if len(found) > len(pattern_counts):
                pattern_counts = np.concatenate([pattern_counts, np.zeros(len(found) - len(pattern_counts), np.int64)])
            pattern_counts[:len(found)] += found
    if coded:
        found = _decode(pattern_counts, radix)
    else:
        found = patterns({k: np.concatenate(v) for k, v in seen.items()}, model.comparisons) if drawn else None
    counts = {c.name: np.zeros(c.n_levels, dtype=np.float64) if found is None else
              level_frequency_counts(found[0][:, k], c.n_levels, found[1]) for k, c in enumerate(model.comparisons)}
    u = {name: (n + 1.0) / (n + 1.0).sum() for name, n in counts.items()}  # one pseudo-count per level
    model.u = u
    model.u_counts = counts
    if drawn:
        model.u_patterns = found
    model.training_log.append({"step": "u", "method": "random sampling", "pairs": drawn,
                               "records_sampled": [len(r) for r in sample], "seed": seed})
    return u


def deterministic_hits(prepared: Prepared, rules: list[list[str]], rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    hit = np.zeros(len(rid_l), dtype=bool)
    for rule in rules:
        missing = [c for c in rule if c not in prepared.frame.columns]
        if missing:
            raise UsageError(f"deterministic rule {rule} uses {', '.join(missing)}, which is not a prepared column",
                             hint="use compared columns or their derived forms in settings.deterministic_rules")
        agree = np.ones(len(rid_l), dtype=bool)
        for column in rule:
            codes = prepared.codes(column)
            left = np.take(codes, rid_l)
            agree &= (left == np.take(codes, rid_r)) & (left != NULL)
        hit |= agree
    return hit


def estimate_prior(prepared: Prepared, model: LinkageModel, candidates: pl.DataFrame, *, mode: str) -> float:
    """lambda = (pairs meeting a deterministic rule / assumed recall) / pairs the mode could compare."""
    s = model.settings
    hits = int(deterministic_hits(prepared, s.deterministic_rules, candidates["rid_l"].to_numpy(),
                                  candidates["rid_r"].to_numpy()).sum())
    possible = comparisons_possible(prepared.source_sizes(), mode)
    expected = max(hits, 1) / s.deterministic_recall
    prior = float(min(max(expected / max(possible, 1), 1e-12), 0.5))
    model.prior = prior
    model.training_log.append({"step": "prior", "method": "deterministic rules", "rules": s.deterministic_rules,
                               "recall": s.deterministic_recall, "pairs_meeting_rules": hits,
                               "comparisons_possible": possible, "prior": prior})
    return prior


@dataclass
class EMResult:
    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    match_share: float
    iterations: int
    converged: bool


# Patterns are counted with one bincount over a mixed-radix code when the model has at most this
# many possible comparison vectors (the default model: 10,752), else with a group-by.
MAX_RADIX_PATTERNS = 1 << 22


def pattern_radix(comparisons: list[Comparison]) -> list[int]:
    """Each comparison's digit base in a pattern code: its levels -1 (null) .. n_levels - 1."""
    return [c.n_levels + 1 for c in comparisons]


def _radix(comparisons: list[Comparison]) -> list[int] | None:
    """`pattern_radix`, or None when the model has too many possible vectors for one bincount."""
    radix = pattern_radix(comparisons)
    return radix if comparisons and int(np.prod(radix, dtype=np.float64)) <= MAX_RADIX_PATTERNS else None


def pattern_codes(levels: dict[str, np.ndarray], comparisons: list[Comparison], radix: list[int],
                  dtype=np.int32) -> np.ndarray:
    """Each pair's comparison vector as one mixed-radix code: (level + 1) digits, the first
    comparison most significant, so sorting codes sorts the vectors (`radix`: `_radix`'s bases)."""
    code = np.zeros(len(levels[comparisons[0].name]), dtype=dtype)
    for c, r in zip(comparisons, radix):
        code *= r
        code += levels[c.name]
        code += 1
    return code


def decode_patterns(codes: np.ndarray, radix: list[int]) -> np.ndarray:
    """The comparison vectors (one row a code, int64 levels) of `pattern_codes`' codes."""
    gammas = np.empty((len(codes), len(radix)), dtype=np.int64)
    rest = np.asarray(codes, dtype=np.int64).copy()
    for k in range(len(radix) - 1, -1, -1):
        gammas[:, k] = rest % radix[k] - 1
        rest //= radix[k]
    return gammas


def _decode(code_counts: np.ndarray, radix: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The patterns present in a bincount over pattern codes, and their counts, sorted by code."""
    present = np.flatnonzero(code_counts)
    return decode_patterns(present, radix), code_counts[present].astype(np.float64)


def patterns(levels: dict[str, np.ndarray], comparisons: list[Comparison]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct comparison vectors and their counts, sorted by the levels (first comparison first)."""
    radix = _radix(comparisons)
    if radix is not None:
        # One code per pair, (level + 1) digits with the first comparison most significant: sorting
        # codes sorts the vectors, and a bincount over a few thousand codes replaces a group-by.
        return _decode(np.bincount(pattern_codes(levels, comparisons, radix), minlength=1), radix)
    frame = pl.DataFrame({c.name: levels[c.name] for c in comparisons})
    grouped = frame.group_by([c.name for c in comparisons]).len().sort([c.name for c in comparisons])
    return grouped.select([c.name for c in comparisons]).to_numpy().astype(np.int64), grouped["len"].to_numpy().astype(np.float64)


def expectation_maximisation(gammas: np.ndarray, counts: np.ndarray, comparisons: list[Comparison],
                             m0: dict[str, np.ndarray], u0: dict[str, np.ndarray], share0: float, *,
                             max_iterations: int = 100, tolerance: float = 1e-6, fix_u: bool = False,
                             non_match: np.ndarray | None = None) -> EMResult:
    """Two-class EM on comparison-vector patterns. Null levels (-1) contribute to neither class.
    `non_match`: patterns the model's non-link rules veto (`vetoed`), held in the non-match class."""
    m = {k: v.astype(np.float64).copy() for k, v in m0.items()}
    u = {k: v.astype(np.float64).copy() for k, v in u0.items()}
    share = share0
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        log_m = np.full(len(counts), np.log(share))
        log_u = np.full(len(counts), np.log(1.0 - share))
        for k, c in enumerate(comparisons):
            g = gammas[:, k]
            valid = g >= 0
            gi = np.where(valid, g, 0)
            log_m += np.where(valid, np.log(np.clip(m[c.name], 1e-12, 1.0))[gi], 0.0)
            log_u += np.where(valid, np.log(np.clip(u[c.name], 1e-12, 1.0))[gi], 0.0)
        posterior = 1.0 / (1.0 + np.exp(np.clip(log_u - log_m, -700, 700)))
        if non_match is not None:
            posterior[non_match] = 0.0
        wm = counts * posterior
        wu = counts * (1.0 - posterior)
        change = 0.0
        new_share = float(wm.sum() / counts.sum())
        change = max(change, abs(new_share - share))
        share = min(max(new_share, 1e-9), 1 - 1e-9)
        for k, c in enumerate(comparisons):
            # One pseudo-pair per level keeps unseen levels from getting an infinite penalty.
            new_m = level_frequencies(gammas[:, k], c.n_levels, wm, pseudocount=1.0)
            change = max(change, float(np.abs(new_m - m[c.name]).max()))
            m[c.name] = new_m
            if not fix_u:
                new_u = level_frequencies(gammas[:, k], c.n_levels, wu)
                change = max(change, float(np.abs(new_u - u[c.name]).max()))
                u[c.name] = new_u
        if change < tolerance:
            converged = True
            break
    return EMResult(m, u, share, iteration, converged)


def initial_m(c: Comparison) -> np.ndarray:
    """A starting point that says 'matches mostly agree exactly': 0.9 at the top, the rest shared down."""
    rest = 0.1 * 0.5 ** np.arange(c.n_levels - 1)
    return np.concatenate([[0.9], rest / rest.sum() * 0.1])


def comparisons_in_rule(model: LinkageModel, on: tuple[str, ...]) -> set[str]:
    """Comparisons whose column (or a column derived from it) a blocking rule fixes."""
    fixed = set()
    for c in model.comparisons:
        if any(col == c.column or col.startswith(c.column + "_") for col in on):
            fixed.add(c.name)
    return fixed


def estimate_m_em_sessions(prepared: Prepared, model: LinkageModel, *, mode: str, seed: int) -> dict[str, np.ndarray]:
    """Splink's method: one EM session per training rule, u fixed at the random-sampling estimate.

    Pairs come from the session's own blocking rule (sampled down to `em_max_pairs`); comparisons on
    the rule's columns are left out of that session (they agree by construction, so say nothing).
    Each comparison's m is the mean over the sessions that estimated it.
    """
    s = model.settings
    estimates: dict[str, list[np.ndarray]] = {c.name: [] for c in model.comparisons}
    for k, rule in enumerate(model.training):
        pairs = sample_rule_pairs(prepared, rule, mode, s.em_max_pairs, seed + k)
        fixed = comparisons_in_rule(model, rule.columns)
        free = [c for c in model.comparisons if c.name not in fixed]
        log = {"step": "m", "method": "expectation maximisation", "session": rule.name, "pairs": pairs.height,
               "estimated": [c.name for c in free]}
        if pairs.height == 0 or not free:
            model.training_log.append({**log, "skipped": True})
            continue
        levels = comparison_levels(prepared, free, pairs["rid_l"].to_numpy(), pairs["rid_r"].to_numpy(),
                                   batch_pairs=s.batch_pairs)
        gammas, counts = patterns(levels, free)
        # The rule's own columns agree exactly in every pair of the session: level 0 for the non-link rules.
        exact = [c.name for c in model.comparisons if c.name in fixed and c.column in rule.columns]
        result = expectation_maximisation(
            gammas, counts, free, {c.name: initial_m(c) for c in free}, {c.name: model.u[c.name] for c in free},
            0.1, max_iterations=s.em_max_iterations, tolerance=s.em_tolerance, fix_u=True,
            non_match=vetoed(model, gammas, free, exact=exact))
        for c in free:
            estimates[c.name].append(result.m[c.name])
        model.training_log.append({**log, "patterns": len(counts), "iterations": result.iterations,
                                   "converged": result.converged, "match_share": result.match_share})
    missing = [name for name, v in estimates.items() if not v]
    if missing:
        # No pairs to learn from (sources that share no one, or rules fixing every column): keep the
        # starting point, say so, and let the user decide (labels, other [[training]] rules).
        from tfkit import console  # only here: rich is not loaded unless something is said

        console.log("em_no_pairs", f"warning: no EM session estimated m for {', '.join(missing)}; "
                    "using the default starting values (consider --train-on-labels or other [[training]] rules)",
                    level="warning", comparisons=missing)
        model.training_log.append({"step": "m", "method": "starting values (no training pairs)",
                                   "comparisons": missing})
        for c in model.comparisons:
            if c.name in missing:
                estimates[c.name].append(initial_m(c))
    model.m = {name: np.mean(v, axis=0) for name, v in estimates.items()}
    return model.m


def estimate_m_em(model: LinkageModel, counted: tuple[np.ndarray, np.ndarray]) -> EMResult:
    """EM on all candidate pairs with u free (used when the model declares no training rules).

    `counted`: the candidate pairs' distinct comparison vectors and their counts (`patterns`, or
    aggregated on a cluster): EM's time and memory grow with the patterns, never with the pairs."""
    s = model.settings
    gammas, counts = counted
    m0 = {c.name: initial_m(c) for c in model.comparisons}
    u0 = {c.name: model.u[c.name] for c in model.comparisons}
    result = expectation_maximisation(gammas, counts, model.comparisons, m0, u0, 0.1,
                                      max_iterations=s.em_max_iterations, tolerance=s.em_tolerance,
                                      non_match=vetoed(model, gammas, model.comparisons))
    model.m = result.m
    model.training_log.append({"step": "m", "method": "expectation maximisation", "patterns": len(counts),
                               "pairs": int(counts.sum()), "iterations": result.iterations,
                               "converged": result.converged, "match_share_in_candidates": result.match_share})
    return result


def refine_prior(model: LinkageModel, counted: tuple[np.ndarray, np.ndarray], possible: int, *,
                 max_iterations: int = 200, tolerance: float = 1e-9) -> float:
    """Re-estimate lambda with m fixed: the expected number of matches among the candidate pairs
    (pairs outside them are taken as non-matches) over all pairs the mode could compare; with u
    re-derived each round from the random pairs less the matches among them (`non_match_u`) when
    `estimate_u` kept their comparison vectors.

    The deterministic-rule estimate assumes the rules catch a set share of matches (0.85); on data
    with more errors than that (FEBRL: about 0.56) lambda came out low and every probability with
    it. This fixed point needs no such assumption. Term-frequency adjustments are left out here.
    """
    gammas, counts = counted  # the candidate pairs' `patterns`
    veto = vetoed(model, gammas, model.comparisons)  # the patterns do not change between rounds
    u_veto = None if model.u_patterns is None else vetoed(model, model.u_patterns[0], model.comparisons)
    prior = model.prior
    for iteration in range(1, max_iterations + 1):
        posterior = _posterior(model, gammas, prior, veto)
        new = float(min(max((counts * posterior).sum() / max(possible, 1), 1e-12), 0.5))
        done = abs(new - prior) <= tolerance * max(prior, 1e-12) * 1e3
        prior = new
        if model.u_patterns is not None:
            model.u = non_match_u(model, prior, u_veto)
        if done:
            break
    model.training_log.append({"step": "prior", "method": "fixed point on candidate pairs (m fixed; u from the "
                               "random pairs less the matches among them)" if model.u_patterns is not None
                               else "fixed point on candidate pairs (m, u fixed)",
                               "start": model.prior, "prior": prior, "iterations": iteration})
    model.prior = prior
    return prior


def _posterior(model: LinkageModel, gammas: np.ndarray, prior: float, veto: np.ndarray) -> np.ndarray:
    """Each pattern's match probability as `predict.score` gives it (TF aside); `veto`: `vetoed`'s mask."""
    weight = np.full(len(gammas), np.log2(prior / (1 - prior)))
    for k, c in enumerate(model.comparisons):
        weight += model.level_weights(c.name)[gammas[:, k] + 1]
    posterior = 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))
    posterior[veto] = 0.0  # as predict.score scores them
    return posterior


def vetoed(model: LinkageModel, gammas: np.ndarray, comparisons: list[Comparison],
           exact: list[str] | tuple[str, ...] = ()) -> np.ndarray:
    """Patterns a non-link rule (settings.non_link_when) makes non-matches, as `predict.score` does.

    Training holds them in the non-match class. Relatives look like matches with one error: twins
    agree on surname, DOB and address with "another forename"; a junior and his father on the full
    name and address with "another generation". Left to EM they join the match class, and m of
    those disagreements comes out far too high (the hard profile: forename else -4.2 bits against
    -6.6 from its labels, DOB else -3.9 against -8.6), which every pair with the same disagreement
    then inherits. `exact`: comparisons absent from the patterns but known to agree exactly (an EM
    session's own columns); a rule on any other absent comparison is not applied.
    """
    return model.vetoed({c.name: gammas[:, k] for k, c in enumerate(comparisons)}, len(gammas), exact)


def non_match_u(model: LinkageModel, prior: float, veto: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """u among non-matches: the random pairs' level frequencies, each pair counted by its chance of
    being a non-match under the trained model (m, u, lambda).

    Random pairs hold matches too, a share lambda of them, so their level frequencies are lambda*m +
    (1-lambda)*u, not u. At 100k x 100k that is nothing (lambda ~ 4e-6 against u(DOB exact) ~ 7e-5);
    in a small file with many duplicates it is most of a top level's u: in FEBRL1 (lambda 1e-3) 9e-4
    of the sampled 9.9e-4 for DOB exact are the duplicates themselves, so the closest agreements were
    underweighted by bits. Subtracting lambda*m is the same in expectation but falls below zero
    where u is within the sample's noise of it (FEBRL2); weighting the pairs cannot. One pseudo-count
    per level, as `estimate_u`."""
    gammas, counts = model.u_patterns
    if veto is None:
        veto = vetoed(model, gammas, model.comparisons)
    keep = counts * (1.0 - _posterior(model, gammas, prior, veto))
    return {c.name: level_frequencies(gammas[:, k], c.n_levels, keep, pseudocount=1.0)
            for k, c in enumerate(model.comparisons)}


def check_training(model: LinkageModel) -> None:
    """Say what a linker must hear about the trained model (EM sessions that did not converge,
    weights running against their ladder's order: `evaluate.training_problems`) as warnings: the
    console, the summary's `warnings` and the report. Every engine calls this after training."""
    for problem in training_problems(model):
        model.warn(**problem)


def estimate_m_from_labels(model: LinkageModel, matching: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """m = level frequencies among the candidate pairs whose truth ids agree; `matching`: those
    pairs' `patterns` (vectors and counts), however they were counted."""
    gammas, counts = matching
    if not counts.sum():
        raise UsageError("the truth column marks no candidate pair as a match, so m cannot be estimated from labels",
                         hint="check the --truth column, or train without labels")
    m = {c.name: level_frequencies(gammas[:, k], c.n_levels, counts, pseudocount=0.5)
         for k, c in enumerate(model.comparisons)}
    model.m = m
    model.training_log.append({"step": "m", "method": "labels", "matching_pairs": int(counts.sum())})
    return m
