"""The second homework's checks (bnlib.check.group_norm, merge_stats, fold_bn): their
references agree with independent sources, correct functions pass, each classic mistake,
planted by hand as a student would write it, is diagnosed by name, and broken functions get
a report, never a crash of the checker."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnlib import check
from bnlib.check.homework_2 import folding, gn_forward, merging


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


# --------------------------------------------------------------------------------------
# The references against independent sources
# --------------------------------------------------------------------------------------


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "case",
    all_cases(gn_forward.GROUP_NORM_CASES, gn_forward.hidden_group_norm_cases),
    ids=lambda c: c.describe(),
)
def test_group_norm_reference_agrees_with_torch(case):
    d = case.data()
    expected = F.group_norm(
        torch.from_numpy(d["x"]),
        case.groups,
        torch.from_numpy(d["gamma"]),
        torch.from_numpy(d["beta"]),
        case.eps,
    )
    (got,) = gn_forward.reference_group_norm(d["x"], case.groups, d["gamma"], d["beta"], case.eps)
    np.testing.assert_allclose(got, expected.numpy(), **tol(case.dtype))


@pytest.mark.parametrize(
    "case",
    all_cases(merging.MERGE_CASES, merging.hidden_merge_cases),
    ids=lambda c: c.describe(),
)
def test_merge_reference_gives_the_statistics_of_the_union(case):
    """The merge of the two shards' (count, mean, M2) against the union's, computed
    directly in float64 (math.fsum-free: two passes over the concatenated values)."""
    d = case.data()
    union = np.concatenate(case.values())
    count, mean, m2 = merging.reference_merge_stats(
        case.count_a, d["mean_a"], d["m2_a"], case.count_b, d["mean_b"], d["m2_b"]
    )
    assert count == len(union) and mean.dtype == m2.dtype == case.dtype
    scale = dict(rtol=1e-5, atol=1e-4) if case.dtype == np.float32 else dict(rtol=1e-10)
    np.testing.assert_allclose(mean, union.mean(axis=0), **scale)
    np.testing.assert_allclose(m2, ((union - union.mean(axis=0)) ** 2).sum(axis=0), **scale)


@pytest.mark.parametrize(
    "case",
    all_cases(folding.FOLD_CASES, folding.hidden_fold_cases),
    ids=lambda c: c.describe(),
)
def test_fold_reference_agrees_with_torch(case):
    d = case.data()
    t = {k: None if v is None else torch.from_numpy(v) for k, v in d.items()}
    weight, bias = torch.nn.utils.fusion.fuse_conv_bn_weights(
        t["conv_w"], t["conv_b"], t["running_mean"], t["running_var"], case.eps,
        t["gamma"], t["beta"],
    )  # fmt: skip
    got_w, got_b = folding.reference_fold_bn(
        d["conv_w"], d["conv_b"], d["running_mean"], d["running_var"], case.eps,
        d["gamma"], d["beta"],
    )  # fmt: skip
    np.testing.assert_allclose(got_w, weight.detach().numpy(), **tol(case.dtype))
    np.testing.assert_allclose(got_b, bias.detach().numpy(), **tol(case.dtype))
    # and folding is what it claims: conv then eval-mode BN equals the folded conv
    c_in = case.shape[1]
    groups = case.shape[0] if c_in == 1 else 1  # a depthwise weight: one group per channel
    x = torch.from_numpy(np.random.default_rng(case.seed).standard_normal((2, c_in * groups, 6, 6)))
    x = x.to(t["conv_w"].dtype)
    z = F.conv2d(x, t["conv_w"], t["conv_b"], groups=groups)
    expected = F.batch_norm(z, t["running_mean"], t["running_var"], t["gamma"], t["beta"],
                            False, 0.0, case.eps)  # fmt: skip
    folded = F.conv2d(x, torch.from_numpy(got_w), torch.from_numpy(got_b), groups=groups)
    np.testing.assert_allclose(folded.numpy(), expected.numpy(), **tol(case.dtype))


def test_batteries_cover_the_edge_cases():
    gn = gn_forward.GROUP_NORM_CASES
    assert any(c.shape[0] == 1 for c in gn) and any(c.shape[2:] == (1, 1) for c in gn)
    assert any(c.groups == 1 for c in gn) and any(c.groups == c.shape[1] for c in gn)
    assert any(1 < c.groups < c.shape[1] for c in gn)
    assert all((c.shape[1] // c.groups) * c.shape[2] * c.shape[3] >= 2 for c in gn)
    merge = merging.MERGE_CASES
    assert {0, 1} <= {c.count_a for c in merge} and any(c.count_a == c.count_b for c in merge)
    assert any(c.channels == 1 for c in merge)
    fold = folding.FOLD_CASES
    assert any(c.shape[0] == c.shape[1] for c in fold)  # where the axis mistake shows
    assert any(c.shape[1] == 1 for c in fold) and any(c.shape[2:] == (1, 1) for c in fold)
    assert any(not c.conv_bias for c in fold)
    for battery in (gn, merge, fold):
        assert {np.dtype(c.dtype) for c in battery} == {np.dtype("float32"), np.dtype("float64")}
    for battery in (gn, fold):
        assert max(c.eps for c in battery) >= 0.5 and min(c.eps for c in battery) <= 1e-5


@pytest.mark.parametrize(
    ("battery", "hidden"),
    [
        (gn_forward.GROUP_NORM_CASES, gn_forward.hidden_group_norm_cases),
        (merging.MERGE_CASES, merging.hidden_merge_cases),
        (folding.FOLD_CASES, folding.hidden_fold_cases),
    ],
    ids=["group_norm", "merge_stats", "fold_bn"],
)
def test_hidden_cases_are_fresh_draws_that_keep_the_edges(battery, hidden):
    a, b = drawn(hidden, 1), drawn(hidden, 2)
    assert a == drawn(hidden, 1) and a != b  # reproducible from the seed, not across seeds
    assert len(a) == len(battery) and not set(a) & set(battery)
    assert isinstance(a, list)
    for case, template in zip(a, battery, strict=True):
        assert case.dtype == template.dtype
        if isinstance(case, gn_forward.GroupNormCase):
            assert (case.shape[0] == 1) == (template.shape[0] == 1)
            assert (case.shape[2:] == (1, 1)) == (template.shape[2:] == (1, 1))
            assert (case.groups == 1) == (template.groups == 1)
            assert (case.groups == case.shape[1]) == (template.groups == template.shape[1])
            assert (case.shape[1] // case.groups) * case.shape[2] * case.shape[3] >= 2
        elif isinstance(case, merging.MergeCase):
            assert (case.channels == 1) == (template.channels == 1)
            if template.count_a < 2:  # an empty shard, a shard of one value
                assert case.count_a == template.count_a
            very_unequal = template.count_b >= 20 * max(template.count_a, 1)
            assert (case.count_b >= 20 * max(case.count_a, 1)) == very_unequal
            assert (case.count_a == case.count_b) == (template.count_a == template.count_b)
        else:
            assert case.conv_bias == template.conv_bias and case.eps == template.eps
            assert (case.shape[0] == case.shape[1]) == (template.shape[0] == template.shape[1])
            assert (case.shape[1] == 1) == (template.shape[1] == 1)


# --------------------------------------------------------------------------------------
# Passing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checker", "fn"),
    [
        (check.group_norm, gn_ok),
        (check.group_norm, gn_loop),
        (check.merge_stats, merge_ok),
        (check.merge_stats, merge_sums),
        (check.fold_bn, fold_ok),
        (check.fold_bn, fold_einsum),
    ],
)
def test_correct_functions_pass_public_and_hidden_cases(checker, fn):
    for result in (checker(fn), on_hidden_cases(checker, fn)):
        assert result, str(result)
        assert result.score == 1.0 and not result.diagnoses
        assert f"passed all {len(result.cases)} cases" in str(result)
        assert "FAILED" not in str(result)


# --------------------------------------------------------------------------------------
# Each classic mistake, planted by hand, diagnosed by name
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checker", "fn", "expected", "outputs"),
    [
        (check.group_norm, gn_batch_axes, {"gn_batch_axes"}, ["y"]),
        (check.group_norm, gn_instance_axes, {"gn_instance_axes"}, ["y"]),
        (check.group_norm, gn_layer_axes, {"gn_layer_axes"}, ["y"]),
        (check.group_norm, gn_interleaved, {"gn_interleaved_groups"}, ["y"]),
        (check.group_norm, gn_unbiased, {"gn_unbiased_variance"}, ["y"]),
        (check.group_norm, gn_eps_outside, {"gn_eps_outside_sqrt"}, ["y"]),
        (check.group_norm, gn_affine_per_group, {"gn_affine_per_group"}, ["y"]),
        (
            check.group_norm,
            gn_torch_std,
            {"gn_unbiased_variance", "gn_eps_outside_sqrt"},
            ["y"],
        ),
        (check.merge_stats, merge_unweighted, {"merge_unweighted_mean"}, ["mean"]),
        (check.merge_stats, merge_swapped, {"merge_swapped_weights"}, ["mean"]),
        (check.merge_stats, merge_no_delta, {"merge_no_delta_term"}, ["m2"]),
        (check.merge_stats, merge_variances, {"merge_inputs_as_variances"}, ["m2"]),
        (check.merge_stats, merge_returns_variance, {"merge_returns_variance"}, ["m2"]),
        (check.merge_stats, merge_n_squared, {"merge_delta_over_n_squared"}, ["m2"]),
        (check.merge_stats, merge_n_minus_1, {"merge_delta_over_n_minus_1"}, ["m2"]),
        *(
            (
                check.fold_bn,
                FOLD_PLANTED[key],
                {key},
                ["bias"] if "bias" in key or "mean" in key else ["weight", "bias"],
            )
            for key in FOLD_PLANTED
            if key != "fold_weight_wrong_axis"
        ),
        (
            check.fold_bn,
            FOLD_PLANTED["fold_weight_wrong_axis"],
            {"fold_weight_wrong_axis"},
            ["weight"],
        ),
    ],
)
def test_classic_mistake_is_diagnosed_by_name(checker, fn, expected, outputs):
    result = checker(fn)
    assert not result
    assert keys(result) == expected, str(result)
    for d in result.diagnoses:
        assert d.outputs == outputs, (d.key, d.outputs)
        assert d.message in str(result)
    assert "FAILED" in str(result) and "max abs error" in str(result)


def test_wrong_axis_raises_where_it_cannot_broadcast_and_is_named_where_it_can():
    result = check.fold_bn(FOLD_PLANTED["fold_weight_wrong_axis"])
    report = str(result)
    assert "raised ValueError: operands could not be broadcast" in report
    assert "scaled along its input channels (axis 1)" in report


def test_several_mistakes_in_one_submission_are_each_named():
    def fold_two(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
        s = gamma / np.sqrt(running_var)  # no ε
        return conv_w * s.reshape(-1, 1, 1, 1), beta - s * running_mean  # conv bias dropped

    result = check.fold_bn(fold_two)
    assert {d.key: d.outputs for d in result.diagnoses} == {
        "fold_no_eps": ["weight", "bias"],
        "fold_conv_bias_dropped": ["bias"],
    }, str(result)

    def merge_two(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return count_a + count_b, (mean_a + mean_b) / 2, m2_a + m2_b

    result = check.fold_bn(fold_with(scale=lambda g, v, e: g / v))  # γ/σ²: no √, no ε
    assert {d.key: d.outputs for d in result.diagnoses} == {
        "fold_var_not_std": ["weight", "bias"],
        "fold_no_eps": ["weight", "bias"],
    }, str(result)

    result = check.merge_stats(merge_two)
    assert {d.key: d.outputs for d in result.diagnoses} == {
        "merge_unweighted_mean": ["mean"],
        "merge_no_delta_term": ["m2"],
    }


@pytest.mark.parametrize(
    ("checker", "variant", "mistakes"),
    [
        (
            check.group_norm,
            lambda *a, **o: (gn_forward.group_norm_variant(*a, **o),),
            gn_forward.GROUP_NORM_MISTAKES,
        ),
        (check.merge_stats, merging.merge_variant, merging.MERGE_MISTAKES),
        (check.fold_bn, folding.fold_variant, folding.FOLD_MISTAKES),
    ],
    ids=["group_norm", "merge_stats", "fold_bn"],
)
def test_every_listed_mistake_is_observable_and_told_apart(checker, variant, mistakes):
    """The battery exposes each mistake, and names it and no other (the wrong references
    themselves, as students)."""
    for mistake in mistakes:

        def student(*args, _options=mistake.options):
            out = variant(*args, **_options)
            return out[0] if len(out) == 1 else out

        result = checker(student)
        assert not result, mistake.key
        assert keys(result) == {mistake.key}, (mistake.key, str(result))


def test_wrong_references_without_mistakes_are_right():
    """The variants with no option are the reference: a diagnosis compares like with like."""
    assert check.group_norm(lambda *a: gn_forward.group_norm_variant(*a))
    assert check.merge_stats(merging.merge_variant)
    assert check.fold_bn(folding.fold_variant)


# --------------------------------------------------------------------------------------
# Broken functions get a report, not a crash
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("checker", [check.group_norm, check.merge_stats, check.fold_bn])
def test_stubs_and_non_functions_are_reported(checker):
    def stub(*args):
        raise NotImplementedError

    result = checker(stub)
    assert not result and result.cases_passed == 0
    assert "Not implemented yet" in str(result)
    result = checker(None)
    assert not result and "expected your function" in str(result)


def test_a_fold_that_forgets_conv_b_may_be_none_is_told_where():
    def fold_no_none(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
        s = gamma / np.sqrt(running_var + eps)
        return conv_w * s.reshape(-1, 1, 1, 1), s * (conv_b - running_mean) + beta

    result = check.fold_bn(fold_no_none)
    report = str(result)
    assert result.cases_passed == sum(c.conv_bias for c in folding.FOLD_CASES)
    assert "raised TypeError: unsupported operand type(s) for -: 'NoneType'" in report
    assert "conv_b=None" in report


def test_modifying_the_weight_in_place_is_reported():
    def fold_in_place(conv_w, conv_b, running_mean, running_var, eps, gamma, beta):
        weight, bias = fold_ok(conv_w, conv_b, running_mean, running_var, eps, gamma, beta)
        conv_w *= 2
        return weight, bias

    result = check.fold_bn(fold_in_place)
    assert not result and "changed its input conv_w in place" in str(result)


def test_merge_count_is_an_int_and_must_be_right():
    def numpy_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return np.int64(n), mean, m2

    assert check.merge_stats(numpy_count)

    def float_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return float(n), mean, m2

    result = check.merge_stats(float_count)
    assert not result and "count has dtype float64 for a int64 input" in str(result)

    def per_channel_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return np.full(mean.shape, n), mean, m2

    assert "count has shape (" in str(check.merge_stats(per_channel_count))

    def bool_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return True, *merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)[1:]

    assert "count is a bool; expected a NumPy array" in str(check.merge_stats(bool_count))

    class Sneaky(int):  # an int that claims to equal anything
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    def sneaky_count(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return Sneaky(0), *merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)[1:]

    assert "count is a Sneaky; expected a NumPy array" in str(check.merge_stats(sneaky_count))

    def off_by_one(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        n, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return n + 1, mean, m2

    result = check.merge_stats(off_by_one)  # counts are exact, however large
    assert result.cases_passed == 0 and "count is wrong" in str(result)

    def count_wrong(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        _, mean, m2 = merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        return count_a, mean, m2

    result = check.merge_stats(count_wrong)
    assert not result and "count is wrong" in str(result)

    def two_values(count_a, mean_a, m2_a, count_b, mean_b, m2_b):
        return merge_ok(count_a, mean_a, m2_a, count_b, mean_b, m2_b)[1:]

    assert "returned 2 values; expected 3: count, mean, m2" in str(check.merge_stats(two_values))


def test_wrong_dtype_is_reported():
    def gn_float64(x, num_groups, gamma, beta, eps):
        return gn_ok(x.astype(np.float64), num_groups, gamma, beta, eps)

    result = check.group_norm(gn_float64)
    assert not result and "has dtype float64 for a float32 input" in str(result)
    assert result.cases_passed == sum(c.dtype == np.float64 for c in gn_forward.GROUP_NORM_CASES)


def test_unexplained_wrong_values_say_so():
    def gn_off(x, num_groups, gamma, beta, eps):
        return gn_ok(x, num_groups, gamma, beta, eps) * np.asarray(1.01, x.dtype)

    result = check.group_norm(gn_off)
    assert not result and not result.diagnoses
    assert "No classic mistake reproduces your output" in str(result)


def test_to_dict_is_json_ready():
    d = check.merge_stats(merge_no_delta).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["check"] == "merge_stats" and d["diagnoses"][0]["mistake"] == "merge_no_delta_term"


def test_the_checks_need_numpy_only():
    """The student wheel is NumPy-only: the three checks run with torch, matplotlib,
    ipywidgets and IPython made unimportable."""
    code = textwrap.dedent(
        """
        import sys
        BLOCKED = {"torch", "matplotlib", "ipywidgets", "IPython", "scipy", "sklearn"}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import bnlib.check
        def fold(w, b, rm, rv, eps, g, be):
            s = g / np.sqrt(rv + eps)
            return w * s.reshape(-1, 1, 1, 1), s * ((0 if b is None else b) - rm) + be
        def merge(na, ma, qa, nb, mb, qb):
            n, d = na + nb, mb - ma
            return n, ma + d * nb / n, qa + qb + d * d * na * nb / n
        def gn(x, G, g, b, eps):
            r = x.reshape(x.shape[0], G, -1)
            y = ((r - r.mean(2, keepdims=True)) / np.sqrt(r.var(2, keepdims=True) + eps))
            return y.reshape(x.shape) * g.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
        for checker, fn in ((bnlib.check.fold_bn, fold), (bnlib.check.merge_stats, merge),
                            (bnlib.check.group_norm, gn)):
            assert checker(fn), str(checker(fn))
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok []"
