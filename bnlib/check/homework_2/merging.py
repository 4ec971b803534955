r"""Homework 2, part 2: merging two shards' statistics (:data:`MERGE_STATS`,
:func:`merge_stats`), ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> (count, mean,
m2)``, reference :func:`bnlib.stats.chan_merge`. The diagnoses name each wrong merge without
printing the right one: the homework asks the student to derive it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bnlib import stats
from bnlib.check.engine import Check, CheckResult, Mistake, make_trials

# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeCase:
    """Two shards of ``count_a`` and ``count_b`` values per channel, ``channels`` channels."""

    channels: int
    count_a: int
    count_b: int
    dtype: type
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        return (
            f"shards of {self.count_a} and {self.count_b} values, {self.channels} channel"
            f"{'s' if self.channels > 1 else ''}, {np.dtype(self.dtype).name}"
        )

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """The two shards' seeded values, float64 arrays ``(count_a, C)`` and ``(count_b, C)``;
        their means differ by 1 to 4 per channel, so that the δ² term matters."""
        rng = np.random.default_rng(self.seed)
        c = self.channels
        loc_a = rng.uniform(-2.0, 2.0, c)
        loc_b = loc_a + rng.choice([-1.0, 1.0], c) * rng.uniform(1.0, 4.0, c)
        return tuple(
            loc + rng.uniform(0.5, 2.0, c) * rng.standard_normal((count, c))
            for count, loc in ((self.count_a, loc_a), (self.count_b, loc_b))
        )

    def data(self) -> dict:
        """Each shard's mean and M2 = Σ(x − mean)² per channel, computed in float64 and
        rounded to the dtype; an empty shard has mean 0 and M2 0."""
        data = {}
        for shard, values in zip("ab", self.values(), strict=True):
            mean = values.mean(axis=0) if len(values) else np.zeros(self.channels)
            data[f"mean_{shard}"] = mean.astype(self.dtype)
            data[f"m2_{shard}"] = ((values - mean) ** 2).sum(axis=0).astype(self.dtype)
        return data


MERGE_CASES = (
    MergeCase(3, 12, 30, np.float64, seed=21),
    MergeCase(3, 12, 30, np.float32, seed=22),
    MergeCase(4, 1, 20, np.float64, seed=23),  # a shard of one value: its M2 is 0
    MergeCase(2, 50, 50, np.float32, seed=24),  # equal shards
    MergeCase(1, 7, 200, np.float64, seed=25),  # one channel, very unequal shards
    MergeCase(3, 0, 16, np.float64, seed=26),  # an empty shard
    MergeCase(2, 64, 9, np.float32, seed=27),
)


def hidden_merge_cases(rng: np.random.Generator) -> list[MergeCase]:
    """Fresh random cases, one per public case and with its edge: an empty shard, a shard
    of one value, equal shards, very unequal ones (20 times or more), one channel, float32
    and float64."""
    cases = []
    for t in MERGE_CASES:
        channels = 1 if t.channels == 1 else int(rng.integers(2, 6))
        count_a = t.count_a if t.count_a < 2 else int(rng.integers(2, 80))
        if t.count_b == t.count_a:
            count_b = count_a
        elif t.count_b >= 20 * max(t.count_a, 1):
            count_b = max(count_a, 1) * int(rng.integers(20, 40))
        else:
            count_b = int(rng.integers(2, 200))
            count_b += count_b == count_a  # unequal, as in the template
        cases.append(MergeCase(channels, count_a, count_b, t.dtype, int(rng.integers(2**31))))
    return cases


MERGE_MISTAKES = (
    Mistake(
        "merge_unweighted_mean",
        "the means are averaged without their counts: (mean_a + mean_b)/2 is the mean of the "
        "union only when the shards are equal. A shard of 1,000 values must weigh more than "
        "one of 10: what is the sum of all the values?",
        {"mean": "unweighted"},
        deduction=1,
    ),
    Mistake(
        "merge_swapped_weights",
        "each mean is weighted by the other shard's count: (n_b·mean_a + n_a·mean_b)/n. The "
        "larger shard must weigh more, not less.",
        {"mean": "swapped"},
        deduction=1,
    ),
    Mistake(
        "merge_no_delta_term",
        "M2 is m2_a + m2_b: that misses the spread between the shards' means. Each shard's M2 "
        "is a sum of squares around its own mean, not around the union's: write each value's "
        "deviation from the joint mean as (x − mean_a) + (mean_a − mean) and sum the squares.",
        {"m2": "no_delta"},
        deduction=1.5,
    ),
    Mistake(
        "merge_averaged_variances",
        "the variances are averaged without their counts, (m2_a/n_a + m2_b/n_b)/2, and that "
        "misses the spread between the shards' means too. Work with sums of squares, which "
        "add, not with variances, which do not.",
        {"m2": "averaged_variances"},
        deduction=1.5,
    ),
    Mistake(
        "merge_inputs_as_variances",
        "m2_a and m2_b are used as variances (multiplied by their counts): they already are "
        "sums of squares, M2 = Σ(x − mean)² = n·σ².",
        {"m2": "inputs_as_variances"},
        deduction=1,
    ),
    Mistake(
        "merge_returns_variance",
        "the third output is the merged variance M2/n: return M2 itself, the sum of squares "
        "Σ(x − mean)² (divide by n only when you need the variance).",
        {"returns": "variance"},
        deduction=0.5,
    ),
    Mistake(
        "merge_delta_over_n_minus_1",
        "the between-shards term divides by n − 1: M2 is a plain sum of squares, with no "
        "Bessel correction anywhere; redo the algebra with the joint mean and count n.",
        {"m2": "n_minus_1"},
        deduction=1,
    ),
    Mistake(
        "merge_delta_over_n_squared",
        "the between-shards term has one factor 1/n too many: that is its size in the "
        "variance (M2/n), not in M2.",
        {"m2": "n_squared"},
        deduction=1,
    ),
)


def merge_variant(
    count_a, mean_a, m2_a, count_b, mean_b, m2_b, *, mean="weighted", m2="chan",
    returns="m2",
) -> tuple:  # fmt: skip
    """Chan's merge with chosen mistakes, in float64, means and M2 in ``mean_a``'s dtype."""
    dtype = mean_a.dtype
    mean_a, m2_a = mean_a.astype(np.float64), m2_a.astype(np.float64)
    mean_b, m2_b = mean_b.astype(np.float64), m2_b.astype(np.float64)
    n = count_a + count_b
    delta = mean_b - mean_a
    merged_mean = {
        "weighted": mean_a + delta * count_b / n,
        "unweighted": (mean_a + mean_b) / 2,
        "swapped": (count_b * mean_a + count_a * mean_b) / n,
    }[mean]
    term = delta**2 * count_a * count_b
    with np.errstate(all="ignore"):
        merged_m2 = {
            "chan": m2_a + m2_b + term / n,
            "no_delta": m2_a + m2_b,
            "averaged_variances": n * (m2_a / count_a + m2_b / count_b) / 2,
            "inputs_as_variances": count_a * m2_a + count_b * m2_b + term / n,
            "n_minus_1": m2_a + m2_b + term / (n - 1),
            "n_squared": m2_a + m2_b + term / n**2,
        }[m2]
    if returns == "variance":
        merged_m2 = merged_m2 / n
    return np.asarray(n), merged_mean.astype(dtype), merged_m2.astype(dtype)


def reference_merge_stats(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """:func:`bnlib.stats.chan_merge`; the count as a 0-d integer array."""
    count, mean, m2 = stats.chan_merge(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
    return np.asarray(count), mean, m2


def _merge_args(d, c):
    return (c.count_a, d["mean_a"], d["m2_a"], c.count_b, d["mean_b"], d["m2_b"])


MERGE_STATS = Check(
    name="merge_stats",
    arg_names=("count_a", "mean_a", "m2_a", "count_b", "mean_b", "m2_b"),
    outputs=("count", "mean", "m2"),
    reference=reference_merge_stats,
    public=lambda: make_trials(MERGE_CASES, _merge_args),
    hidden=lambda rng: make_trials(hidden_merge_cases(rng), _merge_args),
    variant=merge_variant,
    mistakes=MERGE_MISTAKES,
    passed_note="Empty and one-value shards, equal and unequal ones, float32 and float64.",
)


def merge_stats(fn: Callable) -> CheckResult:
    r"""Check ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> (count, mean, m2)``:
    the exact count, mean and M2 = Σ(x − mean)² of the union of two shards, per channel
    (means and M2 of shape ``(C,)``, counts ints; an empty shard has count 0). The count may
    come back as an int."""
    return MERGE_STATS(fn)
