"""Paired statistics for comparing a LoRA adapter against its base model.

Every item of an evaluation set is scored once by the base model and once by
the adapter, so the two arms are *paired*: the right unit of analysis is the
per-item difference ``adapter - base``, not two independent samples.

This module provides:

* :func:`mcnemar_exact` -- exact McNemar test for binary (pass/fail) metrics.
* :func:`paired_bootstrap_ci` / :func:`paired_bootstrap_p` -- vectorized
  (optionally cluster) bootstrap of the mean paired difference.
* :func:`paired_t` -- paired t-test, optionally with a cluster-robust (CR1)
  standard error.
* :func:`newcombe_paired_ci` -- Newcombe's square-and-add interval for the
  difference of two paired proportions (used for binary metrics).
* :func:`holm` -- Holm-Bonferroni step-down adjusted p-values.
* :func:`mde_binary` / :func:`mde_continuous` -- minimum detectable effects.
* :func:`compare_paired` -- the one-call summary returning :class:`PairedStats`.

Small samples: below :data:`MIN_EFFECTIVE_N` independent units (pairs, or
clusters when clustering) :func:`compare_paired` uses the paired t (CR1 with
G - 1 df for clusters) instead of the bootstrap for continuous and clustered
metrics, always sets ``underpowered``, and reports no interval (NaN) when the
differences show no variance at all.

Only numpy and scipy are needed at runtime. No function draws random numbers
without an explicit seed or :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sps

__all__ = [
    "DEFAULT_DISCORDANT_RATE",
    "MIN_EFFECTIVE_N",
    "PairedStats",
    "compare_paired",
    "holm",
    "mcnemar_exact",
    "mde_binary",
    "mde_continuous",
    "newcombe_paired_ci",
    "paired_bootstrap_ci",
    "paired_bootstrap_p",
    "paired_t",
]

# Discordant-pair proportion assumed by :func:`mde_binary` when none is given.
# The mathematical worst case is 1.0 (every item flips), which is unrealistic
# for two closely related models; 0.5 is a pragmatic conservative default.
DEFAULT_DISCORDANT_RATE: float = 0.5

# Smallest effective sample -- pairs, or clusters when clustering, since
# clusters are the independent units -- that compare_paired trusts.
# Below it:
# * the percentile bootstrap is overconfident: it uses z-like instead of t
#   quantiles and the plug-in variance (1/n, not 1/(n-1)), so a nominal 95%
#   interval covers noticeably less (Efron & Tibshirani 1993, sec. 13.3 and
#   ch. 14), and with few clusters the cluster bootstrap and the CR1 SE are
#   biased downward (Cameron & Miller 2015, sec. VI, "few clusters"); the
#   paired t with n - 1 (or CR1 with G - 1) df is the honest fallback;
# * zero observed variance is weak evidence of zero true variance: by the
#   rule of three up to 3/n of units (75% at n = 4) could differ at 95%
#   confidence, so [0, 0] intervals and MDE 0 must not be reported;
# * 30 is the usual rule-of-thumb size for the normal approximation of a
#   mean (on which the MDE formulas rest) and the point where the rule-of-
#   three bound drops to 10%.
# Results with fewer units are always flagged ``underpowered``.
MIN_EFFECTIVE_N: int = 30

# Tolerance of the "all differences equal" test, relative to max(1, |d|):
# differences of values that agree up to floating-point rounding (0.7 - 0.2
# is 0.49999999999999994) must count as constant, or the bootstrap would
# "resample" rounding noise into a spuriously tight interval.
_CONSTANT_RTOL: float = 1e-12

# Upper bound (in bytes, per working array) of the resample matrices built by
# the vectorized bootstrap. Two or three such arrays are alive at once, so the
# peak stays below ~200 MB.
_BOOTSTRAP_CHUNK_BYTES: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class PairedStats:
    """Summary of a paired base-vs-adapter comparison for one metric."""

    n: int
    """Number of paired items with a value in both arms."""
    base_mean: float
    """Mean of the base model's values over the kept pairs."""
    adapter_mean: float
    """Mean of the adapter's values over the kept pairs."""
    delta: float
    """``adapter_mean - base_mean`` (equals the mean paired difference)."""
    ci_low: float
    """Lower bound of the ``confidence`` CI of ``delta`` (nan if undefined)."""
    ci_high: float
    """Upper bound of the ``confidence`` CI of ``delta`` (nan if undefined)."""
    p_value: float
    """Two-sided p-value for H0: delta == 0 (1.0 when nothing can be tested)."""
    test: str
    """Test used for ``p_value``: "mcnemar-exact" | "bootstrap" | "paired-t"."""
    fail_to_pass: int | None
    """Binary metrics: pairs with base 0 and adapter 1; None otherwise."""
    pass_to_fail: int | None
    """Binary metrics: pairs with base 1 and adapter 0; None otherwise."""
    mde: float
    """Minimum detectable |delta| at alpha=0.05, power=0.8 for this n (inf if none)."""
    underpowered: bool
    """True when |delta| < mde, mde is not finite, or the effective sample
    (pairs, or clusters when clustered) is below :data:`MIN_EFFECTIVE_N`."""
    clustered: bool
    """True when a cluster-robust SE or a cluster bootstrap was used."""
    p_adjusted: float | None = None
    """Multiplicity-adjusted p-value, filled by :func:`holm` across a run."""


