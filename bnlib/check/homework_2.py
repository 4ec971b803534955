r"""Homework 2's checks (chapters/09_homework_2.md), each a
:class:`~bnlib.check.engine.Check` with a battery of its own (``*_CASES``, and
``hidden_*_cases(rng)`` for fresh draws), wrong references for its classic mistakes, and
the reference it compares with:

- :func:`group_norm`: ``fn(x, num_groups, gamma, beta, eps) -> y`` (reference:
  :func:`bnlib.norms.group_norm`);
- :func:`merge_stats`: ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> (count, mean,
  m2)``, the exact merge of two shards' statistics (reference: :func:`bnlib.stats.chan_merge`);
- :func:`fold_bn`: ``fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) ->
  (weight, bias)`` (reference: :func:`bnlib.fold.fold_conv_bn`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bnlib import fold, norms, stats
from bnlib.check.engine import Check, CheckResult, Mistake, make_trials

# --------------------------------------------------------------------------------------
# Group norm: fn(x, num_groups, gamma, beta, eps) -> y
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupNormCase:
    """``x`` of shape ``(N, C, H, W)`` in ``groups`` groups, dtype, ε and seed."""

    shape: tuple[int, int, int, int]
    groups: int
    dtype: type
    eps: float = 1e-5
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        return (
            f"x of shape {self.shape}, num_groups={self.groups}, "
            f"{np.dtype(self.dtype).name}, eps={self.eps:g}"
        )

    def data(self) -> dict:
        """Seeded inputs: every sample and channel with its own mean, every channel with its
        own spread, so that statistics over the wrong values give different numbers."""
        rng = np.random.default_rng(self.seed)
        n, c, h, w = self.shape
        loc = rng.uniform(-2.0, 2.0, size=(1, c, 1, 1)) + rng.uniform(-1.0, 1.0, (n, 1, 1, 1))
        scale = rng.uniform(0.5, 2.0, size=(1, c, 1, 1))
        x = loc + scale * rng.standard_normal(self.shape)
        return {
            "x": x.astype(self.dtype),
            "gamma": rng.uniform(0.5, 2.0, size=c).astype(self.dtype),
            "beta": rng.standard_normal(c).astype(self.dtype),
        }


# Every group pools at least 2 values, so that the N−1 variance stays finite.
GROUP_NORM_CASES = (
    GroupNormCase((4, 6, 3, 3), 3, np.float64, 1e-5, seed=11),
    GroupNormCase((4, 6, 3, 3), 2, np.float32, 1e-5, seed=12),
    GroupNormCase((1, 4, 2, 3), 2, np.float64, 1e-5, seed=13),  # N = 1
    GroupNormCase((8, 6, 1, 1), 3, np.float64, 1e-5, seed=14),  # 1×1 maps
    GroupNormCase((2, 4, 3, 3), 4, np.float32, 1e-3, seed=15),  # G = C: instance norm
    GroupNormCase((3, 6, 2, 2), 1, np.float64, 0.5, seed=16),  # G = 1, large ε
    GroupNormCase((2, 8, 2, 3), 4, np.float32, 1.0, seed=17),  # large ε, float32
)


def hidden_group_norm_cases(rng: np.random.Generator) -> list[GroupNormCase]:
    """Fresh random cases, one per public case and with its edge: N = 1, 1×1 maps, one
    group, C groups, float32 and float64, large ε."""
    cases = []
    for template in GROUP_NORM_CASES:
        n, c, h, w = template.shape
        groups = 1 if template.groups == 1 else int(rng.integers(2, 5))
        per_group = 1 if template.groups == c else int(rng.integers(2, 4))
        h, w = (1, 1) if h * w == 1 else (int(rng.integers(2, 5)), int(rng.integers(1, 5)))
        n = 1 if n == 1 else int(rng.integers(2, 6))
        shape = (n, groups * per_group, h, w)
        seed_k = int(rng.integers(2**31))
        cases.append(GroupNormCase(shape, groups, template.dtype, template.eps, seed=seed_k))
    return cases


GROUP_NORM_MISTAKES = (
    Mistake(
        "gn_batch_axes",
        "statistics over batch norm's axes: one mean and variance per channel, pooled over "
        "the batch and space. Group norm never pools the batch: each sample n and group g "
        "has its own μ and σ², over the group's C/G channels and H, W.",
        {"pooling": "batch"},
        deduction=3,
    ),
    Mistake(
        "gn_instance_axes",
        "statistics per sample and channel, over H and W only: instance norm (group norm "
        "with num_groups = C). Pool the C/G channels of a group together: "
        "x.reshape(N, G, -1), then reduce over the last axis.",
        {"pooling": "instance"},
        deduction=2,
    ),
    Mistake(
        "gn_layer_axes",
        "statistics per sample over all the channels: layer norm (group norm with "
        "num_groups = 1). Each group of C/G channels has its own μ and σ².",
        {"pooling": "layer"},
        deduction=2,
    ),
    Mistake(
        "gn_interleaved_groups",
        "the groups are interleaved: channel c went to group c % G, as "
        "x.reshape(N, C // G, G, H, W) puts it. A group is C/G consecutive channels (group g "
        "holds channels g·C/G to (g + 1)·C/G − 1): x.reshape(N, G, C // G, H, W), the group "
        "axis before the channels within a group.",
        {"pooling": "interleaved"},
        deduction=1.5,
    ),
    Mistake(
        "gn_unbiased_variance",
        "the unbiased variance (÷ (m − 1), with m = (C/G)·H·W values per group) normalizes. "
        "Group norm, like batch norm, uses the biased variance (÷ m): np.var's default ddof=0.",
        {"ddof": 1},
        deduction=1,
    ),
    Mistake(
        "gn_eps_outside_sqrt",
        "ε is outside the square root: you divide by √σ² + ε; group norm divides by "
        "√(σ² + ε). Add ε to the variance, then take the square root.",
        {"eps_outside": True},
        deduction=1,
    ),
    Mistake(
        "gn_affine_per_group",
        "γ and β are applied per group: every channel of group g gets gamma[g] and beta[g]. "
        "They hold one value per channel: channel c gets gamma[c] and beta[c] (apply them "
        "after reshaping back to (N, C, H, W), with gamma.reshape(1, C, 1, 1)).",
        {"affine": "group"},
        deduction=1,
    ),
    Mistake(
        "gn_no_affine",
        "γ and β are not applied: after normalizing, y = γ·x̂ + β, one γ and β per channel.",
        {"affine": "none"},
        deduction=2,
    ),
)


def group_norm_variant(
    x, num_groups, gamma, beta, eps, *, pooling="groups", ddof=0, eps_outside=False,
    affine="channel",
) -> np.ndarray:  # fmt: skip
    """Group norm with chosen mistakes, in float64, returned in ``x``'s dtype.

    ``pooling``: which values share a (μ, σ²): "groups" (right), "interleaved" (channel c
    in group c % G), "instance", "layer" or "batch". ``affine``: "channel" (right),
    "group" (gamma[g] for every channel of group g) or "none".
    """
    n, c = x.shape[:2]
    values = x.astype(np.float64).reshape(n, c, -1)  # (N, C, H·W)
    group_of = {
        "groups": np.arange(c) // (c // num_groups),
        "interleaved": np.arange(c) % num_groups,
        "instance": np.arange(c),
        "layer": np.zeros(c, int),
        "batch": np.arange(c),
    }[pooling]
    axes = (0, 1, 2) if pooling == "batch" else (1, 2)
    mean, var = np.empty((n, c, 1)), np.empty((n, c, 1))
    for g in np.unique(group_of):
        members = values[:, group_of == g]
        m = members.size // (1 if pooling == "batch" else n)
        mu = members.mean(axis=axes, keepdims=True)
        mean[:, group_of == g] = mu
        var[:, group_of == g] = ((members - mu) ** 2).sum(axis=axes, keepdims=True) / (m - ddof)
    with np.errstate(all="ignore"):
        denom = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        y = (values - mean) / denom
    if affine != "none":
        index = np.arange(c) // (c // num_groups) if affine == "group" else np.arange(c)
        y = y * gamma[index].reshape(1, c, 1) + beta[index].reshape(1, c, 1)
    return y.reshape(x.shape).astype(x.dtype)


def reference_group_norm(x, num_groups, gamma, beta, eps):
    return (norms.group_norm(x, num_groups, gamma, beta, eps),)


def _group_norm_args(d, c):
    return (d["x"], c.groups, d["gamma"], d["beta"], c.eps)


GROUP_NORM = Check(
    name="group_norm",
    arg_names=("x", "num_groups", "gamma", "beta", "eps"),
    outputs=("y",),
    reference=reference_group_norm,
    public=lambda: make_trials(GROUP_NORM_CASES, _group_norm_args),
    hidden=lambda rng: make_trials(hidden_group_norm_cases(rng), _group_norm_args),
    variant=lambda x, g, gamma, beta, eps, **o: (group_norm_variant(x, g, gamma, beta, eps, **o),),
    mistakes=GROUP_NORM_MISTAKES,
    passed_note="N = 1, 1×1 maps, 1 group and C groups, float32 and float64, ε up to 1.",
)


def group_norm(fn: Callable) -> CheckResult:
    r"""Check ``fn(x, num_groups, gamma, beta, eps) -> y``, group norm of ``(N, C, H, W)``.

    Group g holds the C/G consecutive channels g·C/G, ..., (g + 1)·C/G − 1; for each sample
    n and group g, μ and the biased σ² pool those channels over H and W:
    y[n, c] = γ_c·(x[n, c] − μ[n, g(c)])/√(σ²[n, g(c)] + ε) + β_c.
    """
    return GROUP_NORM(fn)


# --------------------------------------------------------------------------------------
# Merging per-shard statistics: fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
#   -> (count, mean, m2)
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
        "union only when the shards are equal. Weight each by its count: mean = mean_a + "
        "δ·n_b/n, with δ = mean_b − mean_a and n = n_a + n_b.",
        {"mean": "unweighted"},
        deduction=1,
    ),
    Mistake(
        "merge_swapped_weights",
        "each mean is weighted by the other shard's count: (n_b·mean_a + n_a·mean_b)/n. The "
        "larger shard weighs more: mean = (n_a·mean_a + n_b·mean_b)/n = mean_a + δ·n_b/n.",
        {"mean": "swapped"},
        deduction=1,
    ),
    Mistake(
        "merge_no_delta_term",
        "M2 is m2_a + m2_b: that misses the spread between the shards' means. Each shard's M2 "
        "is around its own mean, not the union's: M2 = m2_a + m2_b + δ²·n_a·n_b/n.",
        {"m2": "no_delta"},
        deduction=1.5,
    ),
    Mistake(
        "merge_inputs_as_variances",
        "m2_a and m2_b are used as variances (multiplied by their counts): they already are "
        "sums of squares, M2 = Σ(x − mean)² = n·σ². M2 = m2_a + m2_b + δ²·n_a·n_b/n.",
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
        "the δ² term divides by the wrong count: δ²·n_a·n_b/(n − 1). M2 is a plain sum of "
        "squares; it is exact with δ²·n_a·n_b/n.",
        {"m2": "n_minus_1"},
        deduction=1,
    ),
    Mistake(
        "merge_delta_over_n_squared",
        "the δ² term divides by the wrong count: δ²·n_a·n_b/n² is the variance's version of the "
        "term (for σ² = M2/n). For M2 it is δ²·n_a·n_b/n.",
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
    r"""Check ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> (count, mean, m2)``.

    Chan's exact merge of two shards' statistics, per channel (means and M2 of shape
    ``(C,)``, counts ints, M2 = Σ(x − mean)²): n = n_a + n_b, δ = mean_b − mean_a,
    mean = mean_a + δ·n_b/n, M2 = m2_a + m2_b + δ²·n_a·n_b/n. The count may come back as
    an int.
    """
    return MERGE_STATS(fn)


# --------------------------------------------------------------------------------------
# Folding batch norm into a convolution:
#   fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) -> (weight, bias)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldCase:
    """A convolution weight of ``shape`` (C_out, C_in, kH, kW), with or without its bias."""

    shape: tuple[int, int, int, int]
    dtype: type
    eps: float = 1e-5
    conv_bias: bool = True
    seed: int = 0

    def describe(self, with_momentum: bool = False) -> str:
        bias = "" if self.conv_bias else ", conv_b=None"
        return f"conv_w of shape {self.shape}, {np.dtype(self.dtype).name}, eps={self.eps:g}{bias}"

    def data(self) -> dict:
        """Seeded weights and running statistics (some variances small, so that ε shows)."""
        rng = np.random.default_rng(self.seed)
        c_out = self.shape[0]
        values = {
            "conv_w": 0.5 * rng.standard_normal(self.shape),
            "conv_b": rng.standard_normal(c_out) if self.conv_bias else None,
            "running_mean": rng.uniform(-2.0, 2.0, c_out),
            "running_var": rng.choice([0.01, 1.0], c_out) * rng.uniform(0.5, 2.0, c_out),
            "gamma": rng.uniform(0.5, 2.0, c_out),
            "beta": rng.standard_normal(c_out),
        }
        return {k: None if v is None else v.astype(self.dtype) for k, v in values.items()}


FOLD_CASES = (
    FoldCase((4, 4, 3, 3), np.float64, 1e-5, True, seed=31),
    FoldCase((4, 4, 3, 3), np.float32, 1e-5, True, seed=32),
    FoldCase((8, 3, 3, 3), np.float64, 1e-5, True, seed=33),  # C_out ≠ C_in
    FoldCase((6, 6, 1, 1), np.float64, 1e-3, False, seed=34),  # 1×1 conv without bias
    FoldCase((3, 3, 5, 5), np.float64, 0.5, True, seed=35),  # large ε
    FoldCase((5, 2, 3, 3), np.float32, 1.0, False, seed=36),  # large ε, no bias, float32
    FoldCase((4, 1, 3, 3), np.float64, 1e-5, True, seed=37),  # depthwise: C_in / groups = 1
)


def hidden_fold_cases(rng: np.random.Generator) -> list[FoldCase]:
    """Fresh random cases, one per public case and with its edge: square and non-square
    weights, 1×1 and depthwise kernels, no conv bias, float32 and float64, large ε."""
    cases = []
    for t in FOLD_CASES:
        c_out, c_in, kh, kw = t.shape
        new_out = int(rng.integers(2, 9))
        new_in = {c_out: new_out, 1: 1}.get(c_in, int(rng.integers(2, 6)))
        if new_in == new_out and c_in not in (c_out, 1):
            new_in += 1
        k = 1 if kh == 1 else int(rng.choice([3, 5]))
        shape = (new_out, new_in, k, k)
        cases.append(FoldCase(shape, t.dtype, t.eps, t.conv_bias, int(rng.integers(2**31))))
    return cases


FOLD_MISTAKES = (
    Mistake(
        "fold_var_not_std",
        "the scale divides by the variance: γ/(σ² + ε). Batch norm divides by the standard "
        "deviation: a = γ/√(σ² + ε).",
        {"sqrt": False},
        deduction=1.5,
    ),
    Mistake(
        "fold_no_eps",
        "ε is missing: a = γ/√σ². Batch norm in eval mode divides by √(σ² + ε), with the "
        "layer's own ε; a small running variance (or a large ε) shows the difference.",
        {"eps_at": "none"},
        deduction=0.5,
    ),
    Mistake(
        "fold_eps_outside_sqrt",
        "ε is outside the square root: a = γ/(√σ² + ε). It is a = γ/√(σ² + ε).",
        {"eps_at": "outside"},
        deduction=0.5,
    ),
    Mistake(
        "fold_conv_bias_dropped",
        "the folded bias drops the convolution's own bias: β − a·μ is right only for a "
        "convolution without bias. b' = a·(b − μ) + β: the conv bias passes through BN too.",
        {"bias": "no_conv_bias"},
        deduction=1,
    ),
    Mistake(
        "fold_mean_not_subtracted",
        "the folded bias forgets the running mean: a·b + β. Batch norm subtracts μ before "
        "scaling: b' = a·(b − μ) + β.",
        {"bias": "no_mean"},
        deduction=1,
    ),
    Mistake(
        "fold_conv_bias_not_scaled",
        "the convolution's bias is not scaled: b + β − a·μ. The bias is part of the conv's "
        "output, which BN scales: b' = a·(b − μ) + β.",
        {"bias": "conv_bias_unscaled"},
        deduction=1,
    ),
    Mistake(
        "fold_bias_not_folded",
        "the bias is returned unchanged (the conv's own bias): batch norm's shift must be "
        "folded into it too, b' = a·(b − μ) + β (with b = 0 when conv_b is None).",
        {"bias": "unchanged"},
        deduction=1.5,
    ),
    Mistake(
        "fold_weight_wrong_axis",
        "the weight is scaled along its input channels (axis 1): batch norm scales the "
        "conv's output channels, the weight's axis 0: W' = W·a.reshape(-1, 1, 1, 1).",
        {"axis": 1},
        deduction=1.5,
    ),
)


def fold_variant(
    conv_w, conv_b, running_mean, running_var, eps, gamma, beta, *, sqrt=True,
    eps_at="inside", bias="folded", axis=0,
) -> tuple:  # fmt: skip
    """Folding with chosen mistakes, in float64, returned in ``conv_w``'s dtype.

    ``eps_at``: "inside" √(σ² + ε) (right), "outside" √σ² + ε, or "none".
    """
    var = running_var.astype(np.float64)
    mu = running_mean.astype(np.float64)
    b = np.zeros_like(mu) if conv_b is None else conv_b.astype(np.float64)
    with np.errstate(all="ignore"):
        if not sqrt:
            denom = var + (0.0 if eps_at == "none" else eps)
        elif eps_at == "outside":
            denom = np.sqrt(var) + eps
        else:
            denom = np.sqrt(var + (0.0 if eps_at == "none" else eps))
        a = gamma.astype(np.float64) / denom
    folded_bias = {
        "folded": a * (b - mu) + beta,
        "no_conv_bias": beta - a * mu,
        "no_mean": a * b + beta,
        "conv_bias_unscaled": b + beta - a * mu,
        "unchanged": b,
    }[bias]
    shape = [1] * conv_w.ndim
    shape[axis] = -1
    weight = conv_w.astype(np.float64) * a.reshape(shape)
    return weight.astype(conv_w.dtype), folded_bias.astype(conv_w.dtype)


def reference_fold_bn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
    return fold.fold_conv_bn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta)


def _fold_args(d, c):
    return tuple(
        d[k] if k in d else c.eps
        for k in ("conv_w", "conv_b", "running_mean", "running_var", "eps", "gamma", "beta")
    )


FOLD_BN = Check(
    name="fold_bn",
    arg_names=("conv_w", "conv_b", "running_mean", "running_var", "eps", "gamma", "beta"),
    outputs=("weight", "bias"),
    reference=reference_fold_bn,
    public=lambda: make_trials(FOLD_CASES, _fold_args),
    hidden=lambda rng: make_trials(hidden_fold_cases(rng), _fold_args),
    variant=fold_variant,
    mistakes=FOLD_MISTAKES,
    passed_note="No conv bias, 1×1 and depthwise kernels, float32 and float64, ε up to 1.",
)


def fold_bn(fn: Callable) -> CheckResult:
    r"""Check ``fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta) -> (weight,
    bias)``: an eval-mode batch norm folded into the convolution before it.

    With a = γ/√(σ² + ε) per output channel: W' = a·W along axis 0 (the output channels),
    b' = a·(b − μ) + β, where ``conv_b`` may be None (no bias: b = 0).
    """
    return FOLD_BN(fn)
