"""The second homework's checks (bnlib.check.group_norm, merge_stats, fold_bn): their
references agree with independent sources, and correct functions pass. Classic mistakes:
test_check_hw2_mistakes.py; broken functions: test_check_hw2_broken.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnlib import check
from bnlib.check.homework_2 import folding, gn_forward, merging
from tests.bnlib.hw2_students import (
    all_cases,
    drawn,
    fold_einsum,
    fold_ok,
    gn_loop,
    gn_ok,
    merge_ok,
    merge_sums,
    on_hidden_cases,
)

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