# ---------------------------------------------------------------------------
# Input handling helpers
# ---------------------------------------------------------------------------


def _as_1d_float(values: ArrayLike, name: str) -> np.ndarray:
    """Converts ``values`` to a 1-D float64 array, rejecting infinities.

    Args:
        values: Array-like of numbers; NaN marks a missing value.
        name: Argument name used in error messages.

    Returns:
        A 1-D float64 numpy array.

    Raises:
        ValueError: If the input is not 1-D or contains +/-inf.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values")
    return arr


def _cluster_codes(clusters: Sequence[Hashable] | ArrayLike, n: int) -> np.ndarray:
    """Maps arbitrary hashable cluster labels to dense integer codes 0..G-1.

    Args:
        clusters: One hashable label per item.
        n: Expected number of labels.

    Returns:
        An int64 array of length ``n`` with codes in order of first appearance.

    Raises:
        ValueError: If the number of labels differs from ``n``.
    """
    labels: list[Hashable] = list(clusters)  # type: ignore[arg-type]
    if len(labels) != n:
        raise ValueError(f"clusters has {len(labels)} labels but there are {n} items")
    mapping: dict[Hashable, int] = {}
    codes = np.empty(n, dtype=np.int64)
    for i, label in enumerate(labels):
        codes[i] = mapping.setdefault(label, len(mapping))
    return codes


def _paired_diffs(
    base: ArrayLike,
    adapter: ArrayLike,
    clusters: Sequence[Hashable] | ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validates inputs, drops pairs with a NaN in either arm.

    Args:
        base: Per-item values of the base model (NaN = missing).
        adapter: Per-item values of the adapter (NaN = missing).
        clusters: Optional per-item cluster labels.

    Returns:
        ``(base_kept, adapter_kept, diff_kept, cluster_codes_kept)``; the last
        element is None when ``clusters`` is None.

    Raises:
        ValueError: On shape/length mismatches or infinite values.
    """
    b = _as_1d_float(base, "base")
    a = _as_1d_float(adapter, "adapter")
    if b.shape != a.shape:
        raise ValueError(f"base and adapter lengths differ: {b.shape[0]} vs {a.shape[0]}")
    codes = None if clusters is None else _cluster_codes(clusters, b.shape[0])
    keep = ~(np.isnan(b) | np.isnan(a))
    b, a = b[keep], a[keep]
    if codes is not None:
        # Re-densify: clusters whose pairs were all dropped must not count in G.
        codes = np.unique(codes[keep], return_inverse=True)[1].astype(np.int64)
    return b, a, a - b, codes


