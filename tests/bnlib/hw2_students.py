"""Homework 2's checks as the tests drive them (test_check_hw2*.py): helpers, and student
functions written by hand as a student would, right and with each classic mistake."""

from __future__ import annotations

import numpy as np

from bnlib import check


def col(v):
    return v.reshape(1, -1, 1, 1)


def keys(result) -> set[str]:
    return {d.key for d in result.diagnoses}


SEEDS = (0, 1, 2)
CHECKS = {
    check.group_norm: check.GROUP_NORM,
    check.merge_stats: check.MERGE_STATS,
    check.fold_bn: check.FOLD_BN,
}


def drawn(hidden, seed):
    return hidden(np.random.default_rng(seed))


def all_cases(battery, hidden):
    return battery + tuple(c for seed in SEEDS for c in drawn(hidden, seed))


def on_hidden_cases(checker, fn, seed=7):
    """The check on fresh hidden cases, called and assessed as the grader does."""
    spec = CHECKS[checker]
    trials = spec.hidden(np.random.default_rng(seed))
    return check.assess(spec, trials, [check.call(fn, t, spec.outputs) for t in trials])


# --------------------------------------------------------------------------------------
# Student functions, written by hand as a student would
# --------------------------------------------------------------------------------------


def gn_ok(x, num_groups, gamma, beta, eps):
    n, c, h, w = x.shape
    groups = x.reshape(n, num_groups, -1)
    mean = groups.mean(axis=2, keepdims=True)
    var = groups.var(axis=2, keepdims=True)
    xhat = ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return col(gamma) * xhat + col(beta)


def gn_loop(x, num_groups, gamma, beta, eps):
    """Correct, one group at a time."""
    y = np.empty_like(x)
    k = x.shape[1] // num_groups
    for g in range(num_groups):
        part = x[:, g * k : (g + 1) * k]
        mean = part.mean(axis=(1, 2, 3), keepdims=True)
        var = part.var(axis=(1, 2, 3), keepdims=True)
        y[:, g * k : (g + 1) * k] = (part - mean) / np.sqrt(var + eps)
    return col(gamma) * y + col(beta)


