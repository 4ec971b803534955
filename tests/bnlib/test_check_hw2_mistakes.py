"""The second homework's checks: each classic mistake, planted by hand as a student would
write it (tests/bnlib/hw2_students.py), is diagnosed by name."""

from __future__ import annotations

import numpy as np
import pytest

from bnlib import check
from bnlib.check.homework_2 import folding, gn_forward, merging
from tests.bnlib.hw2_students import (
    FOLD_PLANTED,
    fold_with,
    gn_affine_per_group,
    gn_batch_axes,
    gn_eps_outside,
    gn_instance_axes,
    gn_interleaved,
    gn_layer_axes,
    gn_torch_std,
    gn_unbiased,
    keys,
    merge_n_minus_1,
    merge_n_squared,
    merge_no_delta,
    merge_returns_variance,
    merge_swapped,
    merge_unweighted,
    merge_variances,
)

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