def _check_confidence(confidence: float) -> None:
    """Raises ValueError unless 0 < confidence < 1."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _tolerance(x: np.ndarray) -> float:
    """Absolute rounding tolerance for values of the size of ``x``."""
    return _CONSTANT_RTOL * max(1.0, float(np.abs(x).max())) if x.size else _CONSTANT_RTOL


def _is_constant(x: np.ndarray) -> bool:
    """True when all elements of a non-empty array are equal up to rounding.

    Uses ``ptp(x) <= 1e-12 * max(1, max|x|)`` rather than exact equality so
    that differences such as 0.5 and 0.49999999999999994 count as equal.
    """
    return bool(x.size > 0 and float(np.ptp(x)) <= _tolerance(x))


def _zero_variance(diff: np.ndarray, codes: np.ndarray | None) -> bool:
    """True when the differences carry no estimable variance.

    Unclustered: all differences equal (up to rounding). Clustered: every
    cluster's residual sum S_g = sum_{i in g} (d_i - mean(d)) is 0 (up to
    rounding), i.e. every cluster has the same mean difference, so the CR1
    SE and every cluster-bootstrap mean collapse to a point even when the
    items inside a cluster differ.
    """
    if _is_constant(diff):
        return True
    if codes is None:
        return False
    scores = np.bincount(codes, weights=diff - diff.mean())
    return bool(float(np.abs(scores).max()) <= _CONSTANT_RTOL * max(1.0, float(np.abs(diff).sum())))


# ---------------------------------------------------------------------------
# Binary metrics
# ---------------------------------------------------------------------------


def mcnemar_exact(fail_to_pass: int, pass_to_fail: int) -> float:
    """Two-sided exact McNemar test on the discordant pairs.

    Formula: under H0 the b + c discordant pairs split Binomial(b + c, 1/2);
    p = min(1, 2 * P[X <= min(b, c)]) (McNemar 1947, exact form as in
    Agresti, *Categorical Data Analysis*, 3rd ed., sec. 11.1.4; identical to
    ``statsmodels`` ``mcnemar(exact=True)`` and, because the null is
    symmetric, to ``scipy.stats.binomtest(b, b + c, 0.5)``).

    Args:
        fail_to_pass: Pairs with base 0 and adapter 1.
        pass_to_fail: Pairs with base 1 and adapter 0.

    Returns:
        The two-sided p-value; 1.0 when there are no discordant pairs.

    Raises:
        ValueError: If a count is negative or not an integer.
    """
    counts = []
    for name, value in (("fail_to_pass", fail_to_pass), ("pass_to_fail", pass_to_fail)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        counts.append(int(value))
    b, c = counts
    m = b + c
    if m == 0:
        return 1.0
    return float(min(1.0, 2.0 * _sps.binom.cdf(min(b, c), m, 0.5)))


def _wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for one binomial proportion.

    Formula: (p + z^2/2n -/+ z*sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    (Wilson 1927, JASA 22:209-212).

    Args:
        successes: Number of successes.
        n: Number of trials (> 0).
        z: Standard-normal quantile for the desired confidence.

    Returns:
        ``(lower, upper)`` clipped to [0, 1].
    """
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_ci(
    both_pass: int,
    fail_to_pass: int,
    pass_to_fail: int,
    both_fail: int,
    *,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Newcombe square-and-add CI for the difference of paired proportions.

    The interval is for ``delta = p_adapter - p_base = (f2p - p2f) / n``.

    Formula (Newcombe 1998, Stat Med 17:2635-2650, method 10; the corrected
    correlation below as in Fagerland, Lydersen & Laake 2014, Stat Med
    33:2850-2875, and their 2017 book, ch. 8): with Wilson intervals
    (l_A, u_A) for p_adapter and (l_B, u_B) for p_base and
    A = n11*n00 - n10*n01,
    phi = (A - n/2)/sqrt(r1 r0 c1 c0) if A > n/2, 0 if 0 <= A <= n/2,
    A/sqrt(r1 r0 c1 c0) if A < 0 (0 when a margin is empty);
    L = delta - sqrt((p_A-l_A)^2 - 2 phi (p_A-l_A)(u_B-p_B) + (u_B-p_B)^2),
    U = delta + sqrt((u_A-p_A)^2 - 2 phi (u_A-p_A)(p_B-l_B) + (p_B-l_B)^2).
    Fagerland et al. (2014) recommend it for paired proportions: closed
    form, coverage close to nominal even for small n.

    Args:
        both_pass: Pairs with base 1 and adapter 1.
        fail_to_pass: Pairs with base 0 and adapter 1.
        pass_to_fail: Pairs with base 1 and adapter 0.
        both_fail: Pairs with base 0 and adapter 0.
        confidence: Two-sided confidence level.

    Returns:
        ``(lower, upper)`` in [-1, 1]; ``(nan, nan)`` when n == 0.
    """
    _check_confidence(confidence)
    n11, n01, n10, n00 = (int(x) for x in (both_pass, fail_to_pass, pass_to_fail, both_fail))
    if min(n11, n01, n10, n00) < 0:
        raise ValueError("cell counts must be non-negative")
    n = n11 + n01 + n10 + n00
    if n == 0:
        return math.nan, math.nan
    z = float(_sps.norm.ppf(0.5 + confidence / 2.0))
    base_pass = n11 + n10  # row margin: base == 1
    adapter_pass = n11 + n01  # column margin: adapter == 1
    p_b, p_a = base_pass / n, adapter_pass / n
    delta = p_a - p_b
    l_b, u_b = _wilson_interval(base_pass, n, z)
    l_a, u_a = _wilson_interval(adapter_pass, n, z)
    margins = base_pass * (n - base_pass) * adapter_pass * (n - adapter_pass)
    if margins == 0:
        phi = 0.0
    else:
        cross = n11 * n00 - n10 * n01
        if cross > n / 2.0:
            phi = (cross - n / 2.0) / math.sqrt(margins)
        elif cross >= 0:
            phi = 0.0
        else:
            phi = cross / math.sqrt(margins)
    da_lo, da_hi = p_a - l_a, u_a - p_a
    db_lo, db_hi = p_b - l_b, u_b - p_b
    lower = delta - math.sqrt(max(0.0, da_lo**2 - 2.0 * phi * da_lo * db_hi + db_hi**2))
    upper = delta + math.sqrt(max(0.0, da_hi**2 - 2.0 * phi * da_hi * db_lo + db_lo**2))
    return max(-1.0, lower), min(1.0, upper)


# ---------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------


def _bootstrap_means(
    diff: np.ndarray,
    codes: np.ndarray | None,
    n_resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap distribution of the mean paired difference, vectorized.

    Without clusters, resamples items with replacement (Efron & Tibshirani
    1993, *An Introduction to the Bootstrap*, ch. 6). With clusters, resamples
    whole clusters with replacement and recomputes the item-level mean as
    sum(cluster sums) / sum(cluster sizes) (cluster/"case" bootstrap;
    Davison & Hinkley 1997, *Bootstrap Methods*, sec. 3.8; Field & Welsh
    2007, JRSS-B 69:369-390). Resample indices are drawn as a matrix, in row
    chunks bounded by ``_BOOTSTRAP_CHUNK_BYTES``; there is no Python loop over
    individual resamples.

    Args:
        diff: Paired differences (no NaN), length n >= 1.
        codes: Dense cluster codes per item, or None.
        n_resamples: Number of bootstrap resamples B >= 1.
        rng: Random generator (consumed).

    Returns:
        Array of B bootstrap means.
    """
    if codes is None:
        units = diff
        sizes = None
    else:
        n_clusters = int(codes.max()) + 1
        units = np.bincount(codes, weights=diff, minlength=n_clusters)
        sizes = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    m = units.shape[0]
    per_row = m * 8  # bytes of one row of indices (and of each gathered row)
    chunk = max(1, min(n_resamples, _BOOTSTRAP_CHUNK_BYTES // per_row))
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, m, size=(stop - start, m))
        if sizes is None:
            out[start:stop] = units[idx].mean(axis=1)
        else:
            out[start:stop] = units[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    return out


def _percentile_ci(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval (Efron & Tibshirani 1993, sec. 13.3)."""
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _percentile_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value by inverting the percentile interval.

    Formula: p = min(1, 2 * (1 + min(#{m* <= 0}, #{m* >= 0})) / (B + 1)),
    i.e. twice the smaller bootstrap tail mass beyond 0, with the +1
    correction of Davison & Hinkley (1997, eq. 4.11) so that p > 0. p < alpha
    exactly when 0 lies outside the (1 - alpha) percentile interval (up to
    the +1 correction), so the p-value and the reported CI agree (Efron &
    Tibshirani 1993, sec. 15.4 -- the "achieved significance level" obtained
    from confidence-interval inversion). Ties at 0 count in both tails.
    """
    b = boot.shape[0]
    tail = min(int(np.count_nonzero(boot <= 0.0)), int(np.count_nonzero(boot >= 0.0)))
    return float(min(1.0, 2.0 * (1.0 + tail) / (b + 1.0)))


def _bootstrap_ready(
    diff: np.ndarray, codes: np.ndarray | None, n_resamples: int, confidence: float
) -> str:
    """Classifies a bootstrap input as "empty", "constant" or "ok".

    "empty" means no variance can be estimated: fewer than 2 pairs, or fewer
    than 2 clusters when clustering.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if diff.shape[0] < 2:
        return "empty"
    if codes is not None and int(codes.max()) + 1 < 2:
        return "empty"
    if _is_constant(diff):
        return "constant"
    return "ok"


def paired_bootstrap_ci(
    base: ArrayLike,
    adapter: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    rng: np.random.Generator,
    clusters: Sequence[Hashable] | ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(adapter - base).

    Formula: the (1-c)/2 and (1+c)/2 quantiles of the bootstrap distribution
    of the mean paired difference (percentile interval, Efron & Tibshirani
    1993, sec. 13.3). Items are resampled as pairs; with ``clusters`` whole
    clusters are resampled (see ``_bootstrap_means``). Pairs with a NaN in
    either arm are dropped first.

    Args:
        base: Per-item base values (NaN = missing).
        adapter: Per-item adapter values (NaN = missing).
        confidence: Two-sided confidence level in (0, 1).
        n_resamples: Number of bootstrap resamples.
        rng: Random generator; results are reproducible for a given state.
        clusters: Optional hashable cluster label per item (cluster bootstrap).

    Returns:
        ``(low, high)``. ``(nan, nan)`` with fewer than 2 pairs (or fewer than
        2 clusters); ``(d, d)`` when every pair has the same difference d.
    """
    _, _, diff, codes = _paired_diffs(base, adapter, clusters)
    state = _bootstrap_ready(diff, codes, n_resamples, confidence)
    if state == "empty":
        return math.nan, math.nan
    if state == "constant":
        d = float(diff.mean())
        return d, d
    return _percentile_ci(_bootstrap_means(diff, codes, n_resamples, rng), confidence)


def paired_bootstrap_p(
    base: ArrayLike,
    adapter: ArrayLike,
    *,
    n_resamples: int = 10_000,
    rng: np.random.Generator,
    clusters: Sequence[Hashable] | ArrayLike | None = None,
) -> float:
    """Two-sided bootstrap p-value for H0: mean(adapter - base) == 0.

    Method: inversion of the percentile interval, p = min(1, 2 * (1 +
    min(#{m* <= 0}, #{m* >= 0})) / (B + 1)) over the B bootstrap means m*
    (Efron & Tibshirani 1993, sec. 15.4; +1 correction from Davison &
    Hinkley 1997, eq. 4.11). It is consistent with
    :func:`paired_bootstrap_ci`: for the same generator state, p < 1 - c
    essentially iff 0 lies outside the c-level percentile interval.

    Args:
        base: Per-item base values (NaN = missing).
        adapter: Per-item adapter values (NaN = missing).
        n_resamples: Number of bootstrap resamples.
        rng: Random generator.
        clusters: Optional hashable cluster label per item.

    Returns:
        The p-value. 1.0 with fewer than 2 pairs/clusters or when all
        differences are 0; ``2 / (B + 1)`` when all differences are the same
        non-zero value (the bootstrap never crosses 0).
    """
    _, _, diff, codes = _paired_diffs(base, adapter, clusters)
    state = _bootstrap_ready(diff, codes, n_resamples, 0.95)
    if state == "empty":
        return 1.0
    if state == "constant":
        zero = abs(float(diff.mean())) <= _tolerance(diff)
        return 1.0 if zero else float(min(1.0, 2.0 / (n_resamples + 1.0)))
    return _percentile_p(_bootstrap_means(diff, codes, n_resamples, rng))


# ---------------------------------------------------------------------------
# Paired t
# ---------------------------------------------------------------------------


def _cluster_se(diff: np.ndarray, codes: np.ndarray) -> tuple[float, int]:
    """CR1 cluster-robust standard error of the mean of ``diff``.

    Formula: regress d on an intercept; with residuals e_i = d_i - mean(d)
    and cluster scores S_g = sum_{i in g} e_i,
    Var = G/(G-1) * (N-1)/(N-K) * sum_g S_g^2 / N^2 with K = 1, so
    SE = sqrt(G/(G-1)) * sqrt(sum_g S_g^2) / N (Liang & Zeger 1986; CR1 /
    Stata small-sample correction as in Cameron & Miller 2015, J Hum Resour
    50:317-372, sec. VI.B).

    Args:
        diff: Paired differences (length N >= 1).
        codes: Dense cluster codes 0..G-1.

    Returns:
        ``(se, G)``; se is nan when G < 2.
    """
    n = diff.shape[0]
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        return math.nan, n_clusters
    scores = np.bincount(codes, weights=diff - diff.mean(), minlength=n_clusters)
    se = math.sqrt(n_clusters / (n_clusters - 1.0)) * math.sqrt(float(scores @ scores)) / n
    return se, n_clusters


def _t_result(mean: float, se: float, df: int, confidence: float) -> tuple[float, float, float]:
    """t-based CI and two-sided p for ``mean`` with standard error ``se``.

    Handles se == 0 explicitly: CI (mean, mean); p = 1 if mean == 0 (up to
    rounding) else 0 (t = +/-inf).
    """
    if se == 0.0:
        zero = abs(mean) <= _CONSTANT_RTOL * max(1.0, abs(mean))
        return mean, mean, 1.0 if zero else 0.0
    t_stat = mean / se
    crit = float(_sps.t.ppf(0.5 + confidence / 2.0, df))
    p = float(2.0 * _sps.t.sf(abs(t_stat), df))
    return mean - crit * se, mean + crit * se, min(1.0, p)


def paired_t(
    base: ArrayLike,
    adapter: ArrayLike,
    *,
    confidence: float = 0.95,
    clusters: Sequence[Hashable] | ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Paired t-test and t-based CI for mean(adapter - base).

    Formula (Student 1908; e.g. Rice, *Mathematical Statistics*, sec. 11.3):
    t = mean(d) / (sd(d)/sqrt(n)), df = n - 1, CI = mean(d) +/- t_{df,
    (1+c)/2} * sd(d)/sqrt(n). With ``clusters``: the CR1 cluster-robust SE of
    the mean (see ``_cluster_se``) and t with G - 1 degrees of freedom
    (Cameron & Miller 2015, sec. VI.C). Pairs with a NaN are dropped first.

    Args:
        base: Per-item base values (NaN = missing).
        adapter: Per-item adapter values (NaN = missing).
        confidence: Two-sided confidence level in (0, 1).
        clusters: Optional hashable cluster label per item.

    Returns:
        ``(ci_low, ci_high, p_value)``. ``(nan, nan, 1.0)`` with fewer than 2
        pairs (or fewer than 2 clusters); ``(0, 0, 1.0)`` when all
        differences are 0; ``(d, d, 0.0)`` when all differences equal d != 0
        (equality up to floating-point rounding; with clusters: when every
        cluster has the same mean difference d). This is the bare test:
        :func:`compare_paired` reports no interval for such data when the
        sample is below :data:`MIN_EFFECTIVE_N`.
    """
    _check_confidence(confidence)
    _, _, diff, codes = _paired_diffs(base, adapter, clusters)
    n = diff.shape[0]
    if n < 2:
        return math.nan, math.nan, 1.0
    mean = float(diff.mean())
    if codes is None:
        se = 0.0 if _is_constant(diff) else float(diff.std(ddof=1)) / math.sqrt(n)
        df = n - 1
    else:
        se, n_clusters = _cluster_se(diff, codes)
        if math.isnan(se):
            return math.nan, math.nan, 1.0
        if _zero_variance(diff, codes):
            se = 0.0
        df = n_clusters - 1
    return _t_result(mean, se, df, confidence)


# ---------------------------------------------------------------------------
# Multiplicity
# ---------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values.

    Formula (Holm 1979, Scand J Stat 6:65-70): with p_(1) <= ... <= p_(m),
    p~_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j)); returned in the input
    order. Matches ``statsmodels.stats.multitest.multipletests(method="holm")``.

    Args:
        p_values: Raw p-values in [0, 1].

    Returns:
        Adjusted p-values, same length and order as the input.

    Raises:
        ValueError: If a p-value is NaN or outside [0, 1].
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.shape[0]
    if m == 0:
        return []
    if np.isnan(p).any() or (p < 0.0).any() or (p > 1.0).any():
        raise ValueError("p-values must be in [0, 1] and not NaN")
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = adjusted_sorted
    return [float(x) for x in adjusted]


# ---------------------------------------------------------------------------
# Minimum detectable effects
# ---------------------------------------------------------------------------


def _z_sum(alpha: float, power: float) -> tuple[float, float]:
    """Returns (z_{1-alpha/2}, z_{power}) after validating the arguments."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    return float(_sps.norm.ppf(1.0 - alpha / 2.0)), float(_sps.norm.ppf(power))


def mde_binary(
    n: int,
    discordant_rate: float | None = None,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Minimum detectable |delta| for a paired binary metric (McNemar test).

    Formula: Connor's (1987, Biometrics 43:207-211) normal approximation for
    the power of McNemar's test, n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2
    / d^2, with z_a = z_{1-alpha/2}, z_b = z_power, psi = the discordant
    proportion (b + c)/n. Solved exactly for d (a quadratic in d):
    d = sqrt(psi) * (z_a sqrt(n) + z_b sqrt(n - z_a^2 + z_b^2)) / (n + z_b^2),
    which tends to (z_a + z_b) sqrt(psi / n) for large n.

    ``discordant_rate``: None -> ``DEFAULT_DISCORDANT_RATE`` (0.5). An
    observed rate of exactly 0 is replaced by the "rule of three" 95% upper
    bound 3/n (Hanley & Lippman-Hand 1983, JAMA 249:1743-1745): zero
    discordance in n pairs does not mean psi = 0, and using 0.5 would claim a
    large MDE after observing no flips at all.

    Args:
        n: Number of pairs.
        discordant_rate: Expected/observed discordant proportion psi in [0, 1].
        alpha: Two-sided significance level.
        power: Desired power.

    Returns:
        The MDE (may exceed psi, meaning no delta compatible with psi is
        detectable); ``inf`` when n <= z_a^2 (no d satisfies the equation).
    """
    z_a, z_b = _z_sum(alpha, power)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n <= z_a * z_a:
        return math.inf
    if discordant_rate is None:
        psi = DEFAULT_DISCORDANT_RATE
    else:
        psi = float(discordant_rate)
        if not 0.0 <= psi <= 1.0:
            raise ValueError(f"discordant_rate must be in [0, 1], got {discordant_rate}")
        if psi == 0.0:
            psi = min(1.0, 3.0 / n)
    root = z_a * math.sqrt(n) + z_b * math.sqrt(n - z_a * z_a + z_b * z_b)
    return math.sqrt(psi) * root / (n + z_b * z_b)


def mde_continuous(
    n: int,
    sd_diff: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Minimum detectable |delta| for a paired continuous metric.

    Formula: MDE = (z_{1-alpha/2} + z_power) * sd_diff / sqrt(n), the normal
    approximation to the power of the paired (one-sample) test on the
    differences (e.g. Bloom 1995, Eval Rev 19:547-556; Chow, Shao & Wang,
    *Sample Size Calculations in Clinical Research*, sec. 3.1).

    Args:
        n: Number of pairs.
        sd_diff: Standard deviation of the paired differences.
        alpha: Two-sided significance level.
        power: Desired power.

    Returns:
        The MDE; ``inf`` when n < 1; nan when ``sd_diff`` is nan.
    """
    z_a, z_b = _z_sum(alpha, power)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if sd_diff < 0:
        raise ValueError(f"sd_diff must be >= 0, got {sd_diff}")
    if n < 1:
        return math.inf
    return (z_a + z_b) * float(sd_diff) / math.sqrt(n)


# ---------------------------------------------------------------------------
# One-call comparison
# ---------------------------------------------------------------------------


def _all_zero_one(base: np.ndarray, adapter: np.ndarray) -> tuple[bool, bool]:
    """Returns (any non-NaN value exists, all non-NaN values are in {0, 1})."""
    values = np.concatenate([base, adapter])
    values = values[~np.isnan(values)]
    return bool(values.size > 0), bool(np.isin(values, (0.0, 1.0)).all())


def compare_paired(
    base: ArrayLike,
    adapter: ArrayLike,
    *,
    binary: bool | None = None,
    clusters: Sequence[Hashable] | ArrayLike | None = None,
    method: Literal["auto", "bootstrap", "t"] = "auto",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PairedStats:
    """Compares adapter and base on one metric with paired statistics.

    Pairs with NaN in either arm are dropped; ``n`` counts the pairs kept.

    Choice of method (the effective sample ``n_eff`` is the number of pairs,
    or of clusters when ``clusters`` is given):

    * binary, no clusters, ``method="auto"``: exact McNemar p-value and the
      Newcombe square-and-add CI (:func:`newcombe_paired_ci`); test
      "mcnemar-exact". Newcombe is used at every n, also when all pairs
      agree (it then gives an interval around 0 whose width reflects n),
      rather than the bootstrap, which under-covers for small n / few
      discordant pairs and collapses to a point when all pairs agree, and
      rather than Wald, which is badly behaved near 0/1 (Fagerland et al.
      2014).
    * any other data, ``method="auto"``, ``n_eff < MIN_EFFECTIVE_N``: paired
      t (CR1 cluster-robust SE with G - 1 df when clustered); test
      "paired-t". The percentile bootstrap is overconfident at such n (see
      :data:`MIN_EFFECTIVE_N`). This includes binary metrics with fewer than
      ``MIN_EFFECTIVE_N`` clusters (McNemar assumes independent pairs).
    * any other data, ``method="auto"``, ``n_eff >= MIN_EFFECTIVE_N``, or any
      data with ``method="bootstrap"``: percentile (cluster) bootstrap CI
      and the CI-inversion bootstrap p-value, from the same resamples; test
      "bootstrap". Binary metrics with clusters use it too (McNemar assumes
      independent pairs); discordant counts are still reported.
    * ``method="t"``: paired t (CR1 cluster-robust with clusters).

    MDE: binary unclustered -> :func:`mde_binary` with the observed
    discordant rate (rule of three when none is observed); continuous
    unclustered -> :func:`mde_continuous` with the observed SD of
    differences; clustered -> (z_{0.975} + z_{0.8}) * CR1 SE, i.e. the
    design-effect-adjusted MDE. MDE is always for alpha=0.05, power=0.8
    regardless of ``confidence``.

    ``underpowered`` is True when |delta| < mde, when mde is not finite, or
    when ``n_eff < MIN_EFFECTIVE_N`` (whatever the observed delta).

    Zero variance -- all differences equal up to rounding (with clusters:
    all cluster mean differences equal), e.g. every pair identical:

    * binary unclustered with ``method="auto"``: handled by Newcombe and
      McNemar as above (p 1.0 when all pairs agree).
    * otherwise, ``n_eff < MIN_EFFECTIVE_N``: CI (nan, nan), p 1.0, mde inf,
      underpowered True -- zero variance in so few units is no evidence of
      "no difference" (a non-inferiority bound on ``ci_low`` must not pass).
    * otherwise, ``n_eff >= MIN_EFFECTIVE_N``: CI (d, d); p 1.0 when d == 0,
      else 0.0 for "paired-t" (t = +/-inf) and 2 / (B + 1) for "bootstrap".
      MDE: binary metrics keep a rule-of-three bound (unclustered:
      :func:`mde_binary` over the n pairs; clustered: :func:`mde_binary` over
      the G clusters, as if each cluster were one pair), so a "no change" on
      pass/fail data stays underpowered; continuous metrics have MDE 0
      (no variance in at least ``MIN_EFFECTIVE_N`` independent units).

    Binary metrics: the CI is clipped to [-1, 1], the range of a difference of
    two proportions (the paired t at tiny n would otherwise leave it).

    Tiny n: n == 0 -> delta nan, CI nan, p 1.0, mde inf, underpowered True;
    n == 1 -> CI nan, p 1.0, mde inf, underpowered True. Fewer than 2
    clusters behaves like n == 1.

    Args:
        base: Per-item base values (NaN = no value for that item).
        adapter: Per-item adapter values (NaN = no value for that item).
        binary: Force binary/continuous handling; None auto-detects (all
            non-NaN values in {0, 1}).
        clusters: Optional hashable cluster label per item (e.g. the source
            document of several questions); enables clustered inference.
        method: "auto", "bootstrap" or "t" (see above).
        confidence: Two-sided confidence level of the CI.
        n_resamples: Bootstrap resamples.
        seed: Seed for :func:`numpy.random.default_rng` (bootstrap only).

    Returns:
        A :class:`PairedStats` record (``p_adjusted`` left as None).

    Raises:
        ValueError: On invalid inputs, e.g. ``binary=True`` with values
            outside {0, 1}, or an unknown ``method``.
    """
    _check_confidence(confidence)
    if method not in ("auto", "bootstrap", "t"):
        raise ValueError(f"method must be 'auto', 'bootstrap' or 't', got {method!r}")
    b_all = _as_1d_float(base, "base")
    a_all = _as_1d_float(adapter, "adapter")
    has_values, zero_one = _all_zero_one(b_all, a_all)
    if binary is None:
        binary = has_values and zero_one
    elif binary and not zero_one:
        raise ValueError("binary=True but values outside {0, 1} were found")
    b, a, diff, codes = _paired_diffs(b_all, a_all, clusters)
    n = int(diff.shape[0])
    clustered = codes is not None
    z_a, z_b = _z_sum(0.05, 0.8)

    f2p: int | None = None
    p2f: int | None = None
    if binary:
        f2p = int(np.count_nonzero((b == 0.0) & (a == 1.0)))
        p2f = int(np.count_nonzero((b == 1.0) & (a == 0.0)))

    base_mean = float(b.mean()) if n else math.nan
    adapter_mean = float(a.mean()) if n else math.nan
    delta = float(diff.mean()) if n else math.nan
    n_clusters = (int(codes.max()) + 1 if codes is not None else n) if n else 0
    n_eff = n_clusters  # independent units: clusters, or pairs
    small = n_eff < MIN_EFFECTIVE_N

    if method == "t":
        test = "paired-t"
    elif method == "bootstrap":
        test = "bootstrap"
    elif binary and not clustered:
        test = "mcnemar-exact"
    elif small:
        test = "paired-t"
    else:
        test = "bootstrap"

    if n < 2 or n_clusters < 2:
        # No variance can be estimated from zero or one pair / cluster
        # (exact McNemar on <= 1 discordant pair is 1.0 as well).
        return PairedStats(
            n=n,
            base_mean=base_mean,
            adapter_mean=adapter_mean,
            delta=delta,
            ci_low=math.nan,
            ci_high=math.nan,
            p_value=1.0,
            test=test,
            fail_to_pass=f2p,
            pass_to_fail=p2f,
            mde=math.inf,
            underpowered=True,
            clustered=clustered,
        )
    if test == "bootstrap" and n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")

    # Newcombe/McNemar handle "all pairs agree" themselves; every other
    # method degenerates to a point when the differences have no variance.
    zero_var = test != "mcnemar-exact" and _zero_variance(diff, codes)

    # --- CI and p-value ---------------------------------------------------
    if zero_var and small:
        # Too few units to take "no variance" at face value: no interval.
        ci_low = ci_high = math.nan
        p_value = 1.0
    elif zero_var:
        ci_low = ci_high = delta
        if abs(delta) <= _tolerance(diff):
            p_value = 1.0
        elif test == "paired-t":
            p_value = 0.0  # t = +/-inf
        else:
            p_value = float(min(1.0, 2.0 / (n_resamples + 1.0)))
    elif test == "mcnemar-exact":
        assert f2p is not None and p2f is not None
        both_pass = int(np.count_nonzero((b == 1.0) & (a == 1.0)))
        both_fail = n - both_pass - f2p - p2f
        ci_low, ci_high = newcombe_paired_ci(both_pass, f2p, p2f, both_fail, confidence=confidence)
        p_value = mcnemar_exact(f2p, p2f)
    elif test == "paired-t":
        ci_low, ci_high, p_value = paired_t(b, a, confidence=confidence, clusters=codes)
    else:
        boot = _bootstrap_means(diff, codes, n_resamples, np.random.default_rng(seed))
        ci_low, ci_high = _percentile_ci(boot, confidence)
        p_value = _percentile_p(boot)

    if binary and not math.isnan(ci_low):
        # A difference of two proportions lies in [-1, 1]; the paired t (or a bootstrap of a
        # few clusters) knows no such bound and can print [-5.85, +6.85] at n = 2.
        ci_low, ci_high = max(-1.0, ci_low), min(1.0, ci_high)

    # --- MDE ----------------------------------------------------------------
    if zero_var and small:
        mde = math.inf
    elif binary and not clustered:
        assert f2p is not None and p2f is not None
        mde = mde_binary(n, (f2p + p2f) / n)
    elif zero_var:
        if binary:
            # Rule-of-three bound over clusters, each counted as one pair
            # (the most conservative design effect).
            assert f2p is not None and p2f is not None
            mde = mde_binary(n_clusters, (f2p + p2f) / n)
        else:
            mde = 0.0
    elif clustered:
        assert codes is not None
        se, _ = _cluster_se(diff, codes)
        mde = (z_a + z_b) * se
    else:
        mde = mde_continuous(n, float(diff.std(ddof=1)))

    underpowered = bool(small or not math.isfinite(mde) or abs(delta) < mde)
    return PairedStats(
        n=n,
        base_mean=base_mean,
        adapter_mean=adapter_mean,
        delta=delta,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=float(p_value),
        test=test,
        fail_to_pass=f2p,
        pass_to_fail=p2f,
        mde=float(mde),
        underpowered=underpowered,
        clustered=clustered,
    )