def gn_interleaved(x, num_groups, gamma, beta, eps):
    n, c, h, w = x.shape
    groups = x.reshape(n, c // num_groups, num_groups, h, w)  # groups as the inner axis
    mean = groups.mean(axis=(1, 3, 4), keepdims=True)
    var = groups.var(axis=(1, 3, 4), keepdims=True)
    xhat = ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return col(gamma) * xhat + col(beta)


def gn_batch_axes(x, num_groups, gamma, beta, eps):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def gn_instance_axes(x, num_groups, gamma, beta, eps):
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def gn_layer_axes(x, num_groups, gamma, beta, eps):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return col(gamma) * (x - mean) / np.sqrt(var + eps) + col(beta)


def gn_unbiased(x, num_groups, gamma, beta, eps):
    groups = x.reshape(x.shape[0], num_groups, -1)
    mean = groups.mean(axis=2, keepdims=True)
    var = groups.var(axis=2, keepdims=True, ddof=1)
    return col(gamma) * ((groups - mean) / np.sqrt(var + eps)).reshape(x.shape) + col(beta)


def gn_eps_outside(x, num_groups, gamma, beta, eps):
    groups = x.reshape(x.shape[0], num_groups, -1)
    mean = groups.mean(axis=2, keepdims=True)
    std = groups.std(axis=2, keepdims=True)
    return col(gamma) * ((groups - mean) / (std + eps)).reshape(x.shape) + col(beta)


def gn_affine_per_group(x, num_groups, gamma, beta, eps):
    """The loop version, but γ and β indexed by the group, not the channel."""
    y = np.empty_like(x)
    k = x.shape[1] // num_groups
    for g in range(num_groups):
        part = x[:, g * k : (g + 1) * k]
        mean = part.mean(axis=(1, 2, 3), keepdims=True)
        var = part.var(axis=(1, 2, 3), keepdims=True)
        y[:, g * k : (g + 1) * k] = gamma[g] * (part - mean) / np.sqrt(var + eps) + beta[g]
    return y


def gn_torch_std(x, num_groups, gamma, beta, eps):
    """torch.std's unbiased default, and ε outside the root: two mistakes at once."""
    groups = x.reshape(x.shape[0], num_groups, -1)
    mean = groups.mean(axis=2, keepdims=True)
    std = groups.std(axis=2, keepdims=True, ddof=1)
    return col(gamma) * ((groups - mean) / (std + eps)).reshape(x.shape) + col(beta)


def merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n = count_a + count_b
    delta = mean_b - mean_a
    return n, mean_a + delta * count_b / n, m2_a + m2_b + delta**2 * count_a * count_b / n


def merge_sums(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """Correct, through sums and sums of squares (fine at these means)."""
    n = count_a + count_b
    total = count_a * mean_a + count_b * mean_b
    squares = m2_a + count_a * mean_a**2 + m2_b + count_b * mean_b**2
    mean = total / n
    return n, mean, squares - n * mean**2


def merge_unweighted(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n = count_a + count_b
    delta = mean_b - mean_a
    return n, (mean_a + mean_b) / 2, m2_a + m2_b + delta**2 * count_a * count_b / n


def merge_swapped(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n = count_a + count_b
    delta = mean_b - mean_a
    mean = (count_b * mean_a + count_a * mean_b) / n
    return n, mean, m2_a + m2_b + delta**2 * count_a * count_b / n


def merge_no_delta(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n = count_a + count_b
    return n, mean_a + (mean_b - mean_a) * count_b / n, m2_a + m2_b


def merge_variances(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    """Treats m2_a and m2_b as variances."""
    n = count_a + count_b
    delta = mean_b - mean_a
    m2 = count_a * m2_a + count_b * m2_b + delta**2 * count_a * count_b / n
    return n, mean_a + delta * count_b / n, m2


def merge_returns_variance(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
    return n, mean, m2 / n


def merge_n_squared(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n = count_a + count_b
    delta = mean_b - mean_a
    return n, mean_a + delta * count_b / n, m2_a + m2_b + delta**2 * count_a * count_b / n**2


def merge_n_minus_1(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
    n = count_a + count_b
    delta = mean_b - mean_a
    m2 = m2_a + m2_b + delta**2 * count_a * count_b / (n - 1)
    return n, mean_a + delta * count_b / n, m2


def fold_ok(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
    s = gamma / np.sqrt(running_var + eps)
    b = np.zeros_like(running_mean) if conv_b is None else conv_b
    return conv_w * s.reshape(-1, 1, 1, 1), s * (b - running_mean) + beta


def fold_einsum(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
    """Correct, written another way."""
    inv = 1 / np.sqrt(running_var + eps)
    weight = np.einsum("oikl,o->oikl", conv_w, gamma * inv)
    bias = beta - gamma * running_mean * inv
    if conv_b is not None:
        bias = bias + gamma * inv * conv_b
    return weight, bias


def fold_with(scale=None, bias=None, axis=0):
    """A folding function with a planted mistake in its scale, its bias or its axis."""

    def fn(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
        s = (scale or (lambda g, v, e: g / np.sqrt(v + e)))(gamma, running_var, eps)
        b = np.zeros_like(running_mean) if conv_b is None else conv_b
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        folded_bias = (bias or (lambda s, b, m, beta: s * (b - m) + beta))(s, b, running_mean, beta)
        return conv_w * s.reshape(shape), folded_bias

    return fn


FOLD_PLANTED = {
    "fold_var_not_std": fold_with(scale=lambda g, v, e: g / (v + e)),
    "fold_no_eps": fold_with(scale=lambda g, v, e: g / np.sqrt(v)),
    "fold_eps_outside_sqrt": fold_with(scale=lambda g, v, e: g / (np.sqrt(v) + e)),
    "fold_conv_bias_dropped": fold_with(bias=lambda s, b, m, beta: beta - s * m),
    "fold_mean_not_subtracted": fold_with(bias=lambda s, b, m, beta: s * b + beta),
    "fold_conv_bias_not_scaled": fold_with(bias=lambda s, b, m, beta: b + beta - s * m),
    "fold_bias_not_folded": fold_with(bias=lambda s, b, m, beta: b),
    "fold_weight_wrong_axis": fold_with(axis=1),
}
